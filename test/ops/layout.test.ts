import { describe, expect, it } from 'vitest';

import { ops, tensor } from '../../lib/index.js';
import { rng } from '../helpers.js';

describe('transpose on cpu', () => {
  const r = rng();
  const cases: [number[], number, number][] = [[[3, 5], 0, 1], [[2, 3, 4], 1, 2], [[2, 3, 4, 5], 0, 2], [[1, 7, 1, 3], -1, 1], [[4, 4], 1, 1]];
  for (const [shape, d0, d1] of cases) {
    it(`[${shape}] dims ${d0},${d1} (seed ${r.seed})`, async () => {
      const n = shape.reduce((a, b) => a * b, 1);
      const xs = r.floats(n);
      using x = tensor(xs, { shape });
      using y = ops.transpose(x, d0, d1);
      const a = (d0 + shape.length) % shape.length, b = (d1 + shape.length) % shape.length;
      const outShape = [...shape];
      [outShape[a], outShape[b]] = [outShape[b], outShape[a]];
      expect(y.shape).toEqual(outShape);
      const got = await y.read();
      // Reference: walk every output index, map it back to x.
      const strides = (s: number[]) => s.map((_, i) => s.slice(i + 1).reduce((p, q) => p * q, 1));
      const sx = strides(shape), sy = strides(outShape);
      for (let flat = 0; flat < n; ++flat) {
        const idx = sy.map((st, i) => Math.floor(flat / st) % outShape[i]);
        [idx[a], idx[b]] = [idx[b], idx[a]];
        expect(got[flat]).toBe(xs[idx.reduce((p, v, i) => p + v * sx[i], 0)]);
      }
    });
  }
  it('rejects bad dims', () => {
    using x = tensor(r.floats(6), { shape: [2, 3] });
    expect(() => ops.transpose(x, 0, 2)).toThrow('transpose: expected an integer between -2 and 1 for dim1 but received 2');
    using v = tensor(r.floats(3));
    expect(() => ops.transpose(v, 0, 0)).toThrow('transpose: x must have at least 2 dimensions but received shape [3]');
  });
});
