/**
 * The routed experts of one MoE layer, as one bank: every expert's SwiGLU MLP run as two grouped FP8
 * GEMMs over the token rows sorted by expert (the reference loops over its `Expert`s; the arithmetic
 * per row is the same). On the CPU the GEMMs read each expert's weights where the checkpoint holds
 * them (weight sets: nothing copied, so the weights stay file-backed pages shared with the page
 * cache); on a device the experts are stacked into `[E, N, K]` weights (the upload copies anyway).
 */
import * as ops from '../ops/index.js';
import type { Act, Tensor } from '../runtime/tensor.js';
import type { ModelConfig } from './config.js';
import { swigluQuantised, type WeightSource } from './linear.js';
import { disposeParts, fp8Part, gateUpParts, stackParts } from './mlp.js';

/** What the experts computed, one row per (token, choice), in expert order. */
export interface ExpertRows {
  /** `[T·k, dim]` in the activation dtype. */
  out: Tensor;
  /** `[T·k]` i32: the row of slot t·k + j (token t's j-th choice). */
  rowOfSlot: Tensor;
}

/** One grouped weight of the bank: a weight set (CPU) or the stacked `[E, N, K]` FP8 weight with its
 *  `[E, ⌈N/128⌉, K/128]` f32 scales (a device). */
type ExpertWeights = ops.Fp8WeightSet | ops.Fp8WeightPart;

/** Expert e's parts `experts[e]` as one grouped weight (see ExpertWeights). */
function expertWeights(experts: readonly (readonly ops.Fp8WeightPart[])[]): ExpertWeights {
  if (experts[0][0].weight.device === 'cpu') return ops.fp8WeightSet(experts);
  const w: Tensor[] = [], s: Tensor[] = [];
  try {
    for (const parts of experts) {
      const one = stackParts(parts); //                                              [N, K]
      w.push(one.weight.reshape([1, ...one.weight.shape])); //                       [1, N, K]
      s.push(one.scale.reshape([1, ...one.scale.shape]));
      disposeParts([one]);
    }
    const weight = ops.concat(w, 0); //                                               [E, N, K]
    try {
      return { weight, scale: ops.concat(s, 0) };
    } catch (e) {
      weight.dispose();
      throw e;
    }
  } finally {
    for (const t of [...w, ...s]) t.dispose();
  }
}

function disposeWeights(w: ExpertWeights | undefined): void {
  if (w instanceof ops.Fp8WeightSet) w.dispose();
  else if (w) disposeParts([w]);
}

export class Experts {
  /** gate+up: `[E, 2I, dim]` FP8 (gate rows, then up rows) with `[E, 2I/128, dim/128]` scales. */
  readonly w13: ExpertWeights;
  /** down: `[E, dim, I]` FP8 with `[E, dim/128, I/128]` scales. */
  readonly w2: ExpertWeights;

  /** prefix: the layer's `….mlp`; expert e's tensors are `….mlp.experts.e.*`. */
  constructor(src: WeightSource, prefix: string, readonly cfg: ModelConfig) {
    const w13: ops.Fp8WeightPart[][] = [], w2: ops.Fp8WeightPart[][] = [];
    let gateUp: ExpertWeights | undefined;
    try {
      for (let e = 0; e < cfg.nRoutedExperts; ++e) {
        const p = `${prefix}.experts.${e}`;
        w13.push(gateUpParts(src, p));
        w2.push([fp8Part(src, `${p}.down_proj`)]);
      }
      this.w13 = gateUp = expertWeights(w13);
      this.w2 = expertWeights(w2);
    } catch (e) {
      disposeWeights(gateUp);
      throw e;
    } finally {
      // The weight sets hold what they read; the stacked copies are new tensors.
      for (const parts of [...w13, ...w2]) disposeParts(parts);
    }
  }

  /** x `[T, dim]`, ids `[T, k]` i32 (the Gate's choice) → each chosen expert's output per (token, choice). */
  forward(x: Tensor, ids: Tensor, act: Act): ExpertRows {
    const { scaleFmt } = this.cfg;
    const d = ops.moeDispatch(ids, this.cfg.nRoutedExperts);
    using tokenOfRow = d.tokenOfRow;
    using offsets = d.offsets;
    const exact = { exactBlockSums: act === 'f32' }; // see Fp8Linear.forward
    const gemm = (codes: Tensor, scales: Tensor, w: ExpertWeights): Tensor =>
      w instanceof ops.Fp8WeightSet
        ? ops.groupedFp8Gemm(codes, scales, w, offsets, act, exact)
        : ops.groupedFp8Gemm(codes, scales, w.weight, w.scale, offsets, act, exact);
    try {
      using xs = ops.gatherRows(x, tokenOfRow); //                                    [R, dim]
      const q1 = ops.actQuant(xs, { scaleFmt });
      using q1c = q1.codes;
      using q1s = q1.scales;
      using h = gemm(q1c, q1s, this.w13); //                                          [R, 2I]
      const q2 = swigluQuantised(h, act, scaleFmt); //                                [R, I] e4m3 + scales
      using q2c = q2.codes;
      using q2s = q2.scales;
      return { out: gemm(q2c, q2s, this.w2), rowOfSlot: d.rowOfSlot }; //            [R, dim]
    } catch (e) {
      d.rowOfSlot.dispose();
      throw e;
    }
  }

  dispose(): void {
    disposeWeights(this.w13);
    disposeWeights(this.w2);
  }
}
