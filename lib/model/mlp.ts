/**
 * The dense SwiGLU MLP of the first `first_k_dense_replace` layers, also the MoE's shared experts.
 * Gate and up projections are stacked into one `[2·inter, dim]` weight (the same outputs as two
 * GEMMs: every output element is computed alone).
 */
import * as ops from '../ops/index.js';
import type { Act, Tensor } from '../runtime/tensor.js';
import type { ModelConfig } from './config.js';
import { Fp8Linear, type WeightSource } from './linear.js';

/** Stacks the `[I, dim]` gate and up FP8 weights (and their scales) of one MLP into `[2I, dim]`. */
export function stackGateUp(src: WeightSource, prefix: string, scaleFmt: 'ue8m0' | null): Fp8Linear {
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
