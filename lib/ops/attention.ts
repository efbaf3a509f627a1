/**
 * MLA attention (DeepSeek-V3.2). Numerics, as the reference run in the activation dtype:
 * score = (Σ_d q·k) · scale in f32; invisible keys −inf; softmax in f32; the probabilities rounded
 * to the activation dtype (bf16 in bf16 mode) before the product with V; f32 accumulation; output
 * rounded to the activation dtype. The bf16 reference's einsums also round the scores to bf16 before
 * the softmax; these ops keep them in f32 by default (as FlashMLA does), and reproduce the reference's
 * rounding with `scoreDtype: 'bf16'` (bf16 activations only). A query that sees no key outputs zeros.
 * CPU and CUDA kernels (cuda/attention.cu; mlaPrefill in bf16 at the model's widths on tensor cores)
 * follow the same contract; they differ only in f32 summation order (and P one bf16 ulp apart where
 * the exact P lies within f32 noise of a rounding midpoint).
 */
import { invalidArgument } from '../runtime/errors.js';
import { handleOf, type Tensor, wrap } from '../runtime/tensor.js';
import { native } from '../runtime/native.js';

export interface MlaPrefillOptions {
  /** Softmax scale (the reference's softmax_scale, mscale² included). */
  scale: number;
  /** Dv (v_head_dim). */
  vHeadDim: number;
  /** `[T, k]` i32, −1 padded: when given, query t sees key s only if s is listed in row t (and s ≤ qPos[t]). */
  indices?: Tensor;
  /** 'f32' (default): scores in f32. 'bf16': s = bf16(bf16(q·k) · scale), as the bf16 reference's einsum. */
  scoreDtype?: ScoreDtype;
}

/** The dtype attention scores are kept in before the softmax. */
export type ScoreDtype = 'f32' | 'bf16';

function bf16Scores(op: string, v: unknown): boolean {
  if (v === undefined || v === 'f32') return false;
  if (v === 'bf16') return true;
  throw invalidArgument(op, 'scoreDtype', "'f32' or 'bf16'", v);
}

/**
 * Attention of one sequence's queries over its keys in the non-absorbed (MHA) form.
 * @param q `[T, H, Dn + Dr]` bf16 | f32: no-PE part, then RoPE part
 * @param kv `[S, H, Dn + Dv]`, q's dtype: k_nope then v per head (as the kv_b projection returns it)
 * @param kPe `[S, Dr]`, q's dtype: the RoPE key shared by the heads
 * @param qPos `[T]` i32: query t sees keys s ≤ qPos[t] (checked when the op runs: 0 ≤ qPos[t] < S, and
 *   −1 ≤ indices < S; on CUDA through the stream's error word: "mlaPrefill: position … / key index … is out of range")
 * @returns `[T, H, Dv]`, q's dtype
 */
export function mlaPrefill(q: Tensor, kv: Tensor, kPe: Tensor, qPos: Tensor, options: MlaPrefillOptions): Tensor {
  const op = 'mlaPrefill';
  if (typeof options !== 'object' || options === null) throw invalidArgument(op, 'options', 'an object { scale, vHeadDim, indices? }', options);
  return wrap(
    native().ops.mlaPrefill(
      handleOf(q, op, 'q'),
      handleOf(kv, op, 'kv'),
      handleOf(kPe, op, 'kPe'),
      handleOf(qPos, op, 'qPos'),
      options.scale,
      options.vHeadDim,
      options.indices === undefined ? undefined : handleOf(options.indices, op, 'indices'),
      bf16Scores(op, options.scoreDtype),
    ),
  );
}

export interface MlaDecodeOptions {
  /** Softmax scale. */
  scale: number;
  /** `[T, k]` i32, −1 padded logical key positions: when given, only listed keys (≤ qPos[t]) are visible. */
  indices?: Tensor;
  /** 'f32' (default): scores in f32. 'bf16': s = bf16(bf16(bf16(qLatent·c_lat) + bf16(qPe·c_pe)) · scale), as the
   *  bf16 reference's two einsums. */
  scoreDtype?: ScoreDtype;
}

/**
 * Attention in the absorbed (MQA) form over the paged latent cache, for a ragged batch of T
 * queries: score = (qLatent·c_lat + qPe·c_pe) · scale, out = Σ P · c_lat.
 * @param qLatent `[T, H, C]` bf16 | f32 (q_nope already multiplied by W_UK)
 * @param qPe `[T, H, Dr]`, qLatent's dtype
 * @param cache `[numBlocks, 64, C + Dr]`, qLatent's dtype: latent, then RoPE key; or the FP8 latent cache
 *   `[numBlocks, 64, latentCacheRowBytes(C, Dr, dtype)]` u8 (see `latentCacheWrite`), dequantised as it is read
 *   (the scores are those of a cache holding the dequantised values)
 * @param blockTable `[B, maxBlocks]` i32: logical key s of sequence b is in block blockTable[b][s / 64], row s % 64
 * @param seqIdx `[T]` i32: the blockTable row of each query
 * @param qPos `[T]` i32: query t sees keys 0…qPos[t] of its sequence
 * @returns `[T, H, C]`, qLatent's dtype (the caller applies W_UV)
 */
export function mlaDecode(
  qLatent: Tensor,
  qPe: Tensor,
  cache: Tensor,
  blockTable: Tensor,
  seqIdx: Tensor,
  qPos: Tensor,
  options: MlaDecodeOptions,
): Tensor {
  const op = 'mlaDecode';
  if (typeof options !== 'object' || options === null) throw invalidArgument(op, 'options', 'an object { scale, indices? }', options);
  return wrap(
    native().ops.mlaDecode(
      handleOf(qLatent, op, 'qLatent'),
      handleOf(qPe, op, 'qPe'),
      handleOf(cache, op, 'cache'),
      handleOf(blockTable, op, 'blockTable'),
      handleOf(seqIdx, op, 'seqIdx'),
      handleOf(qPos, op, 'qPos'),
      options.scale,
      options.indices === undefined ? undefined : handleOf(options.indices, op, 'indices'),
      bf16Scores(op, options.scoreDtype),
    ),
  );
}
