/**
 * The continuous-batching engine: one per model, it owns the forward loop. Each step packs the decode
 * token of every running request and whole prefill chunks of admitted prompts under a token budget
 * (chunked prefill mixed with decode), admits waiting requests FIFO when the cache has blocks for their
 * prompt, preempts the newest request when the cache runs out mid-generation (its blocks are freed and
 * its tokens recomputed later), samples natively (token ids, not logits, cross to JavaScript), and
 * frees an aborted request's blocks at the end of the step it is in (at once when it is not in one).
 *
 * A request's results do not depend on the others in its batch: prefill chunks are cut at fixed
 * offsets of the request's own tokens (never by the budget left in a step), every row draws with its
 * own seed and step, and the model's kernels compute each row alone (see `batchInvariant`).
 */
import type { Model } from '../model/model.js';
import { BLOCK_TOKENS, type Sequence } from '../model/kv-cache.js';
import * as ops from '../ops/index.js';
import { tensor } from '../runtime/tensor.js';

/** Sampling settings of one request (resolved: every field set). */
export interface SamplingParams {
  temperature: number;
  topP: number;
  topK: number;
  minP: number;
  presencePenalty: number;
  frequencyPenalty: number;
  repetitionPenalty: number;
  seed: number;
}

export const DEFAULT_SAMPLING: Readonly<SamplingParams> = Object.freeze({
  temperature: 1,
  topP: 1,
  topK: 0,
  minP: 0,
  presencePenalty: 0,
  frequencyPenalty: 0,
  repetitionPenalty: 1,
  seed: 0,
});

export interface TokenEvent {
  id: number;
  /** The id ends the request (a stop or EOS id): it is counted, not shown as text. */
  isStop: boolean;
  /** Log-probability of `id` under the model, when logprobs were asked for. */
  logprob?: number;
  /** The most likely ids and their log-probabilities, when top logprobs were asked for. */
  top?: { id: number; logprob: number }[];
}

export type FinishReason = 'stop' | 'length' | 'abort';

export interface EngineRequest {
  prompt: readonly number[];
  maxTokens: number;
  sampling: SamplingParams;
  /** Ids that end the request (EOS and the caller's stop ids). */
  stopTokenIds?: ReadonlySet<number>;
  /** -1: no logprobs; 0: the chosen id's; N: and the N most likely. */
  topLogprobs?: number;
  signal?: AbortSignal;
  /** Called for every generated id in order; returning true ends the request with 'stop'. */
  onToken: (t: TokenEvent) => boolean | void;
}

export interface EngineResult {
  finishReason: FinishReason;
  promptTokens: number;
  completionTokens: number;
  preemptions: number;
}

/** What the engine reports as it runs (the server feeds Prometheus with it). */
export interface EngineObserver {
  timeToFirstToken?(seconds: number): void;
  interTokenLatency?(seconds: number): void;
  tokensGenerated?(n: number): void;
  preempted?(): void;
  finished?(reason: FinishReason | 'error'): void;
  /** Prompt tokens of a request that finished. */
  promptProcessed?(n: number): void;
}

export interface EngineOptions {
  /** Most tokens (decode rows + prefill rows) in one step; default 256. */
  maxBatchTokens?: number;
  /** Prompts are prefilled in chunks of this many tokens at fixed offsets; default min(128, maxBatchTokens). */
  prefillChunk?: number;
  /** Requests that may wait before `submit` refuses more; default 256. */
  maxQueue?: number;
  /** Requests generating at once; default 64. */
  maxRunning?: number;
  observer?: EngineObserver;
  /**
   * Batch-invariant kernels (process-wide GEMM setting, see ops.setBatchInvariant): a request's
   * logits, and so its greedy tokens, are the same alone or among others. Unset: left as it is.
   */
  batchInvariant?: boolean;
  /**
   * @internal Forced decoding for tests and demos: when it returns an id for a request's next token,
   * that id is used instead of the sampled one (and fed back to the model as usual).
   */
  script?: (request: EngineRequest, generated: number) => number | undefined;
}

/** `submit` when the waiting queue is full. */
export class QueueFullError extends Error {
  override name = 'QueueFullError';
}

/** A request that cannot run: its prompt does not fit the context. */
export class ContextLengthError extends RangeError {
  override name = 'ContextLengthError';
}

class Live {
  seq: Sequence | null = null;
  readonly tokens: number[];
  generated = 0;
  preemptions = 0;
  readonly history = new Map<number, number>();
  finish: FinishReason | null = null;
  readonly submitted = performance.now();
  lastTokenAt = 0;
  admittedOrder = 0;
  onAbort?: () => void;

