/**
 * The MoE router, the reference's `Gate`: it scores every routed expert for each token (sigmoid, or
 * softmax over the experts, of x·Wᵀ in f32), chooses with the aux-loss-free correction bias added
 * (group-limited: only the best `topk_group` of `n_group` groups are eligible), and weighs the
 * chosen experts by their unbiased scores, normalised to sum 1 (`norm_topk_prob`) and times
 * `routed_scaling_factor`. The whole choice is one kernel, `ops.moeRoute`.
 */
import * as ops from '../ops/index.js';
import type { Tensor } from '../runtime/tensor.js';
import type { ModelConfig } from './config.js';
import type { WeightSource } from './linear.js';

/** The experts each token goes to, and their weights. */
export interface Route {
  /** `[T, k]` i32 expert ids, best first. */
  ids: Tensor;
  /** `[T, k]` f32. */
  weights: Tensor;
}

export class Gate {
  /** Router `[E, dim]` (bf16 in the checkpoint; the product runs in f32). */
  readonly weight: Tensor;
  /** Correction bias `[E]` f32, used for choosing experts only; null when the checkpoint has none. */
  readonly bias: Tensor | null;

  /** prefix: the layer's `….mlp`; the router's tensors are `….mlp.gate.*`. */
  constructor(src: WeightSource, prefix: string, readonly cfg: ModelConfig) {
    this.weight = src.tensor(`${prefix}.gate.weight`);
    this.bias = src.has(`${prefix}.gate.e_score_correction_bias`) ? src.tensor(`${prefix}.gate.e_score_correction_bias`) : null;
  }

  /** x `[T, dim]` → each token's `num_experts_per_tok` experts and their weights. */
  forward(x: Tensor): Route {
    const c = this.cfg;
    using logits = ops.gemm(x, this.weight, 'f32'); //                               [T, E]
    return ops.moeRoute(logits, this.bias, {
      topk: c.nActivatedExperts,
      nGroups: c.nExpertGroups,
      topkGroups: c.nLimitedGroups,
      scoreFunc: c.scoreFunc,
      routeScale: c.routeScale,
      normalize: c.normTopkProb,
    });
  }

  dispose(): void {
    this.weight.dispose();
    this.bias?.dispose();
  }
}
