/** One transformer block: RMSNorm → MLA → RMSNorm → FFN, with the residual stream carried beside. */
import * as ops from '../ops/index.js';
import type { ScoreDtype } from '../ops/attention.js';
import type { Act, Tensor } from '../runtime/tensor.js';
import type { ModelConfig } from './config.js';
import type { ForwardContext } from './context.js';
import type { KvCache } from './kv-cache.js';
import { addRmsNormQuantised, type Normed, rmsNormQuantised, type WeightSource } from './linear.js';
import { MLA } from './mla.js';
import { MLP } from './mlp.js';
import { MoE } from './moe.js';
import type { Rope } from './rope.js';

export class Block {
  readonly attnNorm: Tensor;
  readonly attn: MLA;
  readonly ffnNorm: Tensor;
  readonly ffn: MLP | MoE;

  constructor(src: WeightSource, prefix: string, readonly cfg: ModelConfig, readonly layer: number, act: Act, scoreDtype: ScoreDtype = 'f32') {
    this.attnNorm = src.tensor(`${prefix}.input_layernorm.weight`);
    this.attn = new MLA(src, `${prefix}.self_attn`, cfg, layer, act, scoreDtype);
    this.ffnNorm = src.tensor(`${prefix}.post_attention_layernorm.weight`);
    this.ffn = layer < cfg.nDenseLayers ? new MLP(src, `${prefix}.mlp`, cfg) : new MoE(src, `${prefix}.mlp`, cfg);
  }

  /**
   * x `[T, dim]`: the previous block's output; residual `[T, dim]` or null before the first block.
   * Returns this block's output and the residual stream (x + residual), as the reference does.
   */
  forward(x: Tensor, residual: Tensor | null, ctx: ForwardContext, cache: KvCache, rope: Rope, act: Act): { x: Tensor; residual: Tensor } {
    const { eps, scaleFmt } = this.cfg;
    // The attention norm's output is quantised once, by the norm's kernel, for the FP8 linears that
    // read it (q_a, kv_a and the indexer's k); the bits are actQuant's.
    let h: Normed, res: Tensor;
    if (residual === null) {
      h = rmsNormQuantised(x, this.attnNorm, eps, scaleFmt);
      res = ops.cast(x, act); // a copy: the caller owns x
    } else {
      ({ normed: h, residual: res } = addRmsNormQuantised(x, residual, this.attnNorm, eps, scaleFmt));
    }
    try {
      using a = this.attn.forward(h.out, ctx, cache, rope, act, h.quantised);
      const n = ops.addRmsNorm(a, res, this.ffnNorm, eps);
      using normed = n.out;
      return { x: this.ffn.forward(normed, act), residual: n.residual };
    } finally {
      h[Symbol.dispose]();
      res.dispose();
    }
  }

  dispose(): void {
    this.attnNorm.dispose();
    this.ffnNorm.dispose();
    this.attn.dispose();
    this.ffn.dispose();
  }
}
