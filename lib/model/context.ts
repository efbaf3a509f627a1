/**
 * One forward pass's batch: the ragged token rows of every sequence in it, flattened to `[T]` with
 * single-token decode items first (they share the absorbed MLA kernel), then prefill chunks. Holds the
 * per-token tensors every layer reads: positions, cache slots, sequence rows of the block table.
 */
import { tensor, type Tensor } from '../runtime/tensor.js';
import { BLOCK_TOKENS } from '../ops/cache.js';
import type { Sequence } from './kv-cache.js';

export interface BatchItem {
  sequence: Sequence;
  tokens: readonly number[];
}

/** A prefill (or chunked prefill) item: rows [rowStart, rowStart + n) of the batch. */
export interface PrefillPart {
  item: number;
  rowStart: number;
  n: number;
  /** Keys of the sequence after this step: positions 0 … start + n − 1. */
  keys: number;
  /** `[n]` i32 positions of the item's tokens (each query sees keys ≤ its position). */
  qPos: Tensor;
  /** `[keys]` i32 cache slots of every key of the sequence. */
  keySlots: Tensor;
}

/** The host arrays of a batch's layout (see ForwardContext). */
interface Layout {
  order: number[];
  positions: number[];
  slots: number[];
  seqIdx: number[];
  ids: number[];
  seqKeys: number[];
  lastRows: number[];
  decodeRows: number;
  maxKeys: number;
  /** `[B, width]` block table, rows padded with 0 (a row is read only up to its sequence's keys). */
  table: Int32Array;
  width: number;
  parts: { item: number; rowStart: number; n: number; start: number }[];
}

/** Lays a batch out in rows, decode items first; the block table `width` blocks wide (at least). */
function layout(items: readonly BatchItem[], minWidth = 1): Layout {
  const order = items.map((_, i) => i);
  order.sort((a, b) => Number(items[a].tokens.length > 1) - Number(items[b].tokens.length > 1) || a - b);
  const positions: number[] = [], slots: number[] = [], seqIdx: number[] = [], ids: number[] = [];
  const lastRows = new Array<number>(items.length);
  let width = minWidth, maxKeys = 1, decodeRows = 0;
  const parts: Layout['parts'] = [];
  order.forEach((i, b) => {
    const { sequence, tokens } = items[i];
    const start = sequence.length;
    const rowStart = positions.length;
    for (let j = 0; j < tokens.length; ++j) {
      positions.push(start + j);
      slots.push(sequence.slot(start + j));
      seqIdx.push(b);
      ids.push(tokens[j]);
    }
    lastRows[i] = positions.length - 1;
    width = Math.max(width, sequence.blocks.length);
    maxKeys = Math.max(maxKeys, start + tokens.length);
    if (tokens.length === 1) decodeRows += 1;
    else parts.push({ item: i, rowStart, n: tokens.length, start });
  });
  const table = new Int32Array(order.length * width);
  order.forEach((i, b) => table.set(items[i].sequence.blocks, b * width));
  const seqKeys = seqIdx.map((b) => items[order[b]].sequence.length + items[order[b]].tokens.length);
  return { order, positions, slots, seqIdx, ids, seqKeys, lastRows, decodeRows, maxKeys, table, width, parts };
}

export class ForwardContext {
  /** Items in row order (decode items first); `order[k]` is the caller's index of row-item k. */
  readonly order: number[];
  readonly T: number;
  /** Rows 0 … decodeRows − 1 are single-token decode items. */
  readonly decodeRows: number;
  /** `[T]` i32 absolute position of each row. */
  readonly positions: Tensor;
  /** `[T]` i32 keys of each row's sequence after this step (start + n of its item): the length of
   *  the row of indexer scores the reference ranks (keys past the row's position score −inf). */
  readonly seqKeys: Tensor;
  /** `[T]` i32 cache slot each row writes. */
  readonly slots: Tensor;
  /** `[T]` i32 row of the block table of each row's sequence. */
  readonly seqIdx: Tensor;
  /** `[B, maxBlocks]` i32 block table of the batch's sequences. */
  readonly blockTable: Tensor;
  /** Longest sequence after this step (keys the indexer scores); for a fixed-shape context, the
   *  capacity it was made for. */
  readonly maxKeys: number;
  /** Row of the last token of each caller item, in caller order. */
  readonly lastRows: number[];
  /** `[T]` i32 token ids in row order. */
  readonly ids: Tensor;
  readonly prefill: PrefillPart[] = [];
  readonly decode: { qPos: Tensor; seqIdx: Tensor } | null;

