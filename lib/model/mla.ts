/**
 * Multi-head latent attention (MLA) with DSA. Queries go through the q_lora latent; keys and values
 * through the kv_lora latent, which the cache stores with the shared RoPE key. Prefill chunks use the
 * non-absorbed form (kv_b expands the latent of every key); single-token decode uses the absorbed form
 * (W_UK folded into the query, W_UV into the output) over the latent cache.
 *
 * As in DeepSeek's corrected V3.2 reference, the latent goes through a 1×128 FP8 round trip before it is
 * used: the cache stores it as deployed (E4M3 codes + f32 scales, `ops.latentCacheWrite`), and both
 * forms read it back dequantised, so prefill's up-projection sees the same latent as decode.
 * Numerics: attention scores and the softmax stay in f32 in both activation modes (as FlashMLA keeps
 * them); the bf16 reference rounds its scores to bf16 before the softmax. The golden test shows what
 * that costs (test/model/golden.test.ts: our bf16 run sits closer to the reference's bf16 logits than
 * the reference's own f32 run does).
 */
import * as ops from '../ops/index.js';
import type { ScoreDtype } from '../ops/attention.js';
import type { Act, Tensor } from '../runtime/tensor.js';
import type { ModelConfig } from './config.js';
import type { ForwardContext } from './context.js';
import { Indexer } from './indexer.js';
import type { KvCache } from './kv-cache.js';
import { Fp8Linear, type Quantised, rmsNormQuantised, type WeightSource } from './linear.js';
import type { Rope } from './rope.js';

export class MLA {
  readonly wqA: Fp8Linear;
  readonly qNorm: Tensor;
  readonly wqB: Fp8Linear;
  readonly wkvA: Fp8Linear;
  readonly kvNorm: Tensor;
  readonly wkvB: Fp8Linear;
  readonly wo: Fp8Linear;
  readonly indexer: Indexer | null;
  /** W_UK `[H, nope, kv_lora]` and W_UVᵀ `[H, kv_lora, v]`, dequantised from kv_b in the activation dtype. */
  readonly wUK: Tensor;
  readonly wUVt: Tensor;

  constructor(src: WeightSource, prefix: string, readonly cfg: ModelConfig, readonly layer: number, act: Act, readonly scoreDtype: ScoreDtype = 'f32') {
    const f = cfg.scaleFmt;
    this.wqA = Fp8Linear.load(src, `${prefix}.q_a_proj`, f);
    this.qNorm = src.tensor(`${prefix}.q_a_layernorm.weight`);
    this.wqB = Fp8Linear.load(src, `${prefix}.q_b_proj`, f);
    this.wkvA = Fp8Linear.load(src, `${prefix}.kv_a_proj_with_mqa`, f);
    this.kvNorm = src.tensor(`${prefix}.kv_a_layernorm.weight`);
    this.wkvB = Fp8Linear.load(src, `${prefix}.kv_b_proj`, f);
    this.wo = Fp8Linear.load(src, `${prefix}.o_proj`, f);
    this.indexer = cfg.sparse ? new Indexer(src, `${prefix}.indexer`, cfg, layer) : null;
    const { nHeads: H, qkNopeHeadDim: nope, vHeadDim: v, kvLoraRank: C } = cfg;
    using wkvB = ops.fp8Dequant(this.wkvB.weight, this.wkvB.scale, act); // [H·(nope+v), C]
    using perHead = wkvB.reshape([H, nope + v, C]);
    this.wUK = ops.slice(perHead, 1, 0, nope); //                                  [H, nope, C]
    using wUV = ops.slice(perHead, 1, nope, v); //                                 [H, v, C]
    this.wUVt = ops.transpose(wUV, 1, 2);//                                        [H, C, v]
  }