  constructor(
    readonly req: EngineRequest,
    readonly resolve: (r: EngineResult) => void,
    readonly reject: (e: unknown) => void,
  ) {
    this.tokens = [...req.prompt];
    if (req.sampling.repetitionPenalty !== 1) for (const id of req.prompt) if (!this.history.has(id)) this.history.set(id, 0);
  }

  /** Tokens not yet in the cache. */
  get pending(): number {
    return this.tokens.length - (this.seq?.length ?? 0);
  }
}

export class Engine {
  readonly maxBatchTokens: number;
  readonly prefillChunk: number;
  readonly maxQueue: number;
  readonly maxRunning: number;
  readonly #observer: EngineObserver;
  readonly #script: EngineOptions['script'];
  readonly #waiting: Live[] = [];
  readonly #running: Live[] = [];
  #loop: Promise<void> | null = null;
  #admitted = 0;
  #closed = false;
  #preemptions = 0;
  #steps = 0;

  constructor(readonly model: Model, options: EngineOptions = {}) {
    const int = (v: number | undefined, d: number, name: string): number => {
      const x = v ?? d;
      if (!Number.isInteger(x) || x < 1) throw new RangeError(`Engine: ${name} must be a positive integer but received ${String(v)}`);
      return x;
    };
    this.maxBatchTokens = int(options.maxBatchTokens, 256, 'maxBatchTokens');
    this.prefillChunk = int(options.prefillChunk, Math.min(128, this.maxBatchTokens), 'prefillChunk');
    if (this.prefillChunk > this.maxBatchTokens) throw new RangeError(`Engine: prefillChunk (${this.prefillChunk}) must be <= maxBatchTokens (${this.maxBatchTokens})`);
    this.maxQueue = int(options.maxQueue, 256, 'maxQueue');
    this.maxRunning = int(options.maxRunning, 64, 'maxRunning');
    this.#observer = options.observer ?? {};
    this.#script = options.script;
    if (options.batchInvariant !== undefined) ops.setBatchInvariant(options.batchInvariant);
  }

  /** Requests waiting for admission. */
  get queueDepth(): number {
    return this.#waiting.length;
  }
  /** Requests admitted (prefilling or decoding). */
  get running(): number {
    return this.#running.length;
  }
  get preemptions(): number {
    return this.#preemptions;
  }
  get steps(): number {
    return this.#steps;
  }
  /** Cache blocks in use. */
  get blocksUsed(): number {
    return this.model.totalCacheBlocks - this.model.freeCacheBlocks;
  }

  /** Queues a request; resolves when it finishes (aborted requests resolve with 'abort'). */
  submit(req: EngineRequest): Promise<EngineResult> {
    if (this.#closed) return Promise.reject(new Error('Engine: closed, no new requests are taken'));
    const limit = this.model.maxContext;
    if (req.prompt.length === 0) return Promise.reject(new RangeError('Engine: the prompt is empty: it needs at least one token'));
    if (req.prompt.length >= limit)
      return Promise.reject(new ContextLengthError(`the prompt has ${req.prompt.length} tokens but the context limit is ${limit} (prompt + at least one generated token)`));
    if (this.#waiting.length >= this.maxQueue)
      return Promise.reject(new QueueFullError(`the request queue is full (${this.maxQueue} waiting); retry later`));
    return new Promise<EngineResult>((resolve, reject) => {
      const live = new Live(req, resolve, reject);
      if (req.signal?.aborted) return this.#finish(live, 'abort');
      if (req.signal) {
        live.onAbort = () => this.#abort(live);
        req.signal.addEventListener('abort', live.onAbort, { once: true });
      }
      this.#waiting.push(live);
      this.#kick();
    });
  }

  /** Stops taking requests; with `abort`, ends every request now, else waits until they finish. */
  async close(abort = false): Promise<void> {
    this.#closed = true;
    if (abort) for (const l of [...this.#waiting, ...this.#running]) this.#abort(l);
    while (this.#loop) await this.#loop;
  }

  #kick(): void {
    if (this.#loop) return;
    this.#loop = this.#run().finally(() => {
      this.#loop = null;
      if (this.#waiting.length || this.#running.length) this.#kick();
    });
  }

  #inStep = new Set<Live>();

  #abort(l: Live): void {
    if (l.finish) return;
    l.finish = 'abort';
    const w = this.#waiting.indexOf(l);
    if (w >= 0) this.#waiting.splice(w, 1);
    if (!this.#inStep.has(l)) this.#retire(l);
  }

  #retire(l: Live): void {
    const r = this.#running.indexOf(l);
    if (r >= 0) this.#running.splice(r, 1);
    l.seq?.dispose();
    l.seq = null;
    this.#finish(l, l.finish ?? 'abort');
  }

  #finish(l: Live, reason: FinishReason): void {
    if (l.onAbort) l.req.signal?.removeEventListener('abort', l.onAbort);
    l.finish = reason;
    this.#observer.finished?.(reason);
    this.#observer.promptProcessed?.(l.req.prompt.length);
    l.resolve({ finishReason: reason, promptTokens: l.req.prompt.length, completionTokens: l.generated, preemptions: l.preemptions });
  }

  #fail(l: Live, e: unknown): void {
    const r = this.#running.indexOf(l);
    if (r >= 0) this.#running.splice(r, 1);
    l.seq?.dispose();
    l.seq = null;
    l.finish = 'abort';
    this.#observer.finished?.('error');
    l.reject(e);
  }

  /** Blocks `l` needs to hold `n` more tokens. */
  #blocksFor(l: Live, n: number): number {
    const have = l.seq?.blocks.length ?? 0;
    return Math.max(0, Math.ceil(((l.seq?.length ?? 0) + n) / BLOCK_TOKENS) - have);
  }

