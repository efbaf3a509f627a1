import { afterAll, describe, expect, it } from 'vitest';

import { ops, synchronize, tensor, type Tensor } from '../../lib/index.js';
import { native } from '../../lib/runtime/native.js';
import { e4m3Value, rng, roundBf16, type Rng } from '../helpers.js';
import { missingBf16Dot, missingPath, skipNote } from './cpu-paths.js';

/**
 * Kernel paths: AVX-512 with the BF16 dot product (where the CPU has it), AVX-512 f32, AVX2, scalar.
 * Tolerance of every product: |got − ref| ≤ 1e-5 · Σ|terms| (f32 accumulation, and for f32 operands
 * the rounding of each product) + half an ulp of outDtype at the result (the one final rounding).
 */
const PATHS = [
  { simd: 'avx512', bf16Dot: true },
  { simd: 'avx512', bf16Dot: false },
  { simd: 'avx2', bf16Dot: false },
  { simd: 'scalar', bf16Dot: false },
] as const;
type Path = (typeof PATHS)[number];
const pathName = (p: Path) => (p.simd === 'avx512' ? (p.bf16Dot ? 'avx512-bf16' : 'avx512-f32') : p.simd);

/** Why this machine cannot run path p (the test is then reported skipped), or false. */
const missing = (p: Path): string | false => (p.bf16Dot ? missingBf16Dot() : missingPath(p.simd));
/** it() for a test of path p: skipped, with the reason in its name, where the CPU lacks the path. */
const itOn = (p: Path, name: string, fn: () => Promise<void>) => it.skipIf(missing(p))(`${name}${skipNote(missing(p))}`, fn);

async function usePath(p: Path): Promise<void> {
  await synchronize('cpu');
  const simd = native().setSimdCap(p.simd);
  const bf16 = native().ops.gemmSetBf16Dot(p.bf16Dot);
  if (simd !== p.simd || bf16 !== p.bf16Dot) throw new Error(`usePath: the CPU runs ${simd}${bf16 ? ' with the BF16 dot' : ''}, not ${pathName(p)}`);
}

async function restorePaths(): Promise<void> {
  await synchronize('cpu');
  native().setSimdCap('avx512');
  native().ops.gemmSetBf16Dot(true);
}

/** Random E4M3 codes (no NaN codes) with their values. */
function randomCodes(r: Rng, n: number): { codes: Uint8Array; values: Float64Array } {
  const codes = new Uint8Array(n), values = new Float64Array(n);
  for (let i = 0; i < n; ++i) {
    let c = r.int(0, 256);
    if ((c & 0x7f) === 0x7f) c ^= 1;
    codes[i] = c;
    values[i] = e4m3Value(c);
  }
  return { codes, values };
}

function randomScales(r: Rng, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => Math.fround(2 ** r.uniform(-10, 2) * (1 + r.next())));
}

function halfUlp(dtype: 'bf16' | 'f32', v: number): number {
  const a = Math.abs(v);
  if (a === 0) return 0;
  return 2 ** (Math.floor(Math.log2(a)) - (dtype === 'bf16' ? 8 : 24));
}

/** Throws with the position and the shapes when an element is outside the tolerance. */
function expectClose(got: Float32Array, ref: Float64Array, absSum: Float64Array, dtype: 'bf16' | 'f32', cols: number, label: string): void {
  expect(got.length).toBe(ref.length);
  for (let i = 0; i < ref.length; ++i) {
    const tol = 1e-5 * absSum[i] + halfUlp(dtype, Math.max(Math.abs(ref[i]), Math.abs(got[i])));
    const err = Math.abs(got[i] - ref[i]);
    if (!(err <= tol))
      throw new Error(`${label}: y[${Math.floor(i / cols)}, ${i % cols}] = ${got[i]}, want ${ref[i]} (error ${err}, tolerance ${tol})`);
  }
}

