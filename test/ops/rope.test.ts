import { describe, expect, it } from 'vitest';

import { ops, tensor } from '../../lib/index.js';
import { rng, roundTo } from '../helpers.js';
import { onSimdPath, SIMD_PATHS } from './attention-helpers.js';

/** float64 frequencies of the reference's precompute_freqs_cis (no f32 rounding). */
function freqsRef(ropeDim: number, maxPositions: number, theta: number, factor: number, original: number, betaFast: number, betaSlow: number): Float64Array {
  const half = ropeDim / 2;
  const freq = Float64Array.from({ length: half }, (_, i) => 1 / theta ** ((2 * i) / ropeDim));
  if (maxPositions > original) {
    const corr = (r: number) => (ropeDim * Math.log(original / (r * 2 * Math.PI))) / (2 * Math.log(theta));
    const low = Math.max(Math.floor(corr(betaFast)), 0);
    let high = Math.min(Math.ceil(corr(betaSlow)), ropeDim - 1);
    if (low === high) high += 0.001;
    for (let i = 0; i < half; ++i) {
      const smooth = 1 - Math.min(Math.max((i - low) / (high - low), 0), 1);
      freq[i] = (freq[i] / factor) * (1 - smooth) + freq[i] * smooth;
    }
  }
  return freq;
}

describe('ropeTables', () => {
  const configs = [
    // DeepSeek-V3.2: YaRN factor 40 over 4096 (tables cut short to keep the test fast, YaRN forced on).
    { ropeDim: 64, maxPositions: 5000, theta: 10000, factor: 40, originalMaxPositions: 4096, betaFast: 32, betaSlow: 1 },
    // No YaRN: maxPositions <= originalMaxPositions.
    { ropeDim: 64, maxPositions: 300, theta: 10000, factor: 40, originalMaxPositions: 4096, betaFast: 32, betaSlow: 1 },
    { ropeDim: 10, maxPositions: 70, theta: 500, factor: 4, originalMaxPositions: 16, betaFast: 8, betaSlow: 1 },
  ];
  for (const c of configs) {
    it(`R=${c.ropeDim} P=${c.maxPositions} original=${c.originalMaxPositions} matches float64 within f32 rounding`, async () => {
      const { cos, sin } = ops.ropeTables(c);
      using _c = cos;
      using _s = sin;
      expect(cos.shape).toEqual([c.maxPositions, c.ropeDim / 2]);
      expect(cos.dtype).toBe('f32');
      const [gc, gs] = await Promise.all([cos.read<'f32'>(), sin.read<'f32'>()]);
      const freq = freqsRef(c.ropeDim, c.maxPositions, c.theta, c.factor, c.originalMaxPositions, c.betaFast, c.betaSlow);
      const half = c.ropeDim / 2;
      let worst = 0;
      for (let t = 0; t < c.maxPositions; ++t) {
        for (let i = 0; i < half; ++i) {
          const angle = t * freq[i];
          // The f32 frequency and f32 angle each carry a relative error of a few 2^-24.
          const tol = angle * 2 ** -21 + 2 ** -22;
          const e = Math.max(Math.abs(gc[t * half + i] - Math.cos(angle)), Math.abs(gs[t * half + i] - Math.sin(angle))) / tol;
          worst = Math.max(worst, e);
        }
      }
      expect(worst).toBeLessThan(1);
      // Row 1 holds cos/sin of the f32 frequencies themselves.
      for (let i = 0; i < half; ++i) expect(Math.abs(Math.atan2(gs[half + i], gc[half + i]) - freq[i])).toBeLessThan(freq[i] * 2 ** -20 + 2 ** -23);
    });
  }

  it('rejects bad parameters', () => {
    const ok = configs[0];
    expect(() => ops.ropeTables({ ...ok, ropeDim: 63 })).toThrow('ropeTables: expected a positive even integer for ropeDim but received 63 of type number');
    expect(() => ops.ropeTables({ ...ok, maxPositions: 0 })).toThrow(RangeError);
    expect(() => ops.ropeTables({ ...ok, theta: -1 })).toThrow('ropeTables: expected a positive finite number for theta but received -1 of type number');
  });
});

/** float64 rope of one row (already rounded inputs) with the given cos/sin rows. */
function ropeRowRef(x: Float32Array, c: Float32Array, s: Float32Array, offset: number, interleaved: boolean): Float64Array {
  const y = Float64Array.from(x);
  const half = c.length;
  for (let i = 0; i < half; ++i) {
    const a = offset + (interleaved ? 2 * i : i);
    const b = offset + (interleaved ? 2 * i + 1 : i + half);
    y[a] = x[a] * c[i] - x[b] * s[i];
    y[b] = x[a] * s[i] + x[b] * c[i];
  }
  return y;
}

