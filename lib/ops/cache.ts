/**
 * The paged cache: `[numBlocks, BLOCK_TOKENS, W]`, a sequence's token s in block
 * blockTable[seq][s / 64] at row s % 64. A slot is block · 64 + row.
 */
import { handleOf, type Tensor, wrap } from '../runtime/tensor.js';
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
