import { afterAll, describe, expect, it } from 'vitest';

import { ops, synchronize, tensor } from '../../lib/index.js';
import { native } from '../../lib/runtime/native.js';
import { e4m3Value, rng, roundBf16, roundE4m3, type Rng } from '../helpers.js';
import { missingPath, skipNote } from './cpu-paths.js';

const SIMD_PATHS = ['avx512', 'avx2', 'scalar'] as const;
const F32_INV_448 = Math.fround(1 / 448);
const AMAX_FLOOR = Math.fround(1e-4);

/** The E4M3 code of a value that is already an E4M3 value (sign kept for -0). */
function e4m3Code(v: number): number {
  const sign = v < 0 || Object.is(v, -0) ? 0x80 : 0;
  const a = Math.abs(v);
  if (a === 0) return sign;
  if (a < 2 ** -6) return sign | (a / 2 ** -9);
  const e = Math.floor(Math.log2(a));
  return sign | ((e + 7) << 3) | (a / 2 ** e * 8 - 8);
}

/** The smallest power of two ≥ s (s a positive normal f32). */
function pow2Ceil(s: number): number {
  let p = 2 ** Math.floor(Math.log2(s));
  while (p < s) p *= 2;
  while (p / 2 >= s) p /= 2;
  return p;
}

/** f32 reference of actQuant for one group; `x` holds f32 values. */
function quantGroupRef(x: ArrayLike<number>, ue8m0: boolean): { codes: number[]; scale: number } {
  let amax = 0;
  for (let i = 0; i < x.length; ++i) amax = Math.max(amax, Math.abs(x[i]));
  amax = Math.max(amax, AMAX_FLOOR);
  let s = Math.fround(amax * F32_INV_448);
  if (ue8m0) s = pow2Ceil(s);
  const codes = Array.from(x, (v) => {
    const q = Math.min(Math.max(Math.fround(v / s), -448), 448);
    return e4m3Code(roundE4m3(q));
  });
  return { codes, scale: s };
}

/** Whether q (an f32 quotient) lies exactly halfway between two neighbouring E4M3 values. */
function isTie(q: number): boolean {
  const up = roundE4m3(q * (1 + 2 ** -20)), down = roundE4m3(q * (1 - 2 ** -20));
  return up !== down && Math.abs(q - up) === Math.abs(q - down);
}

/**
 * Groups of random values that also hold the largest value as ±448·2^j (its quotient lands at or just
 * above 448 and is clamped), a few exact rounding ties (midpoints between neighbouring E4M3 values
 * times the scale) and, every fourth group, values under the 1e-4 amax floor (subnormal codes, zero).
 */
function makeInput(r: Rng, rows: number, K: number, blockSize: number, dtype: 'f32' | 'bf16', ue8m0: boolean): Float32Array {
  const x = new Float32Array(rows * K);
  const round = (v: number) => (dtype === 'bf16' ? roundBf16(v) : Math.fround(v));
  for (let g = 0; g < (rows * K) / blockSize; ++g) {
    const base = g * blockSize;
    if (g % 4 === 1) {
      for (let i = 0; i < blockSize; ++i) x[base + i] = round(r.normal() * 1e-6 * (i % 3 === 0 ? 1e-3 : 1));
      x[base] = 0;
      continue;
    }
    const amax = 448 * 2 ** r.int(-12, 12);
    for (let i = 0; i < blockSize; ++i) x[base + i] = round(Math.max(-amax, Math.min(amax, r.normal() * amax * 0.25)));
    x[base] = round(r.next() < 0.5 ? -amax : amax);
    let s = Math.fround(amax * F32_INV_448);
    if (ue8m0) s = pow2Ceil(s);
    for (let i = 1; i < Math.min(blockSize, 12); ++i) {
      const c = r.int(0, 0x7e);
      const mid = (e4m3Value(c) + e4m3Value(c + 1)) / 2;
      x[base + i] = round((r.next() < 0.5 ? -mid : mid) * s);
    }
  }
  return x;
}