describe('rope on cpu', () => {
  const r = rng();
  const { cos, sin } = ops.ropeTables({ ropeDim: 64, maxPositions: 5000, theta: 10000, factor: 40, originalMaxPositions: 4096, betaFast: 32, betaSlow: 1 });
  const small = ops.ropeTables({ ropeDim: 6, maxPositions: 40, theta: 100, factor: 1, originalMaxPositions: 4096, betaFast: 32, betaSlow: 1 });
  const cases: { shape: number[]; offset: number; tables: typeof small }[] = [
    { shape: [1, 64], offset: 0, tables: { cos, sin } },
    { shape: [7, 3, 192], offset: 128, tables: { cos, sin } }, // the MLA query: rope on the last 64 of 192
    { shape: [5, 128], offset: 0, tables: { cos, sin } }, // the indexer: rope on the first 64 of 128
    { shape: [9, 1, 67], offset: 3, tables: { cos, sin } },
    { shape: [4, 5, 11], offset: 5, tables: small },
    { shape: [3, 6], offset: 0, tables: small },
  ];
  for (const dtype of ['f32', 'bf16'] as const) {
    for (const interleaved of [true, false]) {
      for (const c of cases) {
        it(`${dtype} ${JSON.stringify(c.shape)} offset ${c.offset} interleaved=${interleaved}, every SIMD path (seed ${r.seed})`, async () => {
          const T = c.shape[0], D = c.shape[c.shape.length - 1], rowsPerToken = c.shape.length === 3 ? c.shape[1] : 1;
          const P = c.tables.cos.shape[0], half = c.tables.cos.shape[1];
          const xs = r.floats(T * rowsPerToken * D, 2).map((v) => roundTo(dtype, v));
          const pos = Int32Array.from({ length: T }, (_, i) => (i === 0 ? P - 1 : i === 1 ? 0 : r.int(0, P)));
          using x = tensor(xs, { shape: c.shape, dtype });
          using positions = tensor(pos);
          const [tc, ts] = await Promise.all([c.tables.cos.read<'f32'>(), c.tables.sin.read<'f32'>()]);
          const want = new Float64Array(xs.length);
          for (let t = 0; t < T; ++t) {
            const cr = tc.subarray(pos[t] * half, (pos[t] + 1) * half), sr = ts.subarray(pos[t] * half, (pos[t] + 1) * half);
            for (let h = 0; h < rowsPerToken; ++h) {
              const o = (t * rowsPerToken + h) * D;
              want.set(ropeRowRef(xs.subarray(o, o + D), cr, sr, c.offset, interleaved), o);
            }
          }
          for (const path of SIMD_PATHS) {
            await onSimdPath(path, async (used) => {
              using y = ops.rope(x, positions, c.tables.cos, c.tables.sin, { offset: c.offset, interleaved });
              expect(y.shape).toEqual(c.shape);
              expect(y.dtype).toBe(dtype);
              const got = await y.toFloat32Array();
              for (let i = 0; i < got.length; ++i) {
                const d = i % D;
                const rotated = d >= c.offset && d < c.offset + 2 * half;
                // Untouched dims are copied; rotated ones carry f32 rounding, then the dtype's. For
                // bf16 compare with the exact value (half a bf16 step plus f32 error): near a rounding
                // midpoint the f32 result may legitimately round to the other neighbour.
                const tol = !rotated ? 0 : dtype === 'f32' ? 2 ** -22 * (Math.abs(want[i]) + 4) : 2 ** -8 * Math.abs(want[i]) + 2 ** -20;
                const err = dtype === 'f32' || !rotated ? Math.abs(got[i] - roundTo(dtype, want[i])) : Math.abs(got[i] - want[i]);
                if (!(err <= tol))
                  expect({ path: used, i, got: got[i], want: want[i] }).toEqual({ path: used, i, got: roundTo(dtype, want[i]), want: want[i] });
              }
            });
          }
        });
      }
    }
  }

  it('checks positions when it runs', async () => {
    using x = tensor(r.floats(3 * 8), { shape: [3, 8] });
    using positions = tensor(new Int32Array([1, 40, 2]));
    using y = ops.rope(x, positions, small.cos, small.sin, { interleaved: true });
    await expect(y.read()).rejects.toThrow('rope: positions[1] = 40 is out of range [0, 40)');
  });

  it('rejects bad arguments with the op, argument, expected and received', () => {
    using x = tensor(r.floats(3 * 8), { shape: [3, 8] });
    using x1 = tensor(r.floats(8), { shape: [8] });
    using positions = tensor(new Int32Array([1, 2, 3]));
    using p2 = tensor(new Int32Array([1, 2]));
    using pf = tensor(new Float32Array([1, 2, 3]));
    const { cos: c, sin: s } = small;
    expect(() => ops.rope(x1, positions, c, s, { interleaved: true })).toThrow('rope: x must have 2 or 3 dimensions ([T, D] or [T, H, D]) but received shape [8]');
    expect(() => ops.rope(x, p2, c, s, { interleaved: true })).toThrow('rope: positions must have shape [3] but received [2]');
    expect(() => ops.rope(x, pf, c, s, { interleaved: true })).toThrow('rope: positions must have dtype i32 but received f32');
    expect(() => ops.rope(x, positions, c, cos, { interleaved: true })).toThrow('rope: sin must have the shape of cos [40, 3] but received [5000, 32]');
    expect(() => ops.rope(x, positions, c, s, { offset: 3, interleaved: true })).toThrow(
      'rope: offset + 2 * cos.shape[1] must be at most the last dimension of x (8) but received 3 + 6 = 9',
    );
    expect(() => ops.rope(x, positions, c, s, { offset: -1, interleaved: true })).toThrow('rope: expected a non-negative integer for offset but received -1 of type number');
    // @ts-expect-error interleaved is required
    expect(() => ops.rope(x, positions, c, s, {})).toThrow('rope: expected a boolean for interleaved but received undefined');
    using cb = tensor(r.floats(40 * 3), { shape: [40, 3], dtype: 'bf16' });
    expect(() => ops.rope(x, positions, cb, s, { interleaved: true })).toThrow('rope: cos must have dtype f32 but received bf16');
  });
});