/** float64 fp8Gemm of rows of `a` (values) against `w`; returns the result and Σ|terms| per element. */
function fp8GemmRef(
  a: Float64Array, sa: Float32Array, w: Float64Array, sw: Float32Array, M: number, N: number, K: number,
): { y: Float64Array; abs: Float64Array } {
  const KB = K / 128, y = new Float64Array(M * N), abs = new Float64Array(M * N);
  for (let m = 0; m < M; ++m)
    for (let n = 0; n < N; ++n) {
      let total = 0, totalAbs = 0;
      for (let kb = 0; kb < KB; ++kb) {
        let s = 0, sAbs = 0;
        for (let k = kb * 128; k < kb * 128 + 128; ++k) {
          const t = a[m * K + k] * w[n * K + k];
          s += t;
          sAbs += Math.abs(t);
        }
        const scale = sa[m * KB + kb] * sw[Math.floor(n / 128) * KB + kb];
        total += s * scale;
        totalAbs += sAbs * scale;
      }
      y[m * N + n] = total;
      abs[m * N + n] = totalAbs;
    }
  return { y, abs };
}

function fp8Weight(r: Rng, N: number, K: number) {
  const w = randomCodes(r, N * K);
  const sw = randomScales(r, Math.ceil(N / 128) * (K / 128));
  return { ...w, sw };
}

