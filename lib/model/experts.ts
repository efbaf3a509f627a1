/**
 * The routed experts of one MoE layer, as one bank: every expert's SwiGLU MLP stacked, run as two
 * grouped FP8 GEMMs over the token rows sorted by expert (the reference loops over its `Expert`s;
 * the arithmetic per row is the same).
 */
import * as ops from '../ops/index.js';
import type { Act, Tensor } from '../runtime/tensor.js';
import type { ModelConfig } from './config.js';
import type { WeightSource } from './linear.js';
import { stackGateUp } from './mlp.js';

/** What the experts computed, one row per (token, choice), in expert order. */
export interface ExpertRows {
  /** `[T·k, dim]` in the activation dtype. */
  out: Tensor;
  /** `[T·k]` i32: the row of slot t·k + j (token t's j-th choice). */
  rowOfSlot: Tensor;
}

export class Experts {
  /** gate+up `[E, 2I, dim]` FP8 and its block scales `[E, 2I/128, dim/128]` f32. */
  readonly w13: Tensor;
  readonly w13Scale: Tensor;
  /** down `[E, dim, I]` FP8 and its block scales `[E, dim/128, I/128]` f32. */
  readonly w2: Tensor;
  readonly w2Scale: Tensor;

  /** prefix: the layer's `….mlp`; expert e's tensors are `….mlp.experts.e.*`. */
  constructor(src: WeightSource, prefix: string, readonly cfg: ModelConfig) {
    const w13: Tensor[] = [], w13s: Tensor[] = [], w2: Tensor[] = [], w2s: Tensor[] = [];
    try {
      for (let e = 0; e < cfg.nRoutedExperts; ++e) {
        const p = `${prefix}.experts.${e}`;
        const gu = stackGateUp(src, p, cfg.scaleFmt);
        w13.push(gu.weight.reshape([1, ...gu.weight.shape]));
        w13s.push(gu.scale.reshape([1, ...gu.scale.shape]));
        gu.dispose();
        using d = src.tensor(`${p}.down_proj.weight`);
        using ds = src.tensor(`${p}.down_proj.weight_scale_inv`);
        w2.push(d.reshape([1, ...d.shape]));
        w2s.push(ds.reshape([1, ...ds.shape]));
      }
      this.w13 = ops.concat(w13, 0);
      this.w13Scale = ops.concat(w13s, 0);
      this.w2 = ops.concat(w2, 0);
      this.w2Scale = ops.concat(w2s, 0);
    } finally {
      for (const t of [...w13, ...w13s, ...w2, ...w2s]) t.dispose();
    }
  }

  /** x `[T, dim]`, ids `[T, k]` i32 (the Gate's choice) → each chosen expert's output per (token, choice). */
  forward(x: Tensor, ids: Tensor, act: Act): ExpertRows {
    const { scaleFmt } = this.cfg;
    const d = ops.moeDispatch(ids, this.cfg.nRoutedExperts);
    using tokenOfRow = d.tokenOfRow;
    using offsets = d.offsets;
    try {
      using xs = ops.gatherRows(x, tokenOfRow); //                                    [R, dim]
      const q1 = ops.actQuant(xs, { scaleFmt });
      using q1c = q1.codes;
      using q1s = q1.scales;
      const exact = { exactBlockSums: act === 'f32' }; // see Fp8Linear.forward
      using h = ops.groupedFp8Gemm(q1c, q1s, this.w13, this.w13Scale, offsets, act, exact); // [R, 2I]
      using g = ops.swiglu(h, act); //                                                [R, I]
      const q2 = ops.actQuant(g, { scaleFmt });
      using q2c = q2.codes;
      using q2s = q2.scales;
      return { out: ops.groupedFp8Gemm(q2c, q2s, this.w2, this.w2Scale, offsets, act, exact), rowOfSlot: d.rowOfSlot }; // [R, dim]
    } catch (e) {
      d.rowOfSlot.dispose();
      throw e;
    }
  }

  dispose(): void {
    for (const t of [this.w13, this.w13Scale, this.w2, this.w2Scale]) t.dispose();
  }
}
