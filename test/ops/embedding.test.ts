import { describe, expect, it } from 'vitest';

import { ops, synchronize, tensor } from '../../lib/index.js';
import { native } from '../../lib/runtime/native.js';
import { rng, roundTo } from '../helpers.js';
import { expectSameAsPieces } from './cpu-paths.js';

describe('embedding on cpu', () => {
  const r = rng();
  const cases: [number, number, number][] = [[1, 1, 1], [5, 7, 1], [512, 33, 9], [100, 130, 64], [1000, 7168, 3]];
  for (const tableType of ['bf16', 'f32'] as const) {
    for (const outType of [undefined, 'f32', 'bf16'] as const) {
      for (const [V, D, T] of cases) {
        it(`${tableType} table [${V}, ${D}] -> ${outType ?? 'default'}, ${T} ids, on every SIMD path (seed ${r.seed})`, async () => {
          const tab = r.floats(V * D).map((v) => roundTo(tableType, v));
          const ids = Int32Array.from({ length: T }, () => r.int(0, V));
          if (T > 2) ids[T - 1] = V - 1;
          using table = tensor(tab, { shape: [V, D], dtype: tableType });
          using idt = tensor(ids);
          const want = new Float64Array(T * D);
          const dtype = outType ?? tableType;
          for (let t = 0; t < T; ++t)
            for (let j = 0; j < D; ++j) want[t * D + j] = roundTo(dtype, tab[ids[t] * D + j]);
          for (const path of ['avx512', 'avx2', 'scalar'] as const) {
            await synchronize('cpu');
            if (native().setSimdCap(path) !== path) continue;
            try {
              using y = ops.embedding(table, idt, outType);
              expect(y.shape).toEqual([T, D]);
              expect(y.dtype).toBe(dtype);
              const got = await y.toFloat32Array();
              for (let i = 0; i < want.length; ++i)
                if (got[i] !== want[i]) expect({ path, i, got: got[i] }).toEqual({ path, i, got: want[i] });
            } finally {
              await synchronize('cpu');
              native().setSimdCap('avx512');
            }
          }
        });
      }
    }
  }

  it('rejects an id outside the table when it runs, naming the id and position', async () => {
    using table = tensor(r.floats(512 * 4), { shape: [512, 4], dtype: 'bf16' });
    using ids = tensor(Int32Array.from([1, 2, 3, 600, 5]));
    using y = ops.embedding(table, ids);
    await expect(y.read()).rejects.toThrow('embedding: token id 600 at position 3 is outside the table of 512 rows');
    using neg = tensor(Int32Array.from([-1]));
    using z = ops.embedding(table, neg);
    await expect(z.read()).rejects.toThrow('embedding: token id -1 at position 0 is outside the table of 512 rows');
    // The stream carries on after the error.
    using last = tensor(Int32Array.from([511]));
    using ok = ops.embedding(table, last);
    expect((await ok.read()).length).toBe(4);
  });

  it('rejects bad arguments with the op, argument, expected and received', () => {
    using table = tensor(r.floats(12), { shape: [3, 4] });
    using flat = tensor(r.floats(12));
    using ids = tensor(Int32Array.from([0, 1]));
    using ids2 = tensor(Int32Array.from([0, 1]), { shape: [1, 2] });
    using fids = tensor(r.floats(2));
    expect(() => ops.embedding(flat, ids)).toThrow('embedding: table must have 2 dimensions but received shape [12]');
    expect(() => ops.embedding(table, fids)).toThrow('embedding: ids must have dtype i32 but received f32');
    expect(() => ops.embedding(table, ids2)).toThrow('embedding: ids must have 1 dimensions but received shape [1, 2]');
    expect(() => ops.embedding(table, ids, 'f16')).toThrow('embedding: outDtype must be f32 or bf16 but received f16');
    // @ts-expect-error not a dtype
    expect(() => ops.embedding(table, ids, 'float')).toThrow("embedding: expected a dtype (f32, bf16, f16, f8e4m3, i32, i64, u8) for outDtype but received 'float'");
  });
});

describe('embedding with large outputs (16 MiB and more: non-temporal stores)', () => {
  const r = rng();
  it(`bf16 table [1000, 7001] to bf16 and f32 gives the bytes of small runs on every path (seed ${r.seed})`, async () => {
    const [V, D, T] = [1000, 7001, 1300];
    using table = tensor(r.floats(V * D), { shape: [V, D], dtype: 'bf16' });
    using ids = tensor(Int32Array.from({ length: T }, () => r.int(0, V)));
    await expectSameAsPieces(T, 400, (s, c) => {
      using part = ids.rows(s, c);
      return [ops.embedding(table, part), ops.embedding(table, part, 'f32')];
    });
  });
});