describe('fp8Gemm on cpu', () => {
  const r = rng();
  afterAll(restorePaths);
  // [leading dims of a, N, K]: M = 1 (decode path), M ≤ 8, larger M, N not a multiple of 128 or 64.
  const shapes: [number[], number, number][] = [
    [[], 70, 256],
    [[1], 1, 128],
    [[1], 200, 256],
    [[3], 130, 256],
    [[2, 4], 257, 384],
    [[9], 129, 128],
    [[37], 300, 512],
    [[2, 150], 70, 256],
    [[64], 700, 1024],
    // Few rows with K long enough to be walked in chunks by the decode kernel.
    [[4], 300, 1152],
    [[5], 70, 640],
    [[7], 33, 768],
    [[8], 150, 1024],
    [[2], 260, 384],
    [[6], 140, 640],
    // M = 1 with K past one chunk (4096) of the decode kernel.
    [[1], 65, 4352],
  ];
  for (const path of PATHS) {
    for (const outDtype of ['bf16', 'f32'] as const) {
      for (const [lead, N, K] of shapes) {
        const M = lead.reduce((x, y) => x * y, 1);
        itOn(path, `${pathName(path)} ${outDtype} a [${lead}, ${K}] · w [${N}, ${K}] (seed ${r.seed})`, async () => {
          await usePath(path);
          const a = randomCodes(r, M * K), sa = randomScales(r, M * (K / 128));
          const w = fp8Weight(r, N, K);
          using at = tensor(a.codes, { shape: [...lead, K], dtype: 'f8e4m3' });
          using st = tensor(sa, { shape: [...lead, K / 128] });
          using wt = tensor(w.codes, { shape: [N, K], dtype: 'f8e4m3' });
          using swt = tensor(w.sw, { shape: [Math.ceil(N / 128), K / 128] });
          using y = ops.fp8Gemm(at, st, wt, swt, outDtype);
          expect(y.shape).toEqual([...lead, N]);
          expect(y.dtype).toBe(outDtype);
          const got = await y.toFloat32Array();
          const ref = fp8GemmRef(a.values, sa, w.values, w.sw, M, N, K);
          expectClose(got, ref.y, ref.abs, outDtype, N, `M=${M} N=${N} K=${K}`);
        });
      }
    }
  }

  it(`takes actQuant output (bf16 activations, ue8m0 scales) (seed ${r.seed})`, async () => {
    const [M, N, K] = [5, 96, 384];
    const xs = r.floats(M * K, 3);
    using x = tensor(xs, { shape: [M, K], dtype: 'bf16' });
    const q = ops.actQuant(x, { scaleFmt: 'ue8m0' });
    using codes = q.codes;
    using scales = q.scales;
    const w = fp8Weight(r, N, K);
    using wt = tensor(w.codes, { shape: [N, K], dtype: 'f8e4m3' });
    using swt = tensor(w.sw, { shape: [1, K / 128] });
    using y = ops.fp8Gemm(codes, scales, wt, swt, 'f32');
    const [c, s, got] = await Promise.all([codes.read<'f8e4m3'>(), scales.read<'f32'>(), y.toFloat32Array()]);
    const ref = fp8GemmRef(Float64Array.from(c, e4m3Value), s, w.values, w.sw, M, N, K);
    expectClose(got, ref.y, ref.abs, 'f32', N, 'actQuant → fp8Gemm');
  });

  // A NaN code (magnitude 0x7f) in w makes the outputs of its row of w NaN and leaves the others finite
  // (the f32 paths; the AVX512-BF16 path is not covered here).
  for (const path of PATHS.filter((p) => !p.bf16Dot))
    for (const M of [1, 3, 8, 9]) {
      it(`${pathName(path)} M=${M}: a NaN code in w gives NaN in its column only (seed ${r.seed})`, async () => {
        await usePath(path);
        const N = 140, K = 384;
        const a = randomCodes(r, M * K), sa = randomScales(r, M * (K / 128));
        const w = fp8Weight(r, N, K);
        const bad = [r.int(0, N), r.int(0, N)];
        const codes = w.codes.slice();
        codes[bad[0] * K + r.int(0, K)] = 0x7f;
        codes[bad[1] * K + r.int(0, K)] = 0xff;
        using at = tensor(a.codes, { shape: [M, K], dtype: 'f8e4m3' });
        using st = tensor(sa, { shape: [M, K / 128] });
        using wt = tensor(codes, { shape: [N, K], dtype: 'f8e4m3' });
        using swt = tensor(w.sw, { shape: [Math.ceil(N / 128), K / 128] });
        using y = ops.fp8Gemm(at, st, wt, swt, 'f32');
        const got = await y.toFloat32Array();
        for (let m = 0; m < M; ++m)
          for (let n = 0; n < N; ++n)
            if (Number.isNaN(got[m * N + n]) !== bad.includes(n))
              throw new Error(`M=${M}: y[${m}, ${n}] = ${got[m * N + n]} with NaN codes in rows ${bad} of w`);
      });
    }

  it('rejects bad arguments with the op, argument, expected and received', () => {
    const f8 = (shape: number[]) => tensor(new Uint8Array(shape.reduce((x, y) => x * y, 1)), { shape, dtype: 'f8e4m3' });
    const f32 = (shape: number[]) => tensor(new Float32Array(shape.reduce((x, y) => x * y, 1)), { shape });
    using a = f8([2, 256]);
    using sa = f32([2, 2]);
    using w = f8([130, 256]);
    using sw = f32([2, 2]);
    using a100 = f8([2, 100]);
    using sa1 = f32([2, 1]);
    using aF = f32([2, 256]);
    using w128 = f8([130, 128]);
    using swBad = f32([1, 2]);
    using y = ops.fp8Gemm(a, sa, w, sw, 'bf16');
    expect(y.shape).toEqual([2, 130]);
    expect(() => ops.fp8Gemm(aF, sa, w, sw, 'bf16')).toThrow('fp8Gemm: a must have dtype f8e4m3 but received f32');
    expect(() => ops.fp8Gemm(a100, sa1, w, sw, 'bf16')).toThrow(
      'fp8Gemm: the last dimension of a (K) must be a positive multiple of 128 but received shape [2, 100]',
    );
    expect(() => ops.fp8Gemm(a, sa1, w, sw, 'bf16')).toThrow('fp8Gemm: aScales must have shape [2, 2] but received [2, 1]');
    expect(() => ops.fp8Gemm(a, sa, w128, sw, 'bf16')).toThrow('fp8Gemm: w must have size 256 in dimension 1 but received shape [130, 128]');
    expect(() => ops.fp8Gemm(a, sa, w, swBad, 'bf16')).toThrow(RangeError);
    expect(() => ops.fp8Gemm(a, sa, w, swBad, 'bf16')).toThrow('fp8Gemm: wScales must have shape [2, 2] but received [1, 2]');
    expect(() => ops.fp8Gemm(a, sa, w, aF, 'bf16')).toThrow('fp8Gemm: wScales must have shape [2, 2] but received [2, 256]');
    expect(() => ops.fp8Gemm(a, sa, sw, sw, 'bf16')).toThrow('fp8Gemm: w must have dtype f8e4m3 but received f32');
    // @ts-expect-error not an output dtype
    expect(() => ops.fp8Gemm(a, sa, w, sw, 'f16')).toThrow('fp8Gemm: outDtype must be bf16 or f32 but received f16');
    // @ts-expect-error not a tensor
    expect(() => ops.fp8Gemm(a, sa, 'w', sw, 'bf16')).toThrow("fp8Gemm: expected a Tensor for w but received 'w' of type string");
  });
});

