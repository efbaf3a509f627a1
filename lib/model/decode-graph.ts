/**
 * Decode steps as device graphs (lib/runtime/graph.ts: a CUDA graph on a GPU, the recorded ops run
 * by one stream task on the CPU). A decode step of B sequences queues a few hundred kernels whose
 * shapes depend only on B and on the key capacity the step is laid out for (the block table's width,
 * the indexer's score rows); their data (positions, cache slots, block table, token ids) lives in
 * device tensors. So each (B, capacity) step is captured once and then replayed with one launch,
 * after writing the new step's inputs into the captured context (ForwardContext.rewrite).
 *
 * Capacities are powers of two from 64 keys up to the model's maxContext: a step is laid out for the
 * smallest one that holds its longest sequence, so a graph covers a range of context lengths and the
 * indexer scores at most twice the keys the eager step would. Routing is shape-free already (the
 * grouped GEMMs read expert offsets on the device).
 */
import { DeviceGraph } from '../runtime/graph.js';
import type { Tensor } from '../runtime/tensor.js';
import { tensor } from '../runtime/tensor.js';
import { type BatchItem, ForwardContext } from './context.js';
import type { KvCache } from './kv-cache.js';
import type { Rope } from './rope.js';
import type { Transformer } from './transformer.js';

/** One captured decode step: its fixed-shape inputs, its graph and its logits `[B, vocab]` f32. */
class DecodeGraph {
  private constructor(
    readonly ctx: ForwardContext,
    readonly rows: Tensor,
    readonly graph: DeviceGraph,
    readonly logits: Tensor,
  ) {}

  /** Captures `transformer.forward` for `items`, laid out for `keys` keys. Nothing runs yet. */
  static capture(transformer: Transformer, cache: KvCache, rope: Rope, items: readonly BatchItem[], keys: number, device: string): DecodeGraph {
    const ctx = new ForwardContext(items, device, keys);
    let rows: Tensor | undefined;
    try {
      rows = tensor(Int32Array.from(items, (_, i) => i), { dtype: 'i32', device });
      const r = rows;
      const { graph, result } = DeviceGraph.capture(device, () => transformer.forward(ctx, cache, rope, r), (logits) => logits.dispose());
      return new DecodeGraph(ctx, rows, graph, result);
    } catch (e) {
      rows?.dispose();
      ctx.dispose();
      throw e;
    }
  }

  dispose(): void {
    this.graph.dispose();
    this.logits.dispose();
    this.rows.dispose();
    this.ctx.dispose();
  }
}

export class DecodeGraphs {
  readonly #graphs = new Map<string, DecodeGraph>();
  /** Steps captured and replays launched since load: what the bench and tests read. */
  captures = 0;
  replays = 0;
  /** Why graphs were turned off (a capture failed), or null while they are on. */
  disabled: string | null = null;

  constructor(
    readonly transformer: Transformer,
    readonly cache: KvCache,
    readonly rope: Rope,
    readonly device: string,
    readonly maxContext: number,
    /** Graphs kept at once; the least recently used goes first. */
    readonly limit = 16,
  ) {}

  /** The key capacity a step whose longest sequence has `keys` keys after it is laid out for. */
  capacity(keys: number): number {
    let c = 64;
    while (c < keys) c *= 2;
    return Math.min(c, this.maxContext);
  }

  /**
   * Runs one decode step (every item one token) as a graph replay, capturing it first when this
   * (B, capacity) has no graph yet; returns the logits `[B, vocab]` f32 in batch order. The tensor is
   * the graph's: it holds this step's logits until the next replay of the same graph is queued.
   * Returns null, having queued nothing, when graphs are off: a capture failed (see `disabled`), and
   * the caller runs the step eagerly.
   */
  step(items: readonly BatchItem[]): Tensor | null {
    if (this.disabled) return null;
    const keys = Math.max(...items.map((it) => it.sequence.length + 1));
    const cap = this.capacity(keys);
    const key = `${items.length}:${cap}`;
    let g = this.#graphs.get(key);
    if (g) {
      g.ctx.rewrite(items);
      this.#graphs.delete(key);  // re-inserted below: the map's order is the LRU order
    } else {
      if (this.#graphs.size >= this.limit) {
        const [oldest, first] = this.#graphs.entries().next().value as [string, DecodeGraph];
        this.#graphs.delete(oldest);
        first.dispose();
      }
      try {
        g = DecodeGraph.capture(this.transformer, this.cache, this.rope, items, cap, this.device);
      } catch (e) {
        // Nothing ran: the step runs eagerly, and so do the later ones (a driver that cannot capture
        // what these kernels queue would fail every capture).
        this.disabled = e instanceof Error ? e.message : String(e);
        process.emitWarning(`decode steps run eagerly from now on: capturing a graph on ${this.device} failed: ${this.disabled}`, 'DeepseekNativeWarning');
        return null;
      }
      this.captures += 1;
    }
    this.#graphs.set(key, g);
    g.graph.launch();
    this.replays += 1;
    return g.logits;
  }

  /** How many graphs are held. */
  get size(): number {
    return this.#graphs.size;
  }

  dispose(): void {
    for (const g of this.#graphs.values()) g.dispose();
    this.#graphs.clear();
  }
}
