import { describe, expect, it } from 'vitest';

import { ops, tensor } from '../../lib/index.js';
import { maxAbsDiff, rng, roundTo, suiteDevices } from '../helpers.js';
import { expectSameAsPieces, missingPath, onPath, PATHS } from './cpu-paths.js';

/** float64 RMSNorm of one row; `x` already holds the (rounded) inputs. */
function rmsNormRef(x: Float64Array | Float32Array, w: ArrayLike<number>, eps: number): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  return Float64Array.from(x, (v, i) => w[i] * (v * inv));
}

/** float64 LayerNorm of one row. */
function layerNormRef(x: Float32Array, w: ArrayLike<number>, b: ArrayLike<number> | null, eps: number): Float64Array {
  let mean = 0;
  for (const v of x) mean += v;
  mean /= x.length;
  let variance = 0;
  for (const v of x) variance += (v - mean) ** 2;
  variance /= x.length;
  const rstd = 1 / Math.sqrt(variance + eps);
  return Float64Array.from(x, (v, i) => (v - mean) * rstd * w[i] + (b ? b[i] : 0));
}

/** One unit in the last place of `dtype` at |v| (subnormals included). */
function ulp(dtype: 'bf16' | 'f16', v: number): number {
  const [mant, emin] = dtype === 'bf16' ? [7, -126] : [10, -14];
  const e = v === 0 ? emin : Math.max(Math.floor(Math.log2(Math.abs(v))), emin);
  return 2 ** (e - mant);
}

/** The worst distance from got to want in ulps of `dtype` at want (1: one rounding flip). */
function worstUlps(got: ArrayLike<number>, want: ArrayLike<number>, dtype: 'bf16' | 'f16'): { ulps: number; index: number } {
  let worst = { ulps: 0, index: -1 };
  for (let i = 0; i < want.length; ++i) {
    const u = Math.abs(got[i] - want[i]) / ulp(dtype, want[i]);
    if (!(u <= worst.ulps)) worst = { ulps: u, index: i };
  }
  return worst;
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length), ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  return ua.length === ub.length && ua.every((v, i) => v === ub[i]);
}