describe('groupedFp8Gemm on cpu', () => {
  const r = rng();
  afterAll(restorePaths);

  /** Random expert sizes, some experts empty (the first and the last among them). */
  function randomOffsets(E: number, R: number): Int32Array {
    const sizes = new Array(E).fill(0);
    for (let i = 0; i < R; ++i) sizes[1 + r.int(0, Math.max(1, E - 2))] += 1;
    sizes[0] = 0;
    sizes[E - 1] = 0;
    const off = new Int32Array(E + 1);
    for (let e = 0; e < E; ++e) off[e + 1] = off[e] + sizes[e];
    return off;
  }

  const shapes: [number, number, number, number][] = [
    // [E, R, N, K]
    [4, 3, 130, 128],
    [6, 40, 64, 256],
    [5, 70, 257, 384],
  ];
  for (const path of PATHS) {
    for (const [E, R, N, K] of shapes) {
      itOn(path, `${pathName(path)} E=${E} R=${R} N=${N} K=${K} (seed ${r.seed})`, async () => {
        await usePath(path);
        const a = randomCodes(r, R * K), sa = randomScales(r, R * (K / 128));
        const NB = Math.ceil(N / 128), KB = K / 128;
        const w = randomCodes(r, E * N * K), sw = randomScales(r, E * NB * KB);
        const off = randomOffsets(E, R);
        using at = tensor(a.codes, { shape: [R, K], dtype: 'f8e4m3' });
        using st = tensor(sa, { shape: [R, KB] });
        using wt = tensor(w.codes, { shape: [E, N, K], dtype: 'f8e4m3' });
        using swt = tensor(sw, { shape: [E, NB, KB] });
        using ot = tensor(off, { shape: [E + 1] });
        using y = ops.groupedFp8Gemm(at, st, wt, swt, ot, 'bf16');
        expect(y.shape).toEqual([R, N]);
        const got = await y.toFloat32Array();
        const ref = new Float64Array(R * N), abs = new Float64Array(R * N);
        for (let e = 0; e < E; ++e) {
          const rows = off[e + 1] - off[e];
          if (rows === 0) continue;
          const part = fp8GemmRef(
            a.values.subarray(off[e] * K, off[e + 1] * K), sa.subarray(off[e] * KB, off[e + 1] * KB),
            w.values.subarray(e * N * K, (e + 1) * N * K), sw.subarray(e * NB * KB, (e + 1) * NB * KB), rows, N, K,
          );
          ref.set(part.y, off[e] * N);
          abs.set(part.abs, off[e] * N);
        }
        expectClose(got, ref, abs, 'bf16', N, `E=${E} R=${R} N=${N} K=${K}`);
      });
    }
  }

  it('rejects bad offsets when the kernel runs, and bad arguments at once', async () => {
    const [E, R, N, K] = [3, 4, 8, 128];
    using a = tensor(new Uint8Array(R * K), { shape: [R, K], dtype: 'f8e4m3' });
    using sa = tensor(new Float32Array(R), { shape: [R, 1] });
    using w = tensor(new Uint8Array(E * N * K), { shape: [E, N, K], dtype: 'f8e4m3' });
    using sw = tensor(new Float32Array(E), { shape: [E, 1, 1] });
    const run = async (offsets: number[]) => {
      using o = tensor(Int32Array.from(offsets), { shape: [E + 1] });
      using y = ops.groupedFp8Gemm(a, sa, w, sw, o, 'f32');
      return y.read();
    };
    await expect(run([1, 2, 3, 4])).rejects.toThrow('groupedFp8Gemm: offsets[0] must be 0 but received 1');
    await expect(run([0, 3, 2, 4])).rejects.toThrow(
      'groupedFp8Gemm: offsets must be non-decreasing but received offsets[2] = 2 after offsets[1] = 3',
    );
    await expect(run([0, 1, 2, 3])).rejects.toThrow('groupedFp8Gemm: offsets[3] must equal the rows of a (4) but received 3');
    await expect(run([0, 0, 4, 4])).resolves.toBeDefined();
    using o5 = tensor(new Int32Array(5), { shape: [5] });
    using oF = tensor(new Float32Array(4), { shape: [4] });
    using sw2 = tensor(new Float32Array(E), { shape: [E, 1] });
    expect(() => ops.groupedFp8Gemm(a, sa, w, sw, o5, 'f32')).toThrow('groupedFp8Gemm: offsets must have shape [4] but received [5]');
    expect(() => ops.groupedFp8Gemm(a, sa, w, sw, oF, 'f32')).toThrow('groupedFp8Gemm: offsets must have dtype i32 but received f32');
    using o4 = tensor(new Int32Array(4), { shape: [4] });
    expect(() => ops.groupedFp8Gemm(a, sa, w, sw2, o4, 'f32')).toThrow('groupedFp8Gemm: wScales must have shape [3, 1, 1] but received [3, 1]');
    expect(() => ops.groupedFp8Gemm(a, sa, sw, sw, o4, 'f32')).toThrow('groupedFp8Gemm: w must have dtype f8e4m3 but received f32');
  });
});