  /** x `[T, dim]` (normalised; xq: its FP8 quantisation when the norm made it) → `[T, dim]`. */
  forward(x: Tensor, ctx: ForwardContext, cache: KvCache, rope: Rope, act: Act, xq: Quantised | null = null): Tensor {
    const { nHeads: H, qkNopeHeadDim: nope, qkRopeHeadDim: Dr, vHeadDim: v, kvLoraRank: C, eps, softmaxScale: scale } = this.cfg;
    const T = ctx.T;
    using qa = this.wqA.forward(x, act, xq);
    using qr = rmsNormQuantised(qa, this.qNorm, eps, this.cfg.scaleFmt); //         [T, q_lora] (+ FP8 for q_b and the indexer)
    using qLin = this.wqB.forward(qr.out, act, qr.quantised);
    using q0 = qLin.reshape([T, H, nope + Dr]);
    using q = ops.rope(q0, ctx.positions, rope.cos, rope.sin, { offset: nope, interleaved: true }); // [T, H, nope+Dr]
    using kvA = this.wkvA.forward(x, act, xq); //                                       [T, C+Dr]
    using latent0 = ops.slice(kvA, -1, 0, C);
    using latent = ops.rmsNorm(latent0, this.kvNorm, eps); //                      [T, C]
    using kPe0 = ops.slice(kvA, -1, C, Dr);
    using kPe = ops.rope(kPe0, ctx.positions, rope.cos, rope.sin, { offset: 0, interleaved: true }); // [T, Dr]
    ops.latentCacheWrite(cache.latent[this.layer], latent, kPe, ctx.slots, { scaleFmt: this.cfg.scaleFmt }); // FP8 rows
    using topk = this.indexer?.forward(x, qr.out, ctx, cache, rope, act, xq, qr.quantised) ?? null; // [T, k] or null

    const parts: Tensor[] = [];
    try {
      if (ctx.decode) {
        const D = ctx.decodeRows;
        using qD = q.rows(0, D);
        using qNope = ops.slice(qD, -1, 0, nope); //                               [D, H, nope]
        using qPe = ops.slice(qD, -1, nope, Dr); //                                [D, H, Dr]
        using qLat = ops.bmmHeads(qNope, this.wUK, act); //      [D, H, C]
        using idx = topk ? topk.rows(0, D) : null;
        using o = ops.mlaDecode(qLat, qPe, cache.latent[this.layer], ctx.blockTable, ctx.decode.seqIdx, ctx.decode.qPos, {
          scale,
          scoreDtype: this.scoreDtype,
          ...(idx ? { indices: idx } : {}),
        }); //                                                                      [D, H, C]
        parts.push(ops.bmmHeads(o, this.wUVt, act)); //          [D, H, v]
      }
      for (const p of ctx.prefill) {
        using rows = ops.latentCacheRead(cache.latent[this.layer], p.keySlots, C, Dr, act); // [S, C+Dr], dequantised
        using lat = ops.slice(rows, -1, 0, C);
        using pe = ops.slice(rows, -1, C, Dr); //                                  [S, Dr]
        using kv0 = this.wkvB.forward(lat, act);
        using kv = kv0.reshape([p.keys, H, nope + v]); //                         [S, H, nope+v]
        using qP = q.rows(p.rowStart, p.n);
        using idx = topk ? topk.rows(p.rowStart, p.n) : null;
        parts.push(ops.mlaPrefill(qP, kv, pe, p.qPos, { scale, vHeadDim: v, scoreDtype: this.scoreDtype, ...(idx ? { indices: idx } : {}) })); // [n, H, v]
      }
      using all = parts.length === 1 ? null : ops.concat(parts, 0); //               [T, H, v]
      using o = (all ?? parts[0]).reshape([T, H * v]);
      return this.wo.forward(o, act);
    } finally {
      for (const t of parts) t.dispose();
    }
  }

  dispose(): void {
    for (const l of [this.wqA, this.wqB, this.wkvA, this.wkvB, this.wo]) l.dispose();
    for (const t of [this.qNorm, this.kvNorm, this.wUK, this.wUVt]) t.dispose();
    this.indexer?.dispose();
  }
}
