/**
 * The paged cache: `[numBlocks, BLOCK_TOKENS, W]`, a sequence's token s in block
 * blockTable[seq][s / 64] at row s % 64. A slot is block · 64 + row.
 */
import { invalidArgument, isPositiveInteger, isNonNegativeInteger } from '../runtime/errors.js';
import { type Act, handleOf, type Tensor, wrap } from '../runtime/tensor.js';
import { native } from '../runtime/native.js';

/** Tokens per cache block. */
export const BLOCK_TOKENS = 64;

/**
 * Writes rows into the cache in place, queued in order on the cache's stream (a later row wins a
 * repeated slot).
 * A cache with one value per token (the indexer's kScales `[numBlocks, 64]`) is written through a
 * `[numBlocks, 64, 1]` view: `pagedWrite(kScales.reshape([n, 64, 1]), s.reshape([T, 1]), slots)`.
 * @param cache `[numBlocks, 64, W]` any dtype
 * @param rows `[T, W]`, cache's dtype
 * @param slots `[T]` i32 (checked when the op runs: 0 ≤ slot < numBlocks · 64)
 */
export function pagedWrite(cache: Tensor, rows: Tensor, slots: Tensor): void {
  native().ops.pagedWrite(handleOf(cache, 'pagedWrite', 'cache'), handleOf(rows, 'pagedWrite', 'rows'), handleOf(slots, 'pagedWrite', 'slots'));
}

/**
 * The cache rows at `slots`.
 * @param cache `[numBlocks, 64, W]` any dtype
 * @param slots `[S]` i32 (checked when the op runs: 0 ≤ slot < numBlocks · 64)
 * @returns `[S, W]`, cache's dtype
 */
export function pagedGather(cache: Tensor, slots: Tensor): Tensor {
  return wrap(native().ops.pagedGather(handleOf(cache, 'pagedGather', 'cache'), handleOf(slots, 'pagedGather', 'slots')));
}

/** Elements of the MLA latent per FP8 quantisation group (1×128, as actQuant). */
export const LATENT_GROUP = 128;

/**
 * Bytes one token takes in one layer's FP8 latent cache (FlashMLA's FP8 KV format, what DeepSeek
 * deploys): C E4M3 codes of the latent, C/128 f32 group scales, then the Dr-dim RoPE key in the
 * activation dtype. DeepSeek-V3.2 (C 512, Dr 64, bf16): 656 bytes, against 1152 for a bf16 latent.
 */
export function latentCacheRowBytes(latentDim: number, ropeDim: number, dtype: Act): number {
  const where = 'latentCacheRowBytes';
  if (!isPositiveInteger(latentDim) || latentDim % LATENT_GROUP !== 0)
    throw invalidArgument(where, 'latentDim', `a positive multiple of ${LATENT_GROUP}`, latentDim, typeof latentDim === 'number');
  if (!isNonNegativeInteger(ropeDim)) throw invalidArgument(where, 'ropeDim', 'a non-negative integer', ropeDim, typeof ropeDim === 'number');
  if (dtype !== 'bf16' && dtype !== 'f32') throw invalidArgument(where, 'dtype', "'bf16' or 'f32'", dtype);
  return latentDim + (4 * latentDim) / LATENT_GROUP + ropeDim * (dtype === 'f32' ? 4 : 2);
}

export interface LatentCacheWriteOptions {
  /** Round the group scales up to powers of two (the checkpoint's `scale_fmt: ue8m0`). */
  scaleFmt?: 'ue8m0' | null;
}

/**
 * Writes tokens into the FP8 latent cache in place, queued on the cache's stream: each latent row is
 * quantised per 1×128 group exactly as `actQuant` does (codes and scales bit for bit), stored with its
 * RoPE key (kept in the activation dtype). This is the corrected reference's FP8 round trip of the
 * latent before caching, stored as deployed instead of simulated. A later row wins a repeated slot.
 * @param cache `[numBlocks, 64, latentCacheRowBytes(C, Dr, dtype)]` u8
 * @param latent `[T, C]` bf16 | f32 (the normalised kv latent; C a multiple of 128)
 * @param kPe `[T, Dr]`, latent's dtype (the RoPE'd shared key)
 * @param slots `[T]` i32 (checked when the op runs: 0 ≤ slot < numBlocks · 64)
 */
export function latentCacheWrite(cache: Tensor, latent: Tensor, kPe: Tensor, slots: Tensor, options: LatentCacheWriteOptions = {}): void {
  const op = 'latentCacheWrite';
  if (typeof options !== 'object' || options === null) throw invalidArgument(op, 'options', 'an object { scaleFmt? }', options);
  const fmt = options.scaleFmt ?? null;
  if (fmt !== null && fmt !== 'ue8m0') throw invalidArgument(op, 'scaleFmt', "'ue8m0' or null", fmt);
  native().ops.latentCacheWrite(handleOf(cache, op, 'cache'), handleOf(latent, op, 'latent'), handleOf(kPe, op, 'kPe'), handleOf(slots, op, 'slots'), fmt === 'ue8m0');
}

/**
 * Reads tokens back from the FP8 latent cache, dequantised: latent[c] = dtype(f32(code[c]) · scale[c/128])
 * (rounded once), then the RoPE key.
 * @param cache `[numBlocks, 64, latentCacheRowBytes(C, Dr, dtype)]` u8
 * @param slots `[S]` i32 (checked when the op runs)
 * @returns `[S, C + Dr]` of dtype
 */
export function latentCacheRead(cache: Tensor, slots: Tensor, latentDim: number, ropeDim: number, dtype: Act): Tensor {
  const op = 'latentCacheRead';
  return wrap(native().ops.latentCacheRead(handleOf(cache, op, 'cache'), handleOf(slots, op, 'slots'), latentDim, ropeDim, dtype));
}
