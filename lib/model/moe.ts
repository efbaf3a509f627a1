/**
 * Feed-forward layers: the dense SwiGLU MLP of the first layers and DeepSeekMoE (a sigmoid router with
 * an aux-loss-free correction bias, group-limited top-k, routed experts run as grouped FP8 GEMMs over
 * expert-contiguous rows, plus shared experts). Gate and up projections are stacked into one
 * `[2·inter, dim]` weight (same outputs as two GEMMs: every output element is computed alone).
 */
import * as ops from '../ops/index.js';
import type { Act, Tensor } from '../runtime/tensor.js';
import type { ModelConfig } from './config.js';
import { Fp8Linear, type WeightSource } from './linear.js';

/** Stacks the `[I, dim]` gate and up FP8 weights (and their scales) of one MLP into `[2I, dim]`. */
function stackGateUp(src: WeightSource, prefix: string, scaleFmt: 'ue8m0' | null): Fp8Linear {
  using g = src.tensor(`${prefix}.gate_proj.weight`);
  using u = src.tensor(`${prefix}.up_proj.weight`);
  using gs = src.tensor(`${prefix}.gate_proj.weight_scale_inv`);
  using us = src.tensor(`${prefix}.up_proj.weight_scale_inv`);
  return new Fp8Linear(ops.concat([g, u], 0), ops.concat([gs, us], 0), scaleFmt);
}

/** SwiGLU MLP: w2(silu(w1·x) · (w3·x)). */
export class MLP {
  readonly w13: Fp8Linear;
  readonly w2: Fp8Linear;

  constructor(src: WeightSource, prefix: string, cfg: ModelConfig) {
    this.w13 = stackGateUp(src, prefix, cfg.scaleFmt);
    this.w2 = Fp8Linear.load(src, `${prefix}.down_proj`, cfg.scaleFmt);
  }

  /** x `[T, dim]` → `[T, dim]`. */
  forward(x: Tensor, act: Act): Tensor {
    using h = this.w13.forward(x, act); //                                         [T, 2I]
    using a = ops.swiglu(h, act); //                                                [T, I]
    return this.w2.forward(a, act);
  }

  dispose(): void {
    this.w13.dispose();
    this.w2.dispose();
  }
}

/** DeepSeekMoE. */
export class MoE {
  /** Router `[E, dim]` (bf16 in the checkpoint; the product runs in f32). */
  readonly gate: Tensor;
  /** Correction bias `[E]` f32, used for choosing experts only; null when the checkpoint has none. */
  readonly bias: Tensor | null;
  /** Routed experts, stacked: gate+up `[E, 2I, dim]`, down `[E, dim, I]`, FP8 with block scales. */
  readonly w13: Tensor;
  readonly w13Scale: Tensor;
  readonly w2: Tensor;
  readonly w2Scale: Tensor;
  readonly shared: MLP | null;

  constructor(src: WeightSource, prefix: string, readonly cfg: ModelConfig) {
    const E = cfg.nRoutedExperts;
    this.gate = src.tensor(`${prefix}.gate.weight`);
    this.bias = src.has(`${prefix}.gate.e_score_correction_bias`) ? src.tensor(`${prefix}.gate.e_score_correction_bias`) : null;
    const w13: Tensor[] = [], w13s: Tensor[] = [], w2: Tensor[] = [], w2s: Tensor[] = [];
    try {
      for (let e = 0; e < E; ++e) {
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
    this.shared = cfg.nSharedExperts > 0 ? new MLP(src, `${prefix}.shared_experts`, cfg) : null;
  }

  /** x `[T, dim]` → `[T, dim]`. */
  forward(x: Tensor, act: Act): Tensor {
    const c = this.cfg;
    using logits = ops.gemm(x, this.gate, 'f32'); //                                 [T, E]
    const route = ops.moeRoute(logits, this.bias, {
      topk: c.nActivatedExperts,
      nGroups: c.nExpertGroups,
      topkGroups: c.nLimitedGroups,
      scoreFunc: c.scoreFunc,
      routeScale: c.routeScale,
      normalize: c.normTopkProb,
    });
    using ids = route.ids; //                                                         [T, k] i32
    using weights = route.weights; //                                                 [T, k] f32
    const d = ops.moeDispatch(ids, c.nRoutedExperts);
    using tokenOfRow = d.tokenOfRow;
    using rowOfSlot = d.rowOfSlot;
    using offsets = d.offsets;
    using xs = ops.gatherRows(x, tokenOfRow); //                                      [R, dim]
    const q1 = ops.actQuant(xs, { scaleFmt: c.scaleFmt });
    using q1c = q1.codes;
    using q1s = q1.scales;
    const exact = { exactBlockSums: act === 'f32' }; // see Fp8Linear.forward
    using h = ops.groupedFp8Gemm(q1c, q1s, this.w13, this.w13Scale, offsets, act, exact); // [R, 2I]
    using g = ops.swiglu(h, act); //                                                    [R, I]
    const q2 = ops.actQuant(g, { scaleFmt: c.scaleFmt });
    using q2c = q2.codes;
    using q2s = q2.scales;
    using out = ops.groupedFp8Gemm(q2c, q2s, this.w2, this.w2Scale, offsets, act, exact); // [R, dim]
    using shared = this.shared ? this.shared.forward(x, act) : null; //              [T, dim]
    return ops.moeCombine(out, rowOfSlot, weights, ids, shared, act);
  }

  dispose(): void {
    for (const t of [this.gate, this.w13, this.w13Scale, this.w2, this.w2Scale]) t.dispose();
    this.bias?.dispose();
    this.shared?.dispose();
  }
}
