/**
 * The DSA lightning indexer (DeepSeek-V3.2): per token, FP8 queries of `index_n_heads` heads and one
 * shared FP8 key (LayerNorm, RoPE on the first `qk_rope_head_dim` dims, Hadamard rotation, 1×128
 * quantisation); score(t, s) = Σ_h w[t,h]·relu(q[t,h]·k[s]); each query keeps its top `index_topk` keys.
 * As DeepSeek's corrected V3.2 reference: the indexer's RoPE is half-split (non-interleaved, unlike
 * MLA's), and the per-head weights `weights_proj(x)` are computed in f32 on the f32 input.
 */
import { BLOCK_TOKENS } from '../ops/cache.js';
import * as ops from '../ops/index.js';
import type { Act, Tensor } from '../runtime/tensor.js';
import type { ModelConfig } from './config.js';
import type { ForwardContext } from './context.js';
import type { KvCache } from './kv-cache.js';
import { DenseLinear, Fp8Linear, type Quantised, type WeightSource } from './linear.js';
import type { Rope } from './rope.js';

/** The eps of k_norm: the reference's LayerNorm default, fixed (config.json's rms_norm_eps is the RMSNorms'). */
const K_NORM_EPS = 1e-6;

export class Indexer {
  readonly wqB: Fp8Linear;
  readonly wk: Fp8Linear;
  readonly kNormWeight: Tensor;
  readonly kNormBias: Tensor;
  readonly weightsProj: DenseLinear;

  constructor(src: WeightSource, prefix: string, readonly cfg: ModelConfig, readonly layer: number) {
    this.wqB = Fp8Linear.load(src, `${prefix}.wq_b`, cfg.scaleFmt);
    this.wk = Fp8Linear.load(src, `${prefix}.wk`, cfg.scaleFmt);
    this.kNormWeight = src.tensor(`${prefix}.k_norm.weight`);
    this.kNormBias = src.tensor(`${prefix}.k_norm.bias`);
    this.weightsProj = new DenseLinear(src.tensor(`${prefix}.weights_proj.weight`));
  }

  /**
   * Writes this step's index keys into the cache and returns the top-k key positions per row
   * (`[T, k]` i32, −1 padded), or null when every query may see all of its keys anyway.
   * x `[T, dim]`, qr `[T, q_lora_rank]` (the normalised query latent of MLA); xq, qrq: their FP8
   * quantisations when the norms' kernels made them.
   */
  forward(x: Tensor, qr: Tensor, ctx: ForwardContext, cache: KvCache, rope: Rope, act: Act, xq: Quantised | null = null, qrq: Quantised | null = null): Tensor | null {
    const { indexNHeads: Hi, indexHeadDim: Di, scaleFmt } = this.cfg;
    const T = ctx.T;
    using qLin = this.wqB.forward(qr, act, qrq);
    using q0 = qLin.reshape([T, Hi, Di]); //                                     [T, Hi, Di]
    using qRot = ops.rope(q0, ctx.positions, rope.cos, rope.sin, { offset: 0, interleaved: false }); // half-split
    using q = ops.hadamard(qRot);
    using kLin = this.wk.forward(x, act, xq); //                                       [T, Di]
    using kNorm = ops.layerNorm(kLin, this.kNormWeight, this.kNormBias, K_NORM_EPS);
    using kRot = ops.rope(kNorm, ctx.positions, rope.cos, rope.sin, { offset: 0, interleaved: false });
    using k = ops.hadamard(kRot);
    const kq = ops.actQuant(k, { scaleFmt }); //                                   [T, Di] e4m3, [T, 1]
    using kCodes = kq.codes;
    using kScales = kq.scales;
    ops.pagedWrite(cache.indexKeys[this.layer], kCodes, ctx.slots);
    ops.pagedWrite(cache.indexScales[this.layer], kScales, ctx.slots);
    if (this.cfg.indexTopk >= ctx.maxKeys) return null; // every query keeps all of its keys

    const qq = ops.actQuant(q, { scaleFmt }); //                                   [T, Hi, Di] e4m3, [T, Hi, 1]
    using qCodes = qq.codes;
    using qScales0 = qq.scales;
    using qScales = qScales0.reshape([T, Hi]);
    // weights = weights_proj(f32(x))·Hi^-½ · q_scale · Di^-½, all in f32.
    using xF32 = act === 'f32' ? null : ops.cast(x, 'f32');
    using w0 = this.weightsProj.forward(xF32 ?? x, 'f32'); //                    [T, Hi] f32
    using w1 = ops.scale(w0, Hi ** -0.5);
    using w3 = ops.mul(w1, qScales);
    using weights = ops.scale(w3, Di ** -0.5);
    using kScaleCache = cache.indexScales[this.layer].reshape([-1, BLOCK_TOKENS]); // [numBlocks, 64]
    using scores = ops.indexerScores(qCodes, weights, cache.indexKeys[this.layer], kScaleCache,
      ctx.blockTable, ctx.seqIdx, ctx.positions, ctx.maxKeys); //                   [T, maxKeys] f32
    // Each row ranks all keys of its sequence (future ones at −inf), as the reference's masked scores.
    return ops.topK(scores, Math.min(this.cfg.indexTopk, ctx.maxKeys), ctx.seqKeys);
  }

  dispose(): void {
    this.wqB.dispose();
    this.wk.dispose();
    this.kNormWeight.dispose();
    this.kNormBias.dispose();
    this.weightsProj.dispose();
  }
}
