import { describe, expect, it } from 'vitest';

import { ops, tensor } from '../../lib/index.js';
import { rng, roundTo } from '../helpers.js';
import { maxAbs, onSimdPath, SIMD_PATHS } from './attention-helpers.js';

/** Sylvester Hadamard entry: (-1)^popcount(i & j). */
function hEntry(i: number, j: number): number {
  let v = i & j, bits = 0;
  while (v) {
    bits += v & 1;
    v >>>= 1;
  }
  return bits & 1 ? -1 : 1;
}

/** float64 reference: the explicit matrix for small D, a float64 butterfly for large D. */
function hadamardRef(x: ArrayLike<number>, D: number): Float64Array {
  const y = new Float64Array(D);
  if (D <= 256) {
    for (let i = 0; i < D; ++i) {
      let s = 0;
      for (let j = 0; j < D; ++j) s += hEntry(i, j) * x[j];
      y[i] = s / Math.sqrt(D);
    }
    return y;
  }
  y.set(Array.from(x));
  for (let h = 1; h < D; h *= 2)
    for (let i = 0; i < D; i += 2 * h)
      for (let j = i; j < i + h; ++j) {
        const a = y[j], b = y[j + h];
        y[j] = a + b;
        y[j + h] = a - b;
      }
  return y.map((v) => v / Math.sqrt(D));
}

describe('hadamard on cpu', () => {
  const r = rng();
  const shapes: number[][] = [[1], [3, 2], [5, 4], [2, 8], [1, 16], [7, 64], [3, 2, 128], [4, 1024], [1, 32768]];
  for (const dtype of ['f32', 'bf16'] as const) {
    for (const shape of shapes) {
      it(`${dtype} ${JSON.stringify(shape)} matches float64 on every SIMD path (seed ${r.seed})`, async () => {
        const D = shape[shape.length - 1], n = shape.reduce((a, b) => a * b, 1);
        const xs = r.floats(n, 2).map((v) => roundTo(dtype, v));
        using x = tensor(xs, { shape, dtype });
        const want = new Float64Array(n);
        for (let o = 0; o < n; o += D) want.set(hadamardRef(xs.subarray(o, o + D), D), o);
        // f32 butterflies: each output is a sum of D terms of size |x| / sqrt(D).
        const f32Tol = maxAbs(xs) * Math.sqrt(D) * Math.log2(2 * D) * 2 ** -23;
        for (const path of SIMD_PATHS) {
          await onSimdPath(path, async (used) => {
            using y = ops.hadamard(x);
            expect(y.shape).toEqual(shape);
            expect(y.dtype).toBe(dtype);
            const got = await y.toFloat32Array();
            for (let i = 0; i < n; ++i) {
              const tol = f32Tol + (dtype === 'bf16' ? 2 ** -8 * Math.abs(want[i]) : 0);
              if (!(Math.abs(got[i] - want[i]) <= tol)) expect({ path: used, i, got: got[i] }).toEqual({ path: used, i, got: want[i] });
            }
          });
        }
      });
    }
  }

  it('rejects bad arguments', () => {
    using x = tensor(r.floats(12), { shape: [2, 6] });
    using xi = tensor(new Int32Array(4));
    using big = tensor(new Float32Array(65536));
    expect(() => ops.hadamard(x)).toThrow('hadamard: the last dimension of x must be a power of two between 1 and 32768 but received shape [2, 6]');
    expect(() => ops.hadamard(big)).toThrow(RangeError);
    expect(() => ops.hadamard(xi)).toThrow('hadamard: x must have dtype bf16 or f32 but received i32');
  });
});