describe('maskedGroupedFp8Gemm on cpu', () => {
  const r = rng();
  afterAll(restorePaths);

  // [E, M, N, K] and the row counts in use (a full expert, empty ones, one row)
  const cases: [number, number, number, number, number[]][] = [
    [3, 5, 130, 128, [5, 0, 1]],
    [4, 70, 64, 256, [0, 70, 33, 2]],
  ];
  for (const path of PATHS) {
    for (const [E, M, N, K, counts] of cases) {
      itOn(path, `${pathName(path)} E=${E} M=${M} N=${N} K=${K} counts=${counts} (seed ${r.seed})`, async () => {
        await usePath(path);
        const NB = Math.ceil(N / 128), KB = K / 128;
        const a = randomCodes(r, E * M * K), sa = randomScales(r, E * M * KB);
        const w = randomCodes(r, E * N * K), sw = randomScales(r, E * NB * KB);
        using at = tensor(a.codes, { shape: [E, M, K], dtype: 'f8e4m3' });
        using st = tensor(sa, { shape: [E, M, KB] });
        using wt = tensor(w.codes, { shape: [E, N, K], dtype: 'f8e4m3' });
        using swt = tensor(sw, { shape: [E, NB, KB] });
        using ct = tensor(Int32Array.from(counts));
        using y = ops.maskedGroupedFp8Gemm(at, st, wt, swt, ct, 'bf16');
        expect(y.shape).toEqual([E, M, N]);
        const all = await y.toFloat32Array();
        for (let e = 0; e < E; ++e) {
          const rows = counts[e];
          if (rows === 0) continue;
          const part = fp8GemmRef(
            a.values.subarray(e * M * K, (e * M + rows) * K), sa.subarray(e * M * KB, (e * M + rows) * KB),
            w.values.subarray(e * N * K, (e + 1) * N * K), sw.subarray(e * NB * KB, (e + 1) * NB * KB), rows, N, K,
          );
          expectClose(all.subarray(e * M * N, (e * M + rows) * N), part.y, part.abs, 'bf16', N, `expert ${e} of E=${E} M=${M} N=${N} K=${K}`);
        }
      });
    }
  }

  it('rejects a count outside [0, M] when the kernel runs, and bad arguments at once', async () => {
    const [E, M, N, K] = [3, 4, 8, 128];
    using a = tensor(new Uint8Array(E * M * K), { shape: [E, M, K], dtype: 'f8e4m3' });
    using sa = tensor(new Float32Array(E * M), { shape: [E, M, 1] });
    using w = tensor(new Uint8Array(E * N * K), { shape: [E, N, K], dtype: 'f8e4m3' });
    using sw = tensor(new Float32Array(E), { shape: [E, 1, 1] });
    const run = async (counts: number[]) => {
      using c = tensor(Int32Array.from(counts));
      using y = ops.maskedGroupedFp8Gemm(a, sa, w, sw, c, 'f32');
      return y.read();
    };
    await expect(run([0, 5, 1])).rejects.toThrow('maskedGroupedFp8Gemm: counts[1] = 5 is out of range [0, 4]');
    await expect(run([-1, 0, 0])).rejects.toThrow('maskedGroupedFp8Gemm: counts[0] = -1 is out of range [0, 4]');
    await expect(run([4, 0, 4])).resolves.toBeDefined();
    using c2 = tensor(new Int32Array(2));
    using cF = tensor(new Float32Array(3));
    using w2 = tensor(new Uint8Array(2 * N * K), { shape: [2, N, K], dtype: 'f8e4m3' });
    using c3 = tensor(new Int32Array(3));
    expect(() => ops.maskedGroupedFp8Gemm(a, sa, w, sw, c2, 'f32')).toThrow('maskedGroupedFp8Gemm: counts must have shape [3] but received [2]');
    expect(() => ops.maskedGroupedFp8Gemm(a, sa, w, sw, cF, 'f32')).toThrow('maskedGroupedFp8Gemm: counts must have dtype i32 but received f32');
    expect(() => ops.maskedGroupedFp8Gemm(a, sa, w2, sw, c3, 'f32')).toThrow('maskedGroupedFp8Gemm: w must have shape [3, N, 128] (the experts of a, and its K) but received [2, 8, 128]');
  });
});

