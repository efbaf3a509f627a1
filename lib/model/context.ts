/**
 * One forward pass's batch: the ragged token rows of every sequence in it, flattened to `[T]` with
 * single-token decode items first (they share the absorbed MLA kernel), then prefill chunks. Holds the
 * per-token tensors every layer reads: positions, cache slots, sequence rows of the block table.
 */
import { tensor, type Tensor } from '../runtime/tensor.js';
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
  /** Longest sequence after this step (keys the indexer scores). */
  readonly maxKeys: number;
  /** Row of the last token of each caller item, in caller order. */
  readonly lastRows: number[];
  /** `[T]` i32 token ids in row order. */
  readonly ids: Tensor;
  readonly prefill: PrefillPart[] = [];
  readonly decode: { qPos: Tensor; seqIdx: Tensor } | null;

  constructor(items: readonly BatchItem[], device: string) {
    const order = items.map((_, i) => i);
    order.sort((a, b) => Number(items[a].tokens.length > 1) - Number(items[b].tokens.length > 1) || a - b);
    this.order = order;
    const positions: number[] = [], slots: number[] = [], seqIdx: number[] = [], ids: number[] = [];
    const lastRows = new Array<number>(items.length);
    let maxBlocks = 1, maxKeys = 1, decodeRows = 0;
    const parts: { item: number; rowStart: number; n: number; start: number }[] = [];
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
      maxBlocks = Math.max(maxBlocks, sequence.blocks.length);
      maxKeys = Math.max(maxKeys, start + tokens.length);
      if (tokens.length === 1) decodeRows += 1;
      else parts.push({ item: i, rowStart, n: tokens.length, start });
    });
    this.T = positions.length;
    this.decodeRows = decodeRows;
    this.maxKeys = maxKeys;
    this.lastRows = lastRows;
    const table = new Int32Array(order.length * maxBlocks);
    order.forEach((i, b) => table.set(items[i].sequence.blocks, b * maxBlocks));
    const i32 = (a: ArrayLike<number>, shape?: number[]) => tensor(Int32Array.from(a), { dtype: 'i32', device, shape });
    this.positions = i32(positions);
    this.seqKeys = i32(seqIdx.map((b) => items[order[b]].sequence.length + items[order[b]].tokens.length));
    this.slots = i32(slots);
    this.seqIdx = i32(seqIdx);
    this.ids = i32(ids);
    this.blockTable = i32(table, [order.length, maxBlocks]);
    this.decode = decodeRows ? { qPos: this.positions.rows(0, decodeRows), seqIdx: this.seqIdx.rows(0, decodeRows) } : null;
    for (const p of parts) {
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
