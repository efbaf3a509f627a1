import { describe, expect, it } from 'vitest';

import { ops, tensor, type DType } from '../../lib/index.js';
import { rng } from '../helpers.js';
import { shuffled } from './attention-helpers.js';

const BYTES: Record<string, number> = { f32: 4, bf16: 2, f8e4m3: 1, i32: 4, u8: 1 };

function rawOf(dtype: DType, n: number, next: () => number): Uint8Array {
  const bytes = new Uint8Array(n * BYTES[dtype]);
  for (let i = 0; i < bytes.length; ++i) bytes[i] = Math.floor(next() * 256);
  // Keep f8/bf16/f32 bit patterns whatever they are: the cache copies bytes.
  return bytes;
}

function typed(dtype: DType, bytes: Uint8Array): ArrayBufferView {
  switch (dtype) {
    case 'f32': return new Float32Array(bytes.buffer);
    case 'i32': return new Int32Array(bytes.buffer);
    case 'bf16': return new Uint16Array(bytes.buffer);
    default: return bytes;
  }
}

describe('paged cache on cpu', () => {
  const r = rng();
  it('has 64-token blocks', () => expect(ops.BLOCK_TOKENS).toBe(64));
  for (const dtype of ['bf16', 'f32', 'f8e4m3', 'i32', 'u8'] as DType[]) {
    for (const [numBlocks, W, T] of [[1, 1, 1], [3, 576, 70], [5, 129, 200], [2, 7, 1]]) {
      it(`${dtype} cache [${numBlocks}, 64, ${W}]: ${T} writes then gathers, in order (seed ${r.seed})`, async () => {
        const es = BYTES[dtype];
        const init = rawOf(dtype, numBlocks * 64 * W, r.next);
        using cache = tensor(typed(dtype, init), { shape: [numBlocks, 64, W], dtype });
        const model = init.slice();
        // Two rounds of writes, the second overwriting some slots (and repeating one within itself).
        for (let round = 0; round < 2; ++round) {
          const rowsRaw = rawOf(dtype, T * W, r.next);
          const perm = shuffled(numBlocks * 64, r.next);
          const slots = Int32Array.from({ length: T }, (_, t) => perm[t % perm.length]);
          if (T > 2) slots[T - 1] = slots[0];
          using rows = tensor(typed(dtype, rowsRaw), { shape: [T, W], dtype });
          using slotT = tensor(slots);
          ops.pagedWrite(cache, rows, slotT);
          for (let t = 0; t < T; ++t) model.set(rowsRaw.subarray(t * W * es, (t + 1) * W * es), slots[t] * W * es);
        }
        const want = Int32Array.from({ length: Math.min(97, numBlocks * 64) }, () => r.int(0, numBlocks * 64));
        using gslots = tensor(want);
        using got = ops.pagedGather(cache, gslots);
        expect(got.shape).toEqual([want.length, W]);
        expect(got.dtype).toBe(dtype);
        const gotBytes = new Uint8Array((await got.read()).buffer);
        const wantBytes = new Uint8Array(want.length * W * es);
        want.forEach((s, i) => wantBytes.set(model.subarray(s * W * es, (s + 1) * W * es), i * W * es));
        expect(Buffer.from(gotBytes).equals(Buffer.from(wantBytes))).toBe(true);
        const all = new Uint8Array((await cache.read()).buffer);
        expect(Buffer.from(all).equals(Buffer.from(model))).toBe(true);
      });
    }
  }

  it('writes a per-token cache ([numBlocks, 64]) through a [numBlocks, 64, 1] view', async () => {
    using scales = tensor(new Float32Array(3 * 64), { shape: [3, 64] });
    using rows = tensor(new Float32Array([0.5, 2, 8]), { shape: [3] });
    using slots = tensor(new Int32Array([130, 0, 64]));
    using view = scales.reshape([3, 64, 1]);
    using rowView = rows.reshape([3, 1]);
    ops.pagedWrite(view, rowView, slots);
    const got = await scales.read<'f32'>();
    const want = new Float32Array(3 * 64);
    [want[130], want[0], want[64]] = [0.5, 2, 8];
    expect(Array.from(got)).toEqual(Array.from(want));
  });

  it('checks slots when it runs and writes nothing on a bad slot', async () => {
    using cache = tensor(new Float32Array(2 * 64 * 3), { shape: [2, 64, 3] });
    using rows = tensor(new Float32Array([1, 2, 3, 4, 5, 6]), { shape: [2, 3] });
    using bad = tensor(new Int32Array([5, 128]));
    ops.pagedWrite(cache, rows, bad);
    await expect(cache.read()).rejects.toThrow('pagedWrite: slots[1] = 128 is out of range [0, 128)');
    expect(Array.from(await cache.read<'f32'>()).every((v) => v === 0)).toBe(true);
    using neg = tensor(new Int32Array([-1]));
    using g = ops.pagedGather(cache, neg);
    await expect(g.read()).rejects.toThrow('pagedGather: slots[0] = -1 is out of range [0, 128)');
  });

  it('rejects bad arguments with the op, argument, expected and received', () => {
    using cache = tensor(new Float32Array(2 * 64 * 3), { shape: [2, 64, 3] });
    using cache32 = tensor(new Float32Array(2 * 32 * 3), { shape: [2, 32, 3] });
    using rows = tensor(new Float32Array(6), { shape: [2, 3] });
    using rows4 = tensor(new Float32Array(8), { shape: [2, 4] });
    using rowsB = tensor(new Uint16Array(6), { shape: [2, 3], dtype: 'bf16' });
    using slots = tensor(new Int32Array(2));
    using slots3 = tensor(new Int32Array(3));
    using slotsF = tensor(new Float32Array(2));
    expect(() => ops.pagedWrite(cache32, rows, slots)).toThrow('pagedWrite: cache must have size 64 in dimension 1 but received shape [2, 32, 3]');
    expect(() => ops.pagedWrite(cache, rows4, slots)).toThrow('pagedWrite: rows must have size 3 in dimension 1 but received shape [2, 4]');
    expect(() => ops.pagedWrite(cache, rowsB, slots)).toThrow('pagedWrite: rows must have the dtype of cache (f32) but received bf16');
    expect(() => ops.pagedWrite(cache, rows, slots3)).toThrow('pagedWrite: slots must have shape [2] but received [3]');
    expect(() => ops.pagedWrite(cache, rows, slotsF)).toThrow('pagedWrite: slots must have dtype i32 but received f32');
    expect(() => ops.pagedGather(rows, slots)).toThrow('pagedGather: cache must have 3 dimensions but received shape [2, 3]');
  });
});
