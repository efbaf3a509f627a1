/**
 * The paged KV cache: 64-token blocks from one pool per model, a block table per sequence.
 * Per layer and token it holds the MLA latent as DeepSeek deploys it — FP8 (FlashMLA's format:
 * kv_lora E4M3 codes, one f32 scale per 128 of them, and the RoPE key in the activation dtype;
 * `[numBlocks, 64, rowBytes]` u8, 656 bytes a token for V3.2 in bf16, see `ops.latentCacheWrite`) —
 * and, for DSA, the indexer key (`[numBlocks, 64, index_head_dim]` E4M3 and one f32 scale per token,
 * `[numBlocks, 64, 1]`).
 */
import { DisposedError } from '../runtime/errors.js';
import { BLOCK_TOKENS, latentCacheRowBytes } from '../ops/cache.js';
import { type Act, type Tensor, zeros } from '../runtime/tensor.js';
import type { ModelConfig } from './config.js';

export { BLOCK_TOKENS };

export class CacheFullError extends Error {
  override name = 'CacheFullError';
}

/** The free list of cache blocks. It never hands out a block twice nor takes one back twice: each
 *  block is either free or held, and give() of a block that is free or out of range throws (an
 *  internal error: two sequences would otherwise share a block). */
export class BlockPool {
  readonly #free: number[];
  readonly #isFree: Uint8Array;
  constructor(readonly numBlocks: number) {
    this.#free = Array.from({ length: numBlocks }, (_, i) => numBlocks - 1 - i);
    this.#isFree = new Uint8Array(numBlocks).fill(1);
  }
  get freeBlocks(): number {
    return this.#free.length;
  }
  /** Takes `n` blocks, or throws CacheFullError taking none. */
  take(n: number, why: string): number[] {
    if (n > this.#free.length)
      throw new CacheFullError(`KV cache is full: ${why} needs ${n} more block(s) of ${BLOCK_TOKENS} tokens but ${this.#free.length} of ${this.numBlocks} are free; dispose finished sequences or raise maxSequences/maxContext`);
    const taken = this.#free.splice(this.#free.length - n, n);
    for (const b of taken) this.#isFree[b] = 0;
    return taken;
  }
  /** Returns held blocks; throws, returning none, when one is out of range, already free or listed twice. */
  give(blocks: readonly number[]): void {
    const seen = new Set<number>();
    for (const b of blocks) {
      if (!Number.isInteger(b) || b < 0 || b >= this.numBlocks || this.#isFree[b] || seen.has(b))
        throw new Error(`BlockPool: block ${b} is given back twice or was never taken (${this.#free.length} of ${this.numBlocks} free); this is a bug in deepseek-native`);
      seen.add(b);
    }
    for (const b of blocks) this.#isFree[b] = 1;
    this.#free.push(...blocks);
  }
}

/** One sequence's place in the cache: its blocks and how many tokens they hold. */
export class Sequence {
  static #nextId = 1;
  readonly id = Sequence.#nextId++;
  #blocks: number[] = [];
  #length = 0;
  #disposed = false;
  /** Forward steps queued or running with this sequence; its blocks stay while any is. */
  #inFlight = 0;

  /** @internal */
  constructor(readonly pool: BlockPool, readonly maxLength: number) {}

  /** Tokens in the cache. */
  get length(): number {
    return this.#length;
  }
  get blocks(): readonly number[] {
    return this.#blocks;
  }
  get disposed(): boolean {
    return this.#disposed;
  }
  /** Whether a forward step that uses this sequence is queued or running. */
  get busy(): boolean {
    return this.#inFlight > 0;
  }

  /** @internal A forward step that uses this sequence was queued (Model.forward, at call time). */
  enter(): void {
    this.#inFlight += 1;
  }
  /** @internal That step finished (ran, failed or was refused); a sequence disposed meanwhile gives
   *  its blocks back now. */
  leave(): void {
    this.#inFlight -= 1;
    if (this.#inFlight === 0 && this.#disposed) this.#release();
  }

  /** @internal Checks that `n` more tokens fit, taking the blocks they need; returns a rollback. */
  reserve(n: number): () => void {
    this.checkLive();
    const end = this.#length + n;
    if (end > this.maxLength)
      throw new RangeError(`sequence ${this.id}: ${end} tokens would pass the context limit of ${this.maxLength} (maxContext / max_position_embeddings)`);
    const need = Math.ceil(end / BLOCK_TOKENS) - this.#blocks.length;
    const taken = need > 0 ? this.pool.take(need, `sequence ${this.id} (${end} tokens)`) : [];
    this.#blocks.push(...taken);
    return () => {
      this.#blocks.splice(this.#blocks.length - taken.length, taken.length);
      this.pool.give(taken);
    };
  }

  /** Cache slot (block · 64 + offset) of token position p. */
  slot(p: number): number {
    return this.#blocks[Math.floor(p / BLOCK_TOKENS)] * BLOCK_TOKENS + (p % BLOCK_TOKENS);
  }

  /** @internal */
  advance(n: number): void {
    if (!this.#disposed) this.#length += n;
  }

  /** Forgets the tokens past `length` (they will be overwritten), giving back blocks no longer used.
   *  Throws while a forward step that uses the sequence is queued or running: await it first. */
  truncate(length: number): void {
    this.checkLive();
    if (this.#inFlight > 0)
      throw new Error(`sequence ${this.id}: cannot truncate while a forward step that uses it is queued or running; await that forward() first`);
    if (!Number.isInteger(length) || length < 0 || length > this.#length)
      throw new RangeError(`sequence ${this.id}: cannot truncate to ${length} tokens (it holds ${this.#length})`);
    this.#length = length;
    const keep = Math.ceil(length / BLOCK_TOKENS);
    this.pool.give(this.#blocks.splice(keep));
  }

  /** Gives the sequence's blocks back to the pool. Safe twice. With a forward step queued or running
   *  the sequence is disposed at once (that step then fails with DisposedError unless it has already
   *  started) and its blocks go back when the step has finished with them. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    if (this.#inFlight === 0) this.#release();
  }

  #release(): void {
    const blocks = this.#blocks;
    this.#blocks = [];
    this.#length = 0;
    this.pool.give(blocks);
  }
  [Symbol.dispose](): void {
    this.dispose();
  }

  private checkLive(): void {
    if (this.#disposed) throw new DisposedError(`sequence ${this.id} was disposed and cannot be used`);
  }
}

/** The cache tensors of every layer. */
export class KvCache {
  readonly latent: Tensor[] = [];
  readonly indexKeys: Tensor[] = [];
  readonly indexScales: Tensor[] = [];
  readonly pool: BlockPool;

  constructor(cfg: ModelConfig, numBlocks: number, dtype: Act, device: string, layers = cfg.nLayers) {
    this.pool = new BlockPool(numBlocks);
    try {
      for (let l = 0; l < layers; ++l) {
        this.latent.push(zeros([numBlocks, BLOCK_TOKENS, KvCache.latentRowBytes(cfg, dtype)], { dtype: 'u8', device }));
        if (cfg.sparse) {
          this.indexKeys.push(zeros([numBlocks, BLOCK_TOKENS, cfg.indexHeadDim], { dtype: 'f8e4m3', device }));
          this.indexScales.push(zeros([numBlocks, BLOCK_TOKENS, 1], { dtype: 'f32', device }));
        }
      }
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  /** Bytes of one token's latent row in one layer (656 for V3.2 with bf16 activations). */
  static latentRowBytes(cfg: ModelConfig, dtype: Act): number {
    return latentCacheRowBytes(cfg.kvLoraRank, cfg.qkRopeHeadDim, dtype);
  }

  /** Bytes one token takes across all layers: the FP8 latent row, and the indexer key (E4M3 + f32 scale) with DSA. */
  static bytesPerToken(cfg: ModelConfig, dtype: Act): number {
    const perLayer = KvCache.latentRowBytes(cfg, dtype) + (cfg.sparse ? cfg.indexHeadDim + 4 : 0);
    return perLayer * cfg.nLayers;
  }

  dispose(): void {
    for (const t of [...this.latent, ...this.indexKeys, ...this.indexScales]) t.dispose();
  }
}