for (const { device, skip } of suiteDevices('rmsNorm')) {
  describe.skipIf(skip)(`rmsNorm on ${device}${skip ? ` (skipped: ${skip})` : ''}`, () => {
    const r = rng();
    const shapes: [number, number][] = [[1, 1], [1, 7], [3, 33], [5, 130], [2, 7168], [17, 513], [3, 64], [2, 79]];
    for (const dtype of ['f32', 'bf16', 'f16'] as const) {
      for (const [rows, dim] of shapes) {
        it(`${dtype} [${rows}, ${dim}] matches float64, same bits on every SIMD path (seed ${r.seed})`, async () => {
          const xs = r.floats(rows * dim, 3).map((v) => roundTo(dtype, v));
          const res = r.floats(rows * dim, 2).map((v) => roundTo(dtype, v));
          const w = r.floats(dim).map((v) => roundTo('bf16', v + 1));
          const eps = 1e-6;
          using x = tensor(xs, { shape: [rows, dim], dtype, device });
          using rt = tensor(res, { shape: [rows, dim], dtype, device });
          using wt = tensor(w, { dtype: 'bf16', device });
          const run = async () => {
            using y = ops.rmsNorm(x, wt, eps);
            const fused = ops.addRmsNorm(x, rt, wt, eps);
            using out = fused.out;
            using sum = fused.residual;
            expect(y.shape).toEqual([rows, dim]);
            expect(y.dtype).toBe(dtype);
            return Promise.all([y.toFloat32Array(), out.toFloat32Array(), sum.toFloat32Array()]);
          };
          const want = new Float64Array(rows * dim), wantFused = new Float64Array(rows * dim), wantSum = new Float64Array(rows * dim);
          for (let i = 0; i < rows; ++i) {
            const row = xs.subarray(i * dim, (i + 1) * dim);
            want.set(rmsNormRef(row, w, eps).map((v) => roundTo(dtype, v)), i * dim);
            const s = Float64Array.from(row, (v, j) => Math.fround(v + res[i * dim + j]));
            wantSum.set(s.map((v) => roundTo(dtype, v)), i * dim);
            wantFused.set(rmsNormRef(s, w, eps).map((v) => roundTo(dtype, v)), i * dim);
          }
          // f32: the f32 summation error. bf16/f16: within one ulp of the float64 result rounded to
          // the dtype (the f32 arithmetic can only flip a rounding that lies within its own error of a tie).
          const check = ([got, gotFused, gotSum]: Float32Array[]) => {
            expect(maxAbsDiff(gotSum, wantSum).diff).toBe(0);
            if (dtype === 'f32') {
              expect(maxAbsDiff(got, want).diff).toBeLessThan(8e-5);
              expect(maxAbsDiff(gotFused, wantFused).diff).toBeLessThan(8e-5);
            } else {
              expect(worstUlps(got, want, dtype).ulps).toBeLessThanOrEqual(1);
              expect(worstUlps(gotFused, wantFused, dtype).ulps).toBeLessThanOrEqual(1);
            }
          };
          const first = await run();
          check(first);
          if (device !== 'cpu') return;
          for (const path of PATHS) {
            if (missingPath(path)) continue;
            const got = await onPath(path, run);
            if (!got) continue;
            check(got);
            for (let k = 0; k < 3; ++k) expect({ path, output: k, same: sameBits(got[k], first[k]) }).toEqual({ path, output: k, same: true });
          }
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

describe('layerNorm on cpu', () => {
  const r = rng();
  const shapes: number[][] = [[1, 1], [1, 128], [3, 33], [2, 5, 17], [4, 7168]];
  for (const dtype of ['f32', 'bf16'] as const) {
    for (const wType of ['f32', 'bf16'] as const) {
      for (const shape of shapes) {
        for (const withBias of [true, false]) {
          it(`${dtype} x, ${wType} weight${withBias ? ' and bias' : ', no bias'} ${JSON.stringify(shape)} matches float64 (seed ${r.seed})`, async () => {
            const dim = shape[shape.length - 1];
            const rows = shape.reduce((a, b) => a * b, 1) / dim;
            // An offset mean, as LayerNorm inputs have: the variance must not cancel badly.
            const xs = r.floats(rows * dim, 2).map((v) => roundTo(dtype, v + 3));
            const w = r.floats(dim).map((v) => roundTo(wType, v + 1));
            const b = r.floats(dim).map((v) => roundTo(wType, v));
            const eps = 1e-5;
            using x = tensor(xs, { shape, dtype });
            using wt = tensor(w, { dtype: wType });
            using bt = tensor(b, { dtype: wType });
            using y = ops.layerNorm(x, wt, withBias ? bt : null, eps);
            expect(y.shape).toEqual(shape);
            expect(y.dtype).toBe(dtype);
            const got = await y.toFloat32Array();
            const want = new Float64Array(rows * dim);
            for (let i = 0; i < rows; ++i)
              want.set(layerNormRef(xs.subarray(i * dim, (i + 1) * dim), w, withBias ? b : null, eps), i * dim);
            // bf16: one rounding (half an ulp, 2^-8 relative); both: f32 error of the statistics.
            const rel = dtype === 'f32' ? 2e-5 : 2 ** -8 + 2e-5;
            for (let i = 0; i < got.length; ++i) {
              const tol = rel * (Math.abs(want[i]) + 1);
              if (!(Math.abs(got[i] - want[i]) <= tol)) expect({ i, got: got[i], want: want[i], tol }).toBe('within tol');
            }
          });
        }
      }
    }
  }

  it('gives the same bits on every SIMD path', async () => {
    const xs = r.floats(5 * 77, 2);
    using x = tensor(xs, { shape: [5, 77], dtype: 'bf16' });
    using w = tensor(r.floats(77), { dtype: 'bf16' });
    using b = tensor(r.floats(77));
    const run = async () => {
      using y = ops.layerNorm(x, w, b, 1e-6);
      return y.toFloat32Array();
    };
    const first = await run();
    for (const path of PATHS) {
      if (missingPath(path)) continue;
      const got = await onPath(path, run);
      if (got) expect({ path, same: sameBits(got, first) }).toEqual({ path, same: true });
    }
  });

  it('rejects bad arguments with the op, argument, expected and received', () => {
    using x = tensor(r.floats(12), { shape: [3, 4] });
    using w3 = tensor(r.floats(3));
    using w4 = tensor(r.floats(4));
    using f16 = tensor(r.floats(4), { dtype: 'f16' });
    using xi = tensor(new Int32Array(12), { shape: [3, 4], dtype: 'i32' });
    expect(() => ops.layerNorm(x, w3, null, 1e-5)).toThrow('layerNorm: weight must have shape [4] but received [3]');
    expect(() => ops.layerNorm(x, w4, w3, 1e-5)).toThrow('layerNorm: bias must have shape [4] but received [3]');
    expect(() => ops.layerNorm(x, w4, f16, 1e-5)).toThrow('layerNorm: bias must have dtype f32 or bf16 but received f16');
    expect(() => ops.layerNorm(xi, w4, null, 1e-5)).toThrow('layerNorm: x must have dtype f32 or bf16 but received i32');
    expect(() => ops.layerNorm(x, w4, null, -1)).toThrow('layerNorm: eps must be >= 0 but received -1');
    expect(() => ops.layerNorm(x, w4, null, NaN)).toThrow('layerNorm: expected a finite number for eps but received nan');
  });
});

describe('norms with large outputs (16 MiB and more: non-temporal stores)', () => {
  const r = rng();
  it(`rmsNorm bf16 [1201, 7001], plain and fused (seed ${r.seed})`, async () => {
    const [rows, dim] = [1201, 7001];
    using x = tensor(r.floats(rows * dim), { shape: [rows, dim], dtype: 'bf16' });
    using res = tensor(r.floats(rows * dim), { shape: [rows, dim], dtype: 'bf16' });
    using w = tensor(r.floats(dim), { dtype: 'bf16' });
    await expectSameAsPieces(rows, 100, (s, c) => {
      using xs = x.rows(s, c);
      using rs = res.rows(s, c);
      const fused = ops.addRmsNorm(xs, rs, w, 1e-6);
      return [ops.rmsNorm(xs, w, 1e-6), fused.out, fused.residual];
    });
  });

  it(`layerNorm f32 [601, 7001] (seed ${r.seed})`, async () => {
    const [rows, dim] = [601, 7001];
    using x = tensor(r.floats(rows * dim), { shape: [rows, dim] });
    using w = tensor(r.floats(dim), { dtype: 'bf16' });
    using b = tensor(r.floats(dim));
    await expectSameAsPieces(rows, 100, (s, c) => {
      using xs = x.rows(s, c);
      return [ops.layerNorm(xs, w, b, 1e-5)];
    });
  });
});