describe('actQuant on cpu', () => {
  const r = rng();
  afterAll(async () => {
    await synchronize('cpu');
    native().setSimdCap('avx512');
  });
  const cases: [number[], number][] = [
    [[1, 128], 128],
    [[3, 384], 128],
    [[2, 3, 640], 128],
    [[5, 96], 48],
    [[4, 72], 24],
    [[3, 35], 7],
    [[2, 16], 1],
  ];
  for (const simd of SIMD_PATHS) {
    for (const dtype of ['bf16', 'f32'] as const) {
      for (const ue8m0 of [false, true]) {
        for (const [shape, blockSize] of cases) {
          it.skipIf(missingPath(simd))(`${simd} ${dtype}${ue8m0 ? ' ue8m0' : ''} [${shape}] blockSize ${blockSize} is bit-exact (seed ${r.seed})${skipNote(missingPath(simd))}`, async () => {
            await synchronize('cpu');
            expect(native().setSimdCap(simd)).toBe(simd);
            const K = shape[shape.length - 1];
            const rows = shape.reduce((a, b) => a * b, 1) / K;
            const xs = makeInput(r, rows, K, blockSize, dtype, ue8m0);
            using x = tensor(xs, { shape, dtype });
            const q = ops.actQuant(x, { blockSize, scaleFmt: ue8m0 ? 'ue8m0' : null });
            using codes = q.codes;
            using scales = q.scales;
            const [gotCodes, gotScales] = await Promise.all([codes.read<'f8e4m3'>(), scales.read<'f32'>()]);
            expect(codes.shape).toEqual(shape);
            expect(codes.dtype).toBe('f8e4m3');
            expect(scales.shape).toEqual([...shape.slice(0, -1), K / blockSize]);
            let ties = 0, at448 = 0, floored = 0;
            for (let g = 0; g < (rows * K) / blockSize; ++g) {
              const group = xs.subarray(g * blockSize, (g + 1) * blockSize);
              const want = quantGroupRef(group, ue8m0);
              if (want.scale === (ue8m0 ? pow2Ceil(Math.fround(AMAX_FLOOR * F32_INV_448)) : Math.fround(AMAX_FLOOR * F32_INV_448))) ++floored;
              if (gotScales[g] !== want.scale) throw new Error(`group ${g}: scale ${gotScales[g]} != ${want.scale}`);
              for (let i = 0; i < blockSize; ++i) {
                const q = Math.fround(group[i] / want.scale);
                if (Math.abs(q) >= 440) ++at448;
                if (isTie(q)) ++ties;
                if (gotCodes[g * blockSize + i] !== want.codes[i])
                  throw new Error(`group ${g} element ${i}: x=${group[i]} code 0x${gotCodes[g * blockSize + i].toString(16)} != 0x${want.codes[i].toString(16)}`);
              }
            }
            // The input covers what it claims to.
            expect(at448).toBeGreaterThan(0);
            if (blockSize >= 8) expect(ties).toBeGreaterThan(0);
            if ((rows * K) / blockSize >= 2) expect(floored).toBeGreaterThan(0);
          });
        }
      }
    }
  }

  // Non-finite input as the reference's act_quant (inference/kernel.py, TileLang) produces it: its
  // absmax and clamp lower to fmaxf/fminf, which return the operand that is not NaN. So amax skips
  // NaN; a group holding ±inf gets scale +inf, its finite elements ±0 and its ±inf elements
  // clamp(inf/inf = NaN) = -448; a NaN element in a finite group is -448 too.
  for (const simd of SIMD_PATHS) {
    for (const dtype of ['bf16', 'f32'] as const) {
      for (const ue8m0 of [false, true]) {
        it.skipIf(missingPath(simd))(`${simd} ${dtype}${ue8m0 ? ' ue8m0' : ''} quantises ±inf and NaN as the reference does (seed ${r.seed})${skipNote(missingPath(simd))}`, async () => {
          await synchronize('cpu');
          expect(native().setSimdCap(simd)).toBe(simd);
          const B = 128, NEG448 = 0xfe;
          const xs = new Float32Array(3 * B).map(() => (dtype === 'bf16' ? roundBf16(r.normal() * 4) : Math.fround(r.normal() * 4)));
          // Group 0: +inf, -inf and a NaN among finite values. Group 1: NaNs among finite values.
          // Group 2: nothing but NaN.
          const pick = (g: number) => g * B + r.int(0, B - 1);
          const inf0 = pick(0);
          let ninf0 = pick(0);
          while (ninf0 === inf0) ninf0 = pick(0);
          let nan0 = pick(0);
          while (nan0 === inf0 || nan0 === ninf0) nan0 = pick(0);
          xs[inf0] = Infinity;
          xs[ninf0] = -Infinity;
          xs[nan0] = NaN;
          const nans1 = new Set(Array.from({ length: r.int(1, 6) }, () => pick(1)));
          for (const i of nans1) xs[i] = NaN;
          xs.fill(NaN, 2 * B);
          using x = tensor(xs, { shape: [3, B], dtype });
          const q = ops.actQuant(x, { scaleFmt: ue8m0 ? 'ue8m0' : null });
          using codes = q.codes;
          using scales = q.scales;
          const [c, s] = await Promise.all([codes.read<'f8e4m3'>(), scales.read<'f32'>()]);
          expect(s[0]).toBe(Infinity);
          for (let i = 0; i < B; ++i) {
            const want = i === inf0 || i === ninf0 || i === nan0 ? NEG448 : xs[i] < 0 || Object.is(xs[i], -0) ? 0x80 : 0x00;
            if (c[i] !== want) throw new Error(`group 0 element ${i}: x=${xs[i]} code 0x${c[i].toString(16)} != 0x${want.toString(16)}`);
          }
          // Group 1: the scale and codes of the finite values alone; NaN codes -448.
          const finite = Float32Array.from(xs.subarray(B, 2 * B), (v) => (Number.isNaN(v) ? 0 : v));
          const want1 = quantGroupRef(finite, ue8m0);
          expect(s[1]).toBe(want1.scale);
          for (let i = 0; i < B; ++i) {
            const want = nans1.has(B + i) ? NEG448 : want1.codes[i];
            if (c[B + i] !== want) throw new Error(`group 1 element ${i}: x=${xs[B + i]} code 0x${c[B + i].toString(16)} != 0x${want.toString(16)}`);
          }
          // Group 2: the floor scale, every code -448.
          expect(s[2]).toBe(quantGroupRef(new Float32Array(B), ue8m0).scale);
          expect(Array.from(c.subarray(2 * B))).toEqual(new Array(B).fill(NEG448));
        });
      }
    }
  }

  it('rejects bad arguments with the op, argument, expected and received', () => {
    using x = tensor(r.floats(2 * 100), { shape: [2, 100] });
    using xi = tensor(new Int32Array(128), { shape: [1, 128] });
    using x128 = tensor(r.floats(128), { shape: [1, 128] });
    expect(() => ops.actQuant(x)).toThrow(RangeError);
    expect(() => ops.actQuant(x)).toThrow('actQuant: the last dimension of x must be a positive multiple of blockSize 128 but received shape [2, 100]');
    expect(() => ops.actQuant(xi)).toThrow('actQuant: x must have dtype f32 or bf16 but received i32');
    expect(() => ops.actQuant(x128, { blockSize: 0 })).toThrow('actQuant: expected a positive integer for blockSize but received 0 of type number');
    // @ts-expect-error not a scale format
    expect(() => ops.actQuant(x128, { scaleFmt: 'e8m0' })).toThrow("actQuant: expected 'ue8m0' or null for scaleFmt but received 'e8m0' of type string");
    // @ts-expect-error not a tensor
    expect(() => ops.actQuant(null)).toThrow('actQuant: expected a Tensor for x but received null');
  });
});

