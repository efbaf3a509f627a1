import { describe, expect, it } from 'vitest';

import { ops, tensor } from '../../lib/index.js';
import { maxAbsDiff, rng, roundTo, suiteDevices } from '../helpers.js';

/** float64 RMSNorm of one row; `x` already holds the (rounded) inputs. */
function rmsNormRef(x: Float64Array | Float32Array, w: ArrayLike<number>, eps: number): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  return Float64Array.from(x, (v, i) => w[i] * (v * inv));
}

for (const { device, skip } of suiteDevices()) {
  describe.skipIf(skip)(`rmsNorm on ${device}${skip ? ` (skipped: ${skip})` : ''}`, () => {
    const r = rng();
    const shapes: [number, number][] = [[1, 1], [1, 7], [3, 33], [5, 130], [2, 7168], [17, 513]];
    for (const dtype of ['f32', 'bf16', 'f16'] as const) {
      for (const [rows, dim] of shapes) {
        it(`${dtype} [${rows}, ${dim}] matches float64 (seed ${r.seed})`, async () => {
          const xs = r.floats(rows * dim, 3).map((v) => roundTo(dtype, v));
          const res = r.floats(rows * dim, 2).map((v) => roundTo(dtype, v));
          const w = r.floats(dim).map((v) => roundTo('bf16', v + 1));
          const eps = 1e-6;
          using x = tensor(xs, { shape: [rows, dim], dtype, device });
          using rt = tensor(res, { shape: [rows, dim], dtype, device });
          using wt = tensor(w, { dtype: 'bf16', device });
          using y = ops.rmsNorm(x, wt, eps);
          const fused = ops.addRmsNorm(x, rt, wt, eps);
          using out = fused.out;
          using sum = fused.residual;
          const [got, gotFused, gotSum] = await Promise.all([y.toFloat32Array(), out.toFloat32Array(), sum.toFloat32Array()]);
          const want = new Float64Array(rows * dim), wantFused = new Float64Array(rows * dim), wantSum = new Float64Array(rows * dim);
          for (let i = 0; i < rows; ++i) {
            const row = xs.subarray(i * dim, (i + 1) * dim);
            want.set(rmsNormRef(row, w, eps).map((v) => roundTo(dtype, v)), i * dim);
            const s = Float64Array.from(row, (v, j) => Math.fround(v + res[i * dim + j]));
            wantSum.set(s.map((v) => roundTo(dtype, v)), i * dim);
            wantFused.set(rmsNormRef(s, w, eps).map((v) => roundTo(dtype, v)), i * dim);
          }
          // One rounding step of the output dtype, plus f32 summation error.
          const tol = dtype === 'f32' ? 2e-5 : dtype === 'bf16' ? 2 ** -7 * 4 : 2 ** -10 * 4;
          expect(maxAbsDiff(got, want).diff).toBeLessThan(tol * 4);
          expect(maxAbsDiff(gotSum, wantSum).diff).toBe(0);
          expect(maxAbsDiff(gotFused, wantFused).diff).toBeLessThan(tol * 4);
          expect(y.shape).toEqual([rows, dim]);
          expect(y.dtype).toBe(dtype);
        });
      }
    }

    it('rejects bad arguments with the op, argument, expected and received', () => {
      using x = tensor(r.floats(12), { shape: [3, 4], device });
      using w3 = tensor(r.floats(3), { device });
      using wi = tensor(new Int32Array(4), { device });
      expect(() => ops.rmsNorm(x, w3, 1e-6)).toThrow(RangeError);
      expect(() => ops.rmsNorm(x, w3, 1e-6)).toThrow('rmsNorm: weight must have shape [4] but received [3]');
      expect(() => ops.rmsNorm(x, wi, 1e-6)).toThrow('rmsNorm: weight must have dtype f32 or bf16 but received i32');
      expect(() => ops.rmsNorm(x, x, -1)).toThrow(RangeError);
      // @ts-expect-error a number is not a tensor
      expect(() => ops.rmsNorm(x, 3, 1e-6)).toThrow(TypeError);
      using other = tensor(r.floats(12), { shape: [4, 3], device });
      using w4 = tensor(r.floats(4), { device });
      expect(() => ops.addRmsNorm(x, other, w4, 1e-6)).toThrow('rmsNorm: residual must have the shape of x [3, 4] but received [4, 3]');
    });
  });
}