  /**
   * `fixedKeys`: a decode-only context of fixed shape, for a captured graph: maxKeys is `fixedKeys`
   * and the block table is ⌈fixedKeys/64⌉ blocks wide whatever the sequences' lengths, so that
   * `rewrite()` can load any later decode batch of the same size and capacity into the same tensors.
   */
  constructor(items: readonly BatchItem[], device: string, fixedKeys?: number) {
    const fixed = fixedKeys !== undefined;
    const l = layout(items, fixed ? Math.ceil(fixedKeys / BLOCK_TOKENS) : 1);
    if (fixed && (l.parts.length || l.maxKeys > fixedKeys || l.width * BLOCK_TOKENS < fixedKeys))
      throw new RangeError(`ForwardContext: a fixed-shape context holds single-token items of up to ${fixedKeys} keys`);
    this.order = l.order;
    this.T = l.positions.length;
    this.decodeRows = l.decodeRows;
    this.maxKeys = fixed ? fixedKeys : l.maxKeys;
    this.lastRows = l.lastRows;
    const i32 = (a: ArrayLike<number>, shape?: number[]) => tensor(Int32Array.from(a), { dtype: 'i32', device, shape });
    this.positions = i32(l.positions);
    this.seqKeys = i32(l.seqKeys);
    this.slots = i32(l.slots);
    this.seqIdx = i32(l.seqIdx);
    this.ids = i32(l.ids);
    this.blockTable = i32(l.table, [l.order.length, l.width]);
    this.decode = l.decodeRows ? { qPos: this.positions.rows(0, l.decodeRows), seqIdx: this.seqIdx.rows(0, l.decodeRows) } : null;
    for (const p of l.parts) {
      const seq = items[p.item].sequence;
      const keys = p.start + p.n;
      this.prefill.push({
        item: p.item,
        rowStart: p.rowStart,
        n: p.n,
        keys,
        qPos: this.positions.rows(p.rowStart, p.n),
        keySlots: i32(Array.from({ length: keys }, (_, s) => seq.slot(s))),
      });
    }
  }

  /**
   * Loads another decode batch into this fixed-shape context's tensors, in stream order (ops queued
   * before still read the old batch). `items`: as many single-token items as the context was made
   * for, each of at most `maxKeys` keys after this step.
   */
  rewrite(items: readonly BatchItem[]): void {
    const width = this.blockTable.shape[1];
    const l = layout(items, width);
    if (items.length !== this.T || l.decodeRows !== this.T || l.maxKeys > this.maxKeys || l.width !== width)
      throw new RangeError(`ForwardContext.rewrite: expected ${this.T} single-token items of at most ${this.maxKeys} keys`);
    this.positions.write(Int32Array.from(l.positions));
    this.seqKeys.write(Int32Array.from(l.seqKeys));
    this.slots.write(Int32Array.from(l.slots));
    this.ids.write(Int32Array.from(l.ids));
    this.blockTable.write(l.table);
  }

  dispose(): void {
    for (const t of [this.positions, this.seqKeys, this.slots, this.seqIdx, this.ids, this.blockTable]) t.dispose();
    this.decode?.qPos.dispose();
    this.decode?.seqIdx.dispose();
    for (const p of this.prefill) {
      p.qPos.dispose();
      p.keySlots.dispose();
    }
  }
}
