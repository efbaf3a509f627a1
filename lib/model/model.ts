/**
 * `loadModel(dir, options)` → a `Model`: the transformer on a device, its paged KV cache and the
 * sequences that use it. `forward(batch)` runs a ragged batch mixing prefill, chunked prefill and
 * single-token decode, and returns logits per item.
 */
import { existsSync, statSync } from 'node:fs';

import { DisposedError, invalidArgument, isPositiveInteger } from '../runtime/errors.js';
import { devices, opsMissingOn } from '../runtime/device.js';
import { type Act, tensor, type Tensor } from '../runtime/tensor.js';
import { CheckpointChangedError, openCheckpoint, type Checkpoint } from '../io/checkpoint.js';
import { type ModelConfig, parseConfig } from './config.js';
import { type BatchItem, ForwardContext } from './context.js';
import type { ScoreDtype } from '../ops/attention.js';
import { BLOCK_TOKENS, KvCache, Sequence } from './kv-cache.js';
import { Rope } from './rope.js';
import { Transformer } from './transformer.js';
import { DecodeGraphs } from './decode-graph.js';
import { CheckpointWeights } from './weights.js';
import type { EngineOptions } from '../serve/engine.js';
import { type GenerateRequest, type GenerateResult, Serving, type StreamChunk } from '../serve/generation.js';

export interface LoadProgress {
  tensorsLoaded: number;
  tensorsTotal: number;
  bytesLoaded: number;
  bytesTotal: number;
}

export interface LoadOptions {
  /** 'cpu' (default) or a CUDA device ('cuda:0') of a CUDA build: weights are copied to it once, the KV cache lives there. */
  device?: string;
  /** Activation dtype: 'bf16' (default, as the reference) or 'f32' (the accuracy yardstick). */
  activations?: Act;
  /** The dtype of MLA's attention scores before the softmax: 'f32' (default, as FlashMLA keeps them) or
   *  'bf16' (bf16 activations only: rounded where the bf16 reference's einsums round them). */
  attentionScores?: ScoreDtype;
  /** Sizes the KV cache pool by memory instead of by maxSequences × maxContext: the pool holds
   *  floor(cacheBytes / (64 · kvCacheBytesPerToken)) blocks. */
  cacheBytes?: number;
  /** Sequences that can hold a full context at once (sizes the cache pool); default 8. */
  maxSequences?: number;
  /** Longest sequence in tokens; default min(max_position_embeddings, 4096). */
  maxContext?: number;
  /** Called as tensors are loaded. */
  onProgress?: (p: LoadProgress) => void;
  /** Called with the names of checkpoint tensors the model does not use (default: a process warning). */
  onUnknownTensors?: (names: string[]) => void;
  /** Run decode steps (every item one token) as device graphs: each batch size and key capacity is
   *  captured once, then replayed with one launch (lib/model/decode-graph.ts): a CUDA graph on a
   *  GPU; on the CPU one stream task that runs the recorded ops, so the JavaScript thread queues
   *  a handful of tasks a step instead of a few hundred ops and leaves the cores to the kernels.
   *  Default true (on the CPU 1.3× faster at batch 1 and 1.15× at batch 8 on the 1b model:
   *  bench/README.md "Decode steps as CPU graphs"). Each graph keeps about the memory an eager
   *  step peaks at, its logits included, until it is dropped (16 kept at most, least recently used
   *  first). */
  decodeGraphs?: boolean;
}

export interface ForwardOptions {
  /** Return logits of every position of each item (rows × vocab), not only the last. */
  allPositions?: boolean;
}

/** @internal What loadModel hands the Model it built. */
export interface ModelParts {
  /** The checkpoint folder. */
  dir: string;
  config: ModelConfig;
  device: string;
  activations: Act;
  /** Longest sequence in tokens. */
  maxContext: number;
  /** Sequences that can hold a full context at once. */
  maxSequences: number;
  checkpoint: Checkpoint;
  transformer: Transformer;
  cache: KvCache;
  rope: Rope;
  /** Decode steps as device graphs, or null (decodeGraphs: false). */
  graphs: DecodeGraphs | null;
}

