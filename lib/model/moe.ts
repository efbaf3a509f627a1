/**
 * DeepSeekMoE, as the reference's `MoE`: the Gate chooses `num_experts_per_tok` routed experts per
 * token, the expert bank runs them, and their outputs, weighted, are summed per token with the
 * shared experts' output (an MLP every token goes through).
 */
import * as ops from '../ops/index.js';
import type { Act, Tensor } from '../runtime/tensor.js';
import type { ModelConfig } from './config.js';
import { Experts } from './experts.js';
import { Gate } from './gate.js';
import type { WeightSource } from './linear.js';
import { MLP } from './mlp.js';

export class MoE {
  readonly gate: Gate;
  readonly experts: Experts;
  readonly shared: MLP | null;

  /** prefix: the layer's `….mlp`. */
  constructor(src: WeightSource, prefix: string, cfg: ModelConfig) {
    this.gate = new Gate(src, prefix, cfg);
    let experts: Experts | undefined;
    try {
      this.experts = experts = new Experts(src, prefix, cfg);
      this.shared = cfg.nSharedExperts > 0 ? new MLP(src, `${prefix}.shared_experts`, cfg) : null;
    } catch (e) {
      this.gate.dispose();
      experts?.dispose();
      throw e;
    }
  }

  /** x `[T, dim]` → `[T, dim]`. */
  forward(x: Tensor, act: Act): Tensor {
    const route = this.gate.forward(x);
    using ids = route.ids; //                                                         [T, k] i32
    using weights = route.weights; //                                                 [T, k] f32
    const rows = this.experts.forward(x, ids, act);
    using out = rows.out; //                                                          [T·k, dim]
    using rowOfSlot = rows.rowOfSlot; //                                              [T·k] i32
    using shared = this.shared ? this.shared.forward(x, act) : null; //              [T, dim]
    return ops.moeCombine(out, rowOfSlot, weights, ids, shared, act);
  }

  dispose(): void {
    this.gate.dispose();
    this.experts.dispose();
    this.shared?.dispose();
  }
}