describe('fp8Dequant on cpu', () => {
  const r = rng();
  for (const outDtype of ['f32', 'bf16'] as const) {
    for (const [N, K] of [[1, 1], [3, 130], [129, 257], [200, 128]] as const) {
      it(`${outDtype} [${N}, ${K}] is exact (seed ${r.seed})`, async () => {
        const codes = new Uint8Array(N * K);
        for (let i = 0; i < codes.length; ++i) {
          let c = r.int(0, 256);
          if ((c & 0x7f) === 0x7f) c ^= 1;
          codes[i] = c;
        }
        const sN = Math.ceil(N / 128), sK = Math.ceil(K / 128);
        const sc = Float32Array.from({ length: sN * sK }, () => Math.fround(2 ** r.uniform(-12, 4)));
        using w = tensor(codes, { shape: [N, K], dtype: 'f8e4m3' });
        using s = tensor(sc, { shape: [sN, sK] });
        using y = ops.fp8Dequant(w, s, outDtype);
        const got = await y.toFloat32Array();
        expect(y.shape).toEqual([N, K]);
        expect(y.dtype).toBe(outDtype);
        for (let n = 0; n < N; ++n)
          for (let k = 0; k < K; ++k) {
            const v = Math.fround(e4m3Value(codes[n * K + k]) * sc[Math.floor(n / 128) * sK + Math.floor(k / 128)]);
            const want = outDtype === 'bf16' ? roundBf16(v) : v;
            if (got[n * K + k] !== want) throw new Error(`[${n}, ${k}]: ${got[n * K + k]} != ${want}`);
          }
      });
    }
  }

  it('rejects bad arguments with the op, argument, expected and received', () => {
    using w = tensor(new Uint8Array(3 * 130), { shape: [3, 130], dtype: 'f8e4m3' });
    using s = tensor(new Float32Array(2), { shape: [1, 2] });
    using bad = tensor(new Float32Array(1), { shape: [1, 1] });
    using wf = tensor(new Float32Array(4), { shape: [2, 2] });
    expect(() => ops.fp8Dequant(w, bad, 'bf16')).toThrow('fp8Dequant: wScales must have shape [1, 2] but received [1, 1]');
    expect(() => ops.fp8Dequant(wf, s, 'bf16')).toThrow('fp8Dequant: w must have dtype f8e4m3 but received f32');
    // @ts-expect-error not an output dtype
    expect(() => ops.fp8Dequant(w, s, 'f16')).toThrow('fp8Dequant: outDtype must be f32 or bf16 but received f16');
    expect(() => ops.fp8Dequant(w, s, 'bf16')).not.toThrow();
  });
});