export class Model {
  readonly dir: string;
  readonly config: ModelConfig;
  readonly device: string;
  readonly activations: Act;
  readonly maxContext: number;
  readonly maxSequences: number;
  readonly #transformer: Transformer;
  readonly #cache: KvCache;
  readonly #rope: Rope;
  readonly #checkpoint: Checkpoint;
  readonly #graphs: DecodeGraphs | null;
  readonly #sequences = new Set<Sequence>();
  #disposed = false;
  /** Set once a shard changed on disk: every later step fails with it until the model is reloaded. */
  #broken: string | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #serving: Serving | null = null;

  /** @internal use loadModel() */
  constructor(parts: ModelParts) {
    this.dir = parts.dir;
    this.config = parts.config;
    this.device = parts.device;
    this.activations = parts.activations;
    this.maxContext = parts.maxContext;
    this.maxSequences = parts.maxSequences;
    this.#checkpoint = parts.checkpoint;
    this.#transformer = parts.transformer;
    this.#cache = parts.cache;
    this.#rope = parts.rope;
    this.#graphs = parts.graphs;
  }

  /** Decode steps captured as device graphs and graph replays since load (0 and 0 without graphs);
   *  `disabled`: why graphs were turned off, when a capture failed (the steps then run eagerly). */
  get decodeGraphStats(): { graphs: number; captures: number; replays: number; disabled?: string } {
    const g = this.#graphs;
    return { graphs: g?.size ?? 0, captures: g?.captures ?? 0, replays: g?.replays ?? 0, ...(g?.disabled ? { disabled: g.disabled } : {}) };
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  /** Bytes one token takes in the KV cache, all layers: the FP8 latent row (656 bytes a layer for
   *  V3.2 with bf16 activations) and the indexer key. */
  get kvCacheBytesPerToken(): number {
    return KvCache.bytesPerToken(this.config, this.activations);
  }

  /** Cache blocks of 64 tokens in the pool. */
  get cacheBlocks(): number {
    return this.#cache.pool.numBlocks;
  }

  /** Free cache blocks of 64 tokens. */
  get freeCacheBlocks(): number {
    return this.#cache.pool.freeBlocks;
  }

  /** All cache blocks of 64 tokens. */
  get totalCacheBlocks(): number {
    return this.#cache.pool.numBlocks;
  }

  /**
   * The model's text layer and continuous-batching engine (created on first use with default engine
   * options, or with `options` on the first call): tokenizer, chat format, scheduler.
   */
  serving(options?: EngineOptions): Serving {
    this.#check('serving');
    this.#serving ??= new Serving(this, options);
    return this.#serving;
  }

  /** Generates text for a prompt or conversation (see GenerateRequest); resolves at the end. */
  generate(request: GenerateRequest): Promise<GenerateResult> {
    return this.serving().generate(request);
  }

  /** Streams a prompt's or conversation's output as chunks; leaving the loop early aborts the request. */
  stream(request: GenerateRequest): AsyncGenerator<StreamChunk, void, undefined> {
    return this.serving().stream(request);
  }

  /** A new, empty sequence taking cache blocks as it grows. Dispose it to give them back. */
  createSequence(): Sequence {
    this.#check('createSequence');
    const s = new Sequence(this.#cache.pool, this.maxContext);
    this.#sequences.add(s);
    return s;
  }

  /**
   * Runs one step over a ragged batch: each item appends its tokens to its sequence (prefill when the
   * sequence is empty, chunked prefill when it has cache, decode for one token) and gets the logits of
   * its last position (all positions with `allPositions`), as f32 `[vocab]` (or `[n·vocab]`) arrays.
   * Bad input throws before anything changes.
   */
  async forward(batch: readonly BatchItem[], options: ForwardOptions = {}): Promise<Float32Array[]> {
    this.#check('forward');
    this.#validate(batch);
    // Copied now: the step runs later, and a caller may reuse its arrays meanwhile.
    const items: BatchItem[] = batch.map((item) => ({ sequence: item.sequence, tokens: Array.from(item.tokens) }));
    const opts: ForwardOptions = { allPositions: Boolean(options?.allPositions) };
    for (const item of items) item.sequence.enter();
    const run = this.#queue.then(() => this.#run(items, opts)).finally(() => {
      for (const item of items) item.sequence.leave();
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** Logits of fresh sequences: each prompt prefilled alone in one batch; the sequences are dropped. */
  async logits(prompts: readonly { tokens: readonly number[] }[], options: ForwardOptions = {}): Promise<Float32Array[]> {
    this.#check('logits');
    const seqs = prompts.map(() => this.createSequence());
    try {
      return await this.forward(prompts.map((p, i) => ({ sequence: seqs[i], tokens: p.tokens })), options);
    } finally {
      for (const s of seqs) s.dispose();
    }
  }

  #validate(batch: readonly BatchItem[]): void {
    if (!Array.isArray(batch) || batch.length === 0) throw invalidArgument('Model.forward', 'batch', 'a non-empty array of {sequence, tokens}', batch);
    const seen = new Set<Sequence>();
    batch.forEach((item, i) => {
      const where = `Model.forward: batch[${i}]`;
      if (!item || !(item.sequence instanceof Sequence) || !this.#sequences.has(item.sequence))
        throw new TypeError(`${where}.sequence must be a sequence created by this model's createSequence()`);
      if (item.sequence.disposed) throw new DisposedError(`${where}.sequence was disposed`);
      if (seen.has(item.sequence)) throw new TypeError(`${where}: sequence ${item.sequence.id} appears twice in one batch`);
      seen.add(item.sequence);
      const t = item.tokens;
      if (!Array.isArray(t)) throw invalidArgument(where, 'tokens', 'an array of token ids', t);
      if (t.length === 0) throw new RangeError(`${where}.tokens is empty: every item needs at least one token`);
      for (let j = 0; j < t.length; ++j) {
        const id = t[j];
        if (!Number.isInteger(id) || id < 0 || id >= this.config.vocabSize)
          throw new RangeError(`${where}.tokens[${j}] is ${id}: token ids must be integers in [0, ${this.config.vocabSize})`);
      }
    });
  }

  /** Throws CheckpointChangedError when a shard changed on disk since load (now or before). */
  #checkWeights(): void {
    this.#broken ??= this.#checkpoint.changedOnDisk();
    if (this.#broken) throw new CheckpointChangedError(`Model.forward: ${this.#broken}`);
  }

  /**
   * Runs one step like `forward` and hands the logits of each item's last position, as one `[B, vocab]`
   * f32 tensor on the model's device in batch order, to `use`; the sequences grow once `use`'s promise
   * has settled without error (a failure leaves them unchanged). The tensor is disposed afterwards: a
   * sampler reads it and returns token ids, so the vocabulary never crosses to JavaScript.
   */
  async forwardWith<T>(batch: readonly BatchItem[], use: (logits: Tensor) => Promise<T>): Promise<T> {
    this.#check('forwardWith');
    this.#validate(batch);
    // As forward: the tokens are copied now, and the sequences know a step is queued on them.
    const items: BatchItem[] = batch.map((item) => ({ sequence: item.sequence, tokens: Array.from(item.tokens) }));
    for (const item of items) item.sequence.enter();
    const run = this.#queue.then(() => this.#step(items, false, use)).finally(() => {
      for (const item of items) item.sequence.leave();
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #run(batch: readonly BatchItem[], options: ForwardOptions): Promise<Float32Array[]> {
    const counts = batch.map((item) => (options.allPositions ? item.tokens.length : 1));
    return this.#step(batch, options.allPositions ?? false, async (logits) => {
      const all = await logits.toFloat32Array();
      const V = this.config.vocabSize;
      const out: Float32Array[] = [];
      let r = 0;
      for (const n of counts) {
        out.push(all.slice(r * V, (r + n) * V));
        r += n;
      }
      return out;
    });
  }

  async #step<T>(batch: readonly BatchItem[], allPositions: boolean, use: (logits: Tensor) => Promise<T>): Promise<T> {
    this.#check('forward');
    this.#checkWeights();
    const rollbacks: (() => void)[] = [];
    let ctx: ForwardContext | undefined;
    try {
      for (const item of batch) rollbacks.push(item.sequence.reserve(item.tokens.length));
      let result: T;
      // One token per item: the last row of each item is its only row, in batch order. The graph
      // keeps its logits tensor; null: graphs are off, the step runs eagerly.
      const replayed = this.#graphs && batch.every((item) => item.tokens.length === 1) ? this.#graphs.step(batch) : null;
      if (replayed) {
        result = await use(replayed);
      } else {
        ctx = new ForwardContext(batch, this.device);
        const rowsWanted: number[] = [];
        batch.forEach((item, i) => {
          const n = allPositions ? item.tokens.length : 1;
          const last = ctx!.lastRows[i];
          for (let r = last - n + 1; r <= last; ++r) rowsWanted.push(r);
        });
        using rows = tensor(Int32Array.from(rowsWanted), { dtype: 'i32', device: this.device });
        using logits = this.#transformer.forward(ctx, this.#cache, this.#rope, rows);
        result = await use(logits);
      }
      // Only a step that ran to the end grows its sequences; a failed one leaves them as they were
      // (the rows it wrote lie past their lengths and are overwritten by the next step).
      for (const item of batch) item.sequence.advance(item.tokens.length);
      rollbacks.length = 0;
      return result;
    } catch (e) {
      for (const undo of rollbacks.reverse()) undo();
      this.#checkWeights();  // a step that read a truncated shard fails as CheckpointChangedError
      throw e;
    } finally {
      ctx?.dispose();
    }
  }