/** Random values rounded to dtype, as float64. */
function randomValues(r: Rng, n: number, dtype: 'bf16' | 'f32'): Float32Array {
  const v = r.floats(n);
  return dtype === 'bf16' ? v.map(roundBf16) : v;
}

function makeTensor(values: Float32Array, shape: number[], dtype: 'bf16' | 'f32'): Tensor {
  return tensor(values, { shape, dtype });
}

describe('gemm on cpu', () => {
  const r = rng();
  afterAll(restorePaths);
  const shapes: [number[], number, number][] = [
    [[], 9, 33],
    [[1], 1, 1],
    [[1], 37, 5],
    [[3], 130, 129],
    [[2, 3], 65, 300],
    [[33], 257, 515],
    [[10], 64, 7],
    [[2], 67, 4100],
    [[8], 131, 70],
    [[5], 9, 2081],
  ];
  for (const path of PATHS) {
    for (const [xType, wType] of [['f32', 'f32'], ['bf16', 'bf16'], ['bf16', 'f32'], ['f32', 'bf16']] as const) {
      for (const [lead, N, K] of shapes) {
        const M = lead.reduce((x, y) => x * y, 1);
        const outDtype = xType === 'bf16' && wType === 'bf16' ? 'bf16' : 'f32';
        itOn(path, `${pathName(path)} x ${xType} [${lead}, ${K}] · w ${wType} [${N}, ${K}] → ${outDtype} (seed ${r.seed})`, async () => {
          await usePath(path);
          const xs = randomValues(r, M * K, xType), ws = randomValues(r, N * K, wType);
          using x = makeTensor(xs, [...lead, K], xType);
          using w = makeTensor(ws, [N, K], wType);
          using y = ops.gemm(x, w, outDtype);
          expect(y.shape).toEqual([...lead, N]);
          const got = await y.toFloat32Array();
          const ref = new Float64Array(M * N), abs = new Float64Array(M * N);
          for (let m = 0; m < M; ++m)
            for (let n = 0; n < N; ++n) {
              let s = 0, sa = 0;
              for (let k = 0; k < K; ++k) {
                const t = xs[m * K + k] * ws[n * K + k];
                s += t;
                sa += Math.abs(t);
              }
              ref[m * N + n] = s;
              abs[m * N + n] = sa;
            }
          expectClose(got, ref, abs, outDtype, N, `M=${M} N=${N} K=${K}`);
        });
      }
    }
  }

  it('handles empty products: K = 0 gives zeros, M = 0 or N = 0 empty outputs', async () => {
    for (const path of PATHS) {
      if (missing(path)) continue;
      await usePath(path);
      using x0 = tensor(new Float32Array(0), { shape: [2, 0] });
      using w0 = tensor(new Float32Array(0), { shape: [3, 0] });
      using y0 = ops.gemm(x0, w0, 'bf16');
      expect(y0.shape).toEqual([2, 3]);
      expect(Array.from(await y0.toFloat32Array())).toEqual([0, 0, 0, 0, 0, 0]);
      using xm = tensor(new Float32Array(0), { shape: [0, 5] });
      using w5 = tensor(r.floats(15), { shape: [3, 5] });
      using ym = ops.gemm(xm, w5, 'f32');
      expect(ym.shape).toEqual([0, 3]);
      using x5 = tensor(r.floats(10), { shape: [2, 5] });
      using wn = tensor(new Float32Array(0), { shape: [0, 5] });
      using yn = ops.gemm(x5, wn, 'f32');
      expect(yn.shape).toEqual([2, 0]);
      await synchronize('cpu');
    }
  });

  it('rejects bad arguments with the op, argument, expected and received', () => {
    using x = tensor(new Float32Array(6), { shape: [2, 3] });
    using w = tensor(new Float32Array(8), { shape: [2, 4] });
    using wi = tensor(new Int32Array(6), { shape: [2, 3] });
    using w3 = tensor(new Float32Array(6), { shape: [1, 2, 3] });
    expect(() => ops.gemm(x, w, 'f32')).toThrow('gemm: w must have size 3 in dimension 1 but received shape [2, 4]');
    expect(() => ops.gemm(x, wi, 'f32')).toThrow('gemm: w must have dtype f32 or bf16 but received i32');
    expect(() => ops.gemm(x, w3, 'f32')).toThrow('gemm: w must have 2 dimensions but received shape [1, 2, 3]');
    // @ts-expect-error not an output dtype
    expect(() => ops.gemm(x, x, 'i32')).toThrow('gemm: outDtype must be bf16 or f32 but received i32');
  });
});