  #preempt(l: Live): void {
    const r = this.#running.indexOf(l);
    this.#running.splice(r, 1);
    l.seq?.dispose();
    l.seq = null;
    l.preemptions++;
    this.#preemptions++;
    this.#observer.preempted?.();
    this.#waiting.unshift(l); // recomputed first when blocks free up
  }

  async #run(): Promise<void> {
    while (this.#waiting.length || this.#running.length) {
      const plan = this.#schedule();
      if (plan.length === 0) {
        if (this.#running.length > 1) {
          // Admitted prompts whose next chunks no longer fit: the newest gives its blocks back.
          this.#preempt([...this.#running].sort((x, y) => y.admittedOrder - x.admittedOrder)[0]);
        } else if (this.#running.length === 0 && this.#waiting.length) {
          // Nothing fits even in an empty cache: cannot happen for prompts below maxContext.
          const l = this.#waiting.shift()!;
          l.reject(new Error('Engine: the cache cannot hold this request'));
        }
        await new Promise((r) => setImmediate(r));
        continue;
      }
      await this.#step(plan);
      await new Promise((r) => setImmediate(r)); // let I/O (new requests, disconnects) in between steps
    }
  }

  /** The next step's items: [request, tokens]; admits and preempts as blocks allow. */
  #schedule(): { l: Live; n: number }[] {
    let budget = this.maxBatchTokens;
    let free = this.model.freeCacheBlocks;
    const plan: { l: Live; n: number }[] = [];
    // 1. Decode rows of running requests (oldest first); preempt the newest when blocks run out.
    const decoding = this.#running.filter((l) => l.pending === 1 && l.seq !== null && l.seq.length > 0);
    decoding.sort((a, b) => a.admittedOrder - b.admittedOrder);
    for (let i = 0; i < decoding.length; ++i) {
      const l = decoding[i];
      if (budget < 1) break;
      let need = this.#blocksFor(l, 1);
      while (need > free) {
        const victim = this.#running.filter((x) => !plan.some((p) => p.l === x)).sort((a, b) => b.admittedOrder - a.admittedOrder)[0];
        if (!victim || victim === l) break;
        free += victim.seq?.blocks.length ?? 0;
        const j = decoding.indexOf(victim);
        if (j > i) decoding.splice(j, 1);
        this.#preempt(victim);
        need = this.#blocksFor(l, 1);
      }
      if (need > free) {
        this.#preempt(l);
        continue;
      }
      free -= need;
      budget -= 1;
      plan.push({ l, n: 1 });
    }
    // 2. Prefill chunks of admitted requests, then admit waiting ones FIFO while blocks and budget last.
    const chunkOf = (l: Live): number => {
      const cached = l.seq?.length ?? 0;
      const next = (Math.floor(cached / this.prefillChunk) + 1) * this.prefillChunk; // fixed offsets
      return Math.min(l.tokens.length, next) - cached;
    };
    for (const l of this.#running) {
      if (plan.some((p) => p.l === l) || l.pending === 0) continue;
      const n = chunkOf(l);
      const need = this.#blocksFor(l, n);
      if (n > budget || need > free) continue;
      budget -= n;
      free -= need;
      plan.push({ l, n });
    }
    while (this.#waiting.length && this.#running.length < this.maxRunning) {
      const l = this.#waiting[0];
      // Admit when the whole prompt (and a first generated token) fits the free blocks.
      const needAll = Math.ceil((l.tokens.length + 1) / BLOCK_TOKENS);
      if (needAll > free) break;
      const n = Math.min(l.tokens.length, this.prefillChunk);
      if (n > budget) break;
      this.#waiting.shift();
      l.seq = this.model.createSequence();
      l.admittedOrder = ++this.#admitted;
      this.#running.push(l);
      const need = this.#blocksFor(l, n);
      budget -= n;
      free -= need;
      plan.push({ l, n });
    }
    return plan;
  }

  async #step(plan: { l: Live; n: number }[]): Promise<void> {
    const batch = plan.map(({ l, n }) => {
      const start = l.seq!.length;
      return { sequence: l.seq!, tokens: l.tokens.slice(start, start + n) };
    });
    // Rows whose chunk ends the request's pending tokens draw the next token.
    const sampled = plan.map(({ l, n }, i) => ({ l, i, n })).filter(({ l, n }) => n === l.pending);
    for (const { l } of plan) this.#inStep.add(l);
    const topN = Math.max(-1, ...sampled.map(({ l }) => l.req.topLogprobs ?? -1));
    let drawn: { ids: Int32Array; lp?: Float32Array; top?: Int32Array };
    try {
      drawn = await this.model.forwardWith(batch, async (logits) => {
        if (sampled.length === 0) return { ids: new Int32Array(0) };
        using rows = tensor(Int32Array.from(sampled.map((s) => s.i)), { dtype: 'i32', device: logits.device });
        using picked = sampled.length === plan.length ? null : ops.gatherRows(logits, rows);
        const settings = sampled.map(({ l }) => ({
          ...l.req.sampling,
          step: l.generated,
          history: l.history.size ? l.history : undefined,
        }));
        const r = ops.sampleRows(picked ?? logits, settings, topN);
        using ids = r.ids;
        using lp = r.logprobs;
        using top = r.topIds;
        return {
          ids: (await ids.read<"i32">()),
          lp: lp ? await lp.read<"f32">() : undefined,
          top: top ? await top.read<"i32">() : undefined,
        };
      });
    } catch (e) {
      for (const { l } of plan) this.#inStep.delete(l);
      for (const { l } of plan) this.#fail(l, e);
      return;
    }
    this.#steps++;
    for (const { l } of plan) this.#inStep.delete(l);
    const now = performance.now();
    let produced = 0;
    sampled.forEach(({ l }, k) => {
      if (l.finish) return; // aborted during the step
      const id = this.#script?.(l.req, l.generated) ?? drawn.ids[k];
      const stopIds = l.req.stopTokenIds;
      const isStop = stopIds?.has(id) ?? false;
      const ev: TokenEvent = { id, isStop };
      const want = l.req.topLogprobs ?? -1;
      if (want >= 0 && drawn.lp) {
        const stride = 1 + topN;
        ev.logprob = drawn.lp[k * stride];
        if (want > 0) ev.top = Array.from({ length: want }, (_, j) => ({ id: drawn.top![k * topN + j], logprob: drawn.lp![k * stride + 1 + j] }));
      }
      l.tokens.push(id);
      l.generated++;
      produced++;
      if (l.history.size || l.req.sampling.presencePenalty || l.req.sampling.frequencyPenalty || l.req.sampling.repetitionPenalty !== 1)
        l.history.set(id, (l.history.get(id) ?? 0) + 1);
      if (l.generated === 1) this.#observer.timeToFirstToken?.((now - l.submitted) / 1e3);
      else this.#observer.interTokenLatency?.((now - l.lastTokenAt) / 1e3);
      l.lastTokenAt = now;
      let stop = isStop;
      try {
        if (l.req.onToken(ev) === true) stop = true;
      } catch (e) {
        this.#fail(l, e);
        return;
      }
      if (stop) l.finish = 'stop';
      else if (l.generated >= l.req.maxTokens || l.tokens.length >= this.model.maxContext) l.finish = 'length';
    });
    if (produced) this.#observer.tokensGenerated?.(produced);
    for (const { l } of plan) if (l.finish && (this.#running.includes(l) || l.seq)) this.#retire(l);
  }
}