  #check(what: string): void {
    if (this.#disposed) throw new DisposedError(`Model.${what}: the model was disposed`);
  }

  /** Releases weights, cache and sequences. Safe twice. */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    await this.#serving?.engine.close(true);
    this.#disposed = true;
    await this.#queue;
    for (const s of this.#sequences) s.dispose();
    this.#sequences.clear();
    this.#graphs?.dispose();
    this.#transformer.dispose();
    this.#cache.dispose();
    this.#rope.dispose();
    this.#checkpoint.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }
}

/**
 * Every op a forward step calls (lib/model) and the serving loop samples with (lib/serve): a device
 * runs the model when its backend has a kernel for each. test/model/model-ops.test.ts keeps this list
 * equal to the calls in those folders.
 */
export const MODEL_OPS: readonly string[] = [
  'actQuant', 'bmmHeads', 'cast', 'concat', 'embedding', 'fp8Dequant', 'fp8Gemm', 'gatherRows', 'gemm', 'groupedFp8Gemm',
  'hadamard', 'indexerScores', 'latentCacheRead', 'latentCacheWrite', 'layerNorm', 'mlaDecode', 'mlaPrefill', 'moeCombine',
  'moeDispatch', 'moeRoute', 'mul', 'pagedWrite', 'rmsNorm', 'rope', 'sampleRows', 'scale', 'slice', 'swiglu', 'topK',
  'transpose',
];

/** Throws a clear error unless `device` exists in this process and runs every op of the model. */
function checkModelDevice(device: unknown): asserts device is string {
  const known = devices().map((d) => d.name);
  if (typeof device !== 'string' || !known.includes(device))
    throw invalidArgument('loadModel', 'device', `one of this process's devices (${known.join(', ')})`, device);
  const info = devices().find((d) => d.name === device)!;
  if (info.supported === false) throw new TypeError(`loadModel: device '${device}' cannot run this build: ${info.unsupported}`);
  const missing = opsMissingOn(info.kind, MODEL_OPS);
  if (missing.length)
    throw new TypeError(`loadModel: device '${device}' cannot run the model: ${missing.join(', ')} ${missing.length > 1 ? 'have' : 'has'} no ${info.kind} kernel in this build; use device: 'cpu'`);
}

/** Loads a DeepSeek-V3.2 (or V3) checkpoint folder: config.json, safetensors shards and their index. */
export async function loadModel(dir: string, options: LoadOptions = {}): Promise<Model> {
  if (typeof dir !== 'string' || !dir) throw invalidArgument('loadModel', 'dir', 'a model folder path', dir);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`loadModel: ${dir} is not a folder`);
  const device = options.device ?? 'cpu';
  checkModelDevice(device);
  const act = options.activations ?? 'bf16';
  if (act !== 'bf16' && act !== 'f32') throw invalidArgument('loadModel', 'activations', "'bf16' or 'f32'", act);
  const scoreDtype = options.attentionScores ?? 'f32';
  if (scoreDtype !== 'f32' && scoreDtype !== 'bf16') throw invalidArgument('loadModel', 'attentionScores', "'f32' or 'bf16'", scoreDtype);
  if (scoreDtype === 'bf16' && act !== 'bf16') throw invalidArgument('loadModel', 'attentionScores', "'f32' with f32 activations ('bf16' scores need bf16 activations)", scoreDtype);
  if (options.decodeGraphs !== undefined && typeof options.decodeGraphs !== 'boolean')
    throw invalidArgument('loadModel', 'decodeGraphs', 'true or false', options.decodeGraphs);
  if (options.cacheBytes !== undefined && !isPositiveInteger(options.cacheBytes))
    throw invalidArgument('loadModel', 'cacheBytes', 'a positive integer', options.cacheBytes, true);
  const maxSequences = options.maxSequences ?? 8;
  if (!isPositiveInteger(maxSequences)) throw invalidArgument('loadModel', 'maxSequences', 'a positive integer', maxSequences, true);
  const checkpoint = openCheckpoint(dir, options.onProgress ? { onProgress: options.onProgress } : {});
  let transformer: Transformer | undefined, cache: KvCache | undefined, rope: Rope | undefined;
  try {
    const config = parseConfig(checkpoint.config);
    const maxContext = options.maxContext ?? Math.min(config.maxPositions, 4096);
    if (!isPositiveInteger(maxContext) || maxContext > config.maxPositions)
      throw invalidArgument('loadModel', 'maxContext', `a positive integer <= max_position_embeddings (${config.maxPositions})`, maxContext, true);
    const weights = new CheckpointWeights(checkpoint, device, config, dir);
    if (weights.unknown.length) {
      const report = options.onUnknownTensors ?? ((names: string[]) =>
        process.emitWarning(`${dir}: ${names.length} checkpoint tensor(s) are not used by the model: ${names.slice(0, 5).join(', ')}${names.length > 5 ? ', …' : ''}`, 'DeepseekNativeWarning'));
      report(weights.unknown);
    }
    transformer = new Transformer(weights, config, act, undefined, scoreDtype);
    rope = new Rope(config, maxContext, device);
    const numBlocks = options.cacheBytes !== undefined
      ? Math.floor(options.cacheBytes / (BLOCK_TOKENS * KvCache.bytesPerToken(config, act)))
      : maxSequences * Math.ceil(maxContext / BLOCK_TOKENS);
    if (numBlocks < 1)
      throw invalidArgument('loadModel', 'cacheBytes', `at least one cache block (${BLOCK_TOKENS * KvCache.bytesPerToken(config, act)} bytes)`, options.cacheBytes, true);
    cache = new KvCache(config, numBlocks, act, device);
    const graphs = (options.decodeGraphs ?? true) ? new DecodeGraphs(transformer, cache, rope, device, maxContext) : null;
    return new Model({ dir, config, device, activations: act, maxContext, maxSequences, checkpoint, transformer, cache, rope, graphs });
  } catch (e) {
    transformer?.dispose();
    cache?.dispose();
    rope?.dispose();
    checkpoint.close();
    throw e;
  }
}