describe('the f32 kernel sets are one body (native/cpu/gemm_vec.cc)', () => {
  // The packed tile sums each output in one fused multiply-add chain in k order on both paths, so
  // AVX2 and AVX-512 (f32 set, BF16 dot off) give the same bits; more than 8 rows take the tiles.
  const r = rng();
  afterAll(restorePaths);
  const avx2 = PATHS[2], avx512 = PATHS[1];
  const why = missing(avx512) || missing(avx2);
  // The few-rows [K, N] kernel (bmmHeads at T ≤ 8) sums each output in one chain in k order too.
  it.skipIf(why)(`fp8Gemm, gemm and bmmHeads tiles and bmmHeads few rows: AVX2 and AVX-512 give the same bits${skipNote(why)} (seed ${r.seed})`, async () => {
    const M = 21, N = 200, K = 384;
    const a = randomCodes(r, M * K), w = randomCodes(r, N * K);
    const sa = randomScales(r, M * (K / 128)), sw = randomScales(r, Math.ceil(N / 128) * (K / 128));
    const xs = randomValues(r, M * 300, 'bf16'), ws = randomValues(r, 70 * 300, 'f32');
    const hx = randomValues(r, 12 * 2 * 150, 'f32'), hw = randomValues(r, 2 * 150 * 90, 'bf16');
    const fx = randomValues(r, 5 * 3 * 200, 'bf16'), fw = randomValues(r, 3 * 200 * 77, 'f32');
    const outputs: Uint32Array[][] = [];
    for (const path of [avx2, avx512]) {
      await usePath(path);
      using at = tensor(a.codes, { shape: [M, K], dtype: 'f8e4m3' });
      using st = tensor(sa, { shape: [M, K / 128] });
      using wt = tensor(w.codes, { shape: [N, K], dtype: 'f8e4m3' });
      using swt = tensor(sw, { shape: [Math.ceil(N / 128), K / 128] });
      using x = makeTensor(xs, [M, 300], 'bf16');
      using wf = makeTensor(ws, [70, 300], 'f32');
      using bx = makeTensor(hx, [12, 2, 150], 'f32');
      using bw = makeTensor(hw, [2, 150, 90], 'bf16');
      using y1 = ops.fp8Gemm(at, st, wt, swt, 'f32');
      using y2 = ops.gemm(x, wf, 'f32');
      using y3 = ops.bmmHeads(bx, bw, 'f32');
      using fxt = makeTensor(fx, [5, 3, 200], 'bf16');
      using fwt = makeTensor(fw, [3, 200, 77], 'f32');
      using y4 = ops.bmmHeads(fxt, fwt, 'f32');
      const bits: Uint32Array[] = [];
      for (const y of [y1, y2, y3, y4]) bits.push(new Uint32Array((await y.toFloat32Array()).buffer));
      outputs.push(bits);
    }
    for (let i = 0; i < 4; ++i) {
      const differ = outputs[0][i].findIndex((v, j) => v !== outputs[1][i][j]);
      expect({ output: i, firstDifference: differ }).toEqual({ output: i, firstDifference: -1 });
    }
  });
});

describe('bmmHeads on cpu', () => {
  const r = rng();
  afterAll(restorePaths);
  const shapes: [number, number, number, number][] = [
    // [T, H, A, B]
    [1, 1, 1, 1],
    [1, 3, 5, 7],
    [4, 2, 128, 33],
    [3, 2, 300, 45],
    [17, 5, 64, 130],
  ];
  for (const path of PATHS) {
    for (const dtype of ['bf16', 'f32'] as const) {
      for (const [T, H, A, B] of shapes) {
        itOn(path, `${pathName(path)} ${dtype} x [${T}, ${H}, ${A}] · w [${H}, ${A}, ${B}] (seed ${r.seed})`, async () => {
          await usePath(path);
          const xs = randomValues(r, T * H * A, dtype), ws = randomValues(r, H * A * B, dtype);
          using x = makeTensor(xs, [T, H, A], dtype);
          using w = makeTensor(ws, [H, A, B], dtype);
          using y = ops.bmmHeads(x, w, dtype);
          expect(y.shape).toEqual([T, H, B]);
          expect(y.dtype).toBe(dtype);
          const got = await y.toFloat32Array();
          const ref = new Float64Array(T * H * B), abs = new Float64Array(T * H * B);
          for (let t = 0; t < T; ++t)
            for (let h = 0; h < H; ++h)
              for (let b = 0; b < B; ++b) {
                let s = 0, sa = 0;
                for (let a = 0; a < A; ++a) {
                  const v = xs[(t * H + h) * A + a] * ws[(h * A + a) * B + b];
                  s += v;
                  sa += Math.abs(v);
                }
                ref[(t * H + h) * B + b] = s;
                abs[(t * H + h) * B + b] = sa;
              }
          expectClose(got, ref, abs, dtype, B, `T=${T} H=${H} A=${A} B=${B}`);
        });
      }
    }
  }

  it('rejects bad arguments with the op, argument, expected and received', () => {
    using x = tensor(new Float32Array(24), { shape: [2, 3, 4] });
    using w = tensor(new Float32Array(24), { shape: [3, 4, 2] });
    using wBad = tensor(new Float32Array(24), { shape: [2, 4, 3] });
    using x2 = tensor(new Float32Array(12), { shape: [3, 4] });
    using y = ops.bmmHeads(x, w, 'f32');
    expect(y.shape).toEqual([2, 3, 2]);
    expect(() => ops.bmmHeads(x, wBad, 'f32')).toThrow('bmmHeads: w must have size 3 in dimension 0 but received shape [2, 4, 3]');
    expect(() => ops.bmmHeads(x2, w, 'f32')).toThrow('bmmHeads: x must have 3 dimensions but received shape [3, 4]');
  });
});
