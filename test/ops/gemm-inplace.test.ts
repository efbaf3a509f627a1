/**
 * FP8 weight sets: fp8Gemm and groupedFp8Gemm reading each expert's weights (and a SwiGLU's gate and
 * up parts) where they lie, as the model does on the CPU with the checkpoint's mapped tensors. On
 * every GEMM kernel path the result must be the stacked op's, byte for byte (the model's logits then
 * do not change), and within the f32 summation bound of a float64 reference.
 */
import { afterAll, describe, expect, it } from 'vitest';

import { ops, synchronize, tensor } from '../../lib/index.js';
import { native } from '../../lib/runtime/native.js';
import { e4m3Value, expectSameBytes, rng, type Rng } from '../helpers.js';
import { missingBf16Dot, missingPath, skipNote } from './cpu-paths.js';

const PATHS = [
  { name: 'avx512-bf16', simd: 'avx512', bf16Dot: true },
  { name: 'avx512-f32', simd: 'avx512', bf16Dot: false },
  { name: 'avx2', simd: 'avx2', bf16Dot: false },
  { name: 'scalar', simd: 'scalar', bf16Dot: false },
] as const;
type Path = (typeof PATHS)[number];
const missing = (p: Path): string | false => (p.bf16Dot ? missingBf16Dot() : missingPath(p.simd));
const itOn = (p: Path, name: string, fn: () => Promise<void>) => it.skipIf(missing(p))(`${p.name} ${name}${skipNote(missing(p))}`, fn);

async function usePath(p: Path, batchInvariant = false): Promise<void> {
  await synchronize('cpu');
  const simd = native().setSimdCap(p.simd);
  const bf16 = native().ops.gemmSetBf16Dot(p.bf16Dot);
  if (simd !== p.simd || bf16 !== p.bf16Dot) throw new Error(`usePath: the CPU runs ${simd}${bf16 ? ' with the BF16 dot' : ''}, not ${p.name}`);
  ops.setBatchInvariant(batchInvariant);
}

async function restore(): Promise<void> {
  await synchronize('cpu');
  native().setSimdCap('avx512');
  native().ops.gemmSetBf16Dot(true);
  ops.setBatchInvariant(false);
}

/** An FP8 matrix [rows, K] of random codes (no NaN code) and random block scales, with its values. */
interface Fp8Host {
  rows: number;
  codes: Uint8Array;
  values: Float64Array;
  scales: Float32Array;
}

function randomFp8(r: Rng, rows: number, K: number): Fp8Host {
  const codes = new Uint8Array(rows * K), values = new Float64Array(rows * K);
  for (let i = 0; i < codes.length; ++i) {
    let c = r.int(0, 256);
    if ((c & 0x7f) === 0x7f) c ^= 1;
    codes[i] = c;
    values[i] = e4m3Value(c);
  }
  const scales = Float32Array.from({ length: Math.ceil(rows / 128) * (K / 128) }, () => Math.fround(2 ** r.uniform(-8, 2) * (1 + r.next())));
  return { rows, codes, values, scales };
}

/** The part on the CPU, as tensors (the caller disposes them). */
function partTensors(h: Fp8Host, K: number): ops.Fp8WeightPart {
  return {
    weight: tensor(h.codes, { shape: [h.rows, K], dtype: 'f8e4m3' }),
    scale: tensor(h.scales, { shape: [Math.ceil(h.rows / 128), K / 128] }),
  };
}

/** Expert e's parts stacked by rows, and the experts stacked: `[E, N, K]` codes and `[E, ⌈N/128⌉, K/128]`
 *  scales, built on the host (independent of the op under test). Valid when every part but the last
 *  has a multiple of 128 rows. */
function stackedHost(experts: Fp8Host[][], K: number): { codes: Uint8Array; scales: Float32Array; N: number } {
  const N = experts[0].reduce((n, p) => n + p.rows, 0), NB = Math.ceil(N / 128), KB = K / 128;
  const codes = new Uint8Array(experts.length * N * K), scales = new Float32Array(experts.length * NB * KB);
  experts.forEach((parts, e) => {
    let row = 0;
    for (const p of parts) {
      codes.set(p.codes, (e * N + row) * K);
      scales.set(p.scales, (e * NB + row / 128) * KB);
      row += p.rows;
    }
  });
  return { codes, scales, N };
}

/**
 * float64 reference of row m of a against expert parts: y[n] and Σ|terms|, the column n of part p
 * using that part's own scale rows. Tolerance as in gemm.test.ts: 1e-5 · Σ|terms| (f32 sums) plus
 * half an ulp of the output dtype (the one final rounding).
 */
function referenceRow(a: Float64Array, sa: Float32Array, m: number, parts: Fp8Host[], K: number): { y: number[]; abs: number[] } {
  const KB = K / 128, y: number[] = [], abs: number[] = [];
  for (const p of parts)
    for (let n = 0; n < p.rows; ++n) {
      let total = 0, totalAbs = 0;
      for (let kb = 0; kb < KB; ++kb) {
        let s = 0, sAbs = 0;
        for (let k = kb * 128; k < (kb + 1) * 128; ++k) {
          const t = a[m * K + k] * p.values[n * K + k];
          s += t;
          sAbs += Math.abs(t);
        }
        const scale = sa[m * KB + kb] * p.scales[Math.floor(n / 128) * KB + kb];
        total += s * scale;
        totalAbs += sAbs * scale;
      }
      y.push(total);
      abs.push(totalAbs);
    }
  return { y, abs };
}

function expectNearReference(got: Float32Array, rowExpert: (m: number) => Fp8Host[], a: Float64Array, sa: Float32Array, M: number, N: number, K: number, dtype: 'bf16' | 'f32'): void {
  for (let m = 0; m < M; ++m) {
    const ref = referenceRow(a, sa, m, rowExpert(m), K);
    for (let n = 0; n < N; ++n) {
      const v = got[m * N + n], want = ref.y[n];
      const big = Math.max(Math.abs(v), Math.abs(want));
      const ulp = big === 0 ? 0 : 2 ** (Math.floor(Math.log2(big)) - (dtype === 'bf16' ? 8 : 24));
      const tol = 1e-5 * ref.abs[n] + ulp;
      if (!(Math.abs(v - want) <= tol)) throw new Error(`y[${m}, ${n}] = ${v}, want ${want} (tolerance ${tol})`);
    }
  }
}

/** Random activations [M, K] (codes and values) and their scales. */
function randomActivations(r: Rng, M: number, K: number): { codes: Uint8Array; values: Float64Array; scales: Float32Array } {
  const h = randomFp8(r, M, K);
  return { codes: h.codes, values: h.values, scales: Float32Array.from({ length: M * (K / 128) }, () => Math.fround(2 ** r.uniform(-6, 3) * (1 + r.next()))) };
}

/** Offsets of R rows over E ≥ 3 experts: the first and the last expert empty, the others cut at
 *  random points (so some empty by chance). */
function randomOffsets(r: Rng, E: number, R: number): Int32Array {
  const cuts = Array.from({ length: E - 3 }, () => r.int(0, R + 1)).sort((x, y) => x - y);
  return Int32Array.from([0, 0, ...cuts, R, R]);
}

describe('groupedFp8Gemm over a weight set (cpu)', () => {
  const r = rng();
  afterAll(restore);
  // [E, R, K, rows of each part]: gate+up (the last part any size), one part of odd N, experts with
  // more than 8 rows (the tiled kernels), and few rows (the small-M kernels).
  const cases: [number, number, number, number[]][] = [
    [5, 37, 256, [128, 72]],
    [4, 3, 384, [200]],
    [6, 70, 128, [256, 256]],
    [3, 9, 640, [128, 128, 5]],
  ];
  for (const path of PATHS)
    for (const [E, R, K, rows] of cases)
      for (const outDtype of ['bf16', 'f32'] as const)
        itOn(path, `E=${E} R=${R} K=${K} parts ${rows.join('+')} → ${outDtype}: the stacked op's bytes (exact sums too, batch-invariant too) (seed ${r.seed})`, async () => {
          const experts = Array.from({ length: E }, () => rows.map((n) => randomFp8(r, n, K)));
          const act = randomActivations(r, R, K);
          const off = randomOffsets(r, E, R);
          const st = stackedHost(experts, K);
          const parts = experts.map((ps) => ps.map((p) => partTensors(p, K)));
          using set = ops.fp8WeightSet(parts);
          for (const ps of parts) for (const p of ps) (p.weight.dispose(), p.scale.dispose()); // the set holds them
          expect([set.experts, set.outFeatures, set.inFeatures]).toEqual([E, st.N, K]);
          using a = tensor(act.codes, { shape: [R, K], dtype: 'f8e4m3' });
          using sa = tensor(act.scales, { shape: [R, K / 128] });
          using w = tensor(st.codes, { shape: [E, st.N, K], dtype: 'f8e4m3' });
          using sw = tensor(st.scales, { shape: [E, Math.ceil(st.N / 128), K / 128] });
          using offsets = tensor(off, { dtype: 'i32', shape: [E + 1] });
          for (const batchInvariant of [false, true]) {
            await usePath(path, batchInvariant);
            for (const exactBlockSums of [false, true]) {
              using want = ops.groupedFp8Gemm(a, sa, w, sw, offsets, outDtype, { exactBlockSums });
              using got = ops.groupedFp8Gemm(a, sa, set, offsets, outDtype, { exactBlockSums });
              await expectSameBytes([[`batchInvariant ${batchInvariant}, exactBlockSums ${exactBlockSums}`, want, got]]);
              if (!batchInvariant && !exactBlockSums) {
                const expertOf = (m: number) => experts[off.findIndex((o, e) => m >= o && m < off[e + 1])];
                expectNearReference(await got.toFloat32Array(), expertOf, act.values, act.scales, R, st.N, K, outDtype);
              }
            }
          }
        });
});

describe('fp8Gemm over a weight set of gate and up (cpu)', () => {
  const r = rng();
  afterAll(restore);
  // [leading dims of a, K, rows of gate and up]: decode (1 row), few rows, more than 8, rank 3.
  const cases: [number[], number, number[]][] = [
    [[1], 256, [128, 128]],
    [[3], 384, [256, 40]],
    [[8], 128, [128, 128]],
    [[9], 512, [384, 384]],
    [[2, 20], 256, [128, 200]],
  ];
  for (const path of PATHS)
    for (const [lead, K, rows] of cases)
      itOn(path, `a [${[...lead, K]}] · gate+up [${rows.join('+')}, ${K}]: the stacked op's bytes, near the f64 reference (seed ${r.seed})`, async () => {
        await usePath(path);
        const M = lead.reduce((x, y) => x * y, 1);
        const gu = rows.map((n) => randomFp8(r, n, K));
        const act = randomActivations(r, M, K);
        const st = stackedHost([gu], K);
        const parts = gu.map((p) => partTensors(p, K));
        using set = ops.fp8WeightSet([parts]);
        using a = tensor(act.codes, { shape: [...lead, K], dtype: 'f8e4m3' });
        using sa = tensor(act.scales, { shape: [...lead, K / 128] });
        using w = tensor(st.codes, { shape: [st.N, K], dtype: 'f8e4m3' });
        using sw = tensor(st.scales, { shape: [Math.ceil(st.N / 128), K / 128] });
        for (const exactBlockSums of [false, true]) {
          using want = ops.fp8Gemm(a, sa, w, sw, 'bf16', { exactBlockSums });
          using got = ops.fp8Gemm(a, sa, set, 'bf16', { exactBlockSums });
          expect(got.shape).toEqual([...lead, st.N]);
          await expectSameBytes([[`exactBlockSums ${exactBlockSums}`, want, got]]);
          if (!exactBlockSums) expectNearReference(await got.toFloat32Array(), () => gu, act.values, act.scales, M, st.N, K, 'bf16');
        }
        for (const p of parts) (p.weight.dispose(), p.scale.dispose());
      });
});

describe('FP8 weight sets: lifetime and argument checks', () => {
  const r = rng();
  const f8 = (shape: number[]) => tensor(new Uint8Array(shape.reduce((x, y) => x * y, 1)), { shape, dtype: 'f8e4m3' });
  const f32 = (shape: number[]) => tensor(new Float32Array(shape.reduce((x, y) => x * y, 1)), { shape });
  const part = (rows: number, K: number): ops.Fp8WeightPart => ({ weight: f8([rows, K]), scale: f32([Math.ceil(rows / 128), K / 128]) });
  const disposeAll = (ts: ops.Fp8WeightPart[][]) => ts.flat().forEach((p) => (p.weight.dispose(), p.scale.dispose()));

  it(`the set outlives its tensors' handles, and an op queued before dispose() still reads it (seed ${r.seed})`, async () => {
    const [E, R, K] = [3, 12, 256];
    const experts = Array.from({ length: E }, () => [randomFp8(r, 128, K), randomFp8(r, 64, K)]);
    const act = randomActivations(r, R, K);
    const st = stackedHost(experts, K);
    using a = tensor(act.codes, { shape: [R, K], dtype: 'f8e4m3' });
    using sa = tensor(act.scales, { shape: [R, K / 128] });
    using offsets = tensor(Int32Array.from([0, 5, 5, R]), { dtype: 'i32', shape: [E + 1] });
    using w = tensor(st.codes, { shape: [E, st.N, K], dtype: 'f8e4m3' });
    using sw = tensor(st.scales, { shape: [E, 2, K / 128] });
    using want = ops.groupedFp8Gemm(a, sa, w, sw, offsets, 'f32');
    const parts = experts.map((ps) => ps.map((p) => partTensors(p, K)));
    const set = ops.fp8WeightSet(parts);
    disposeAll(parts);
    const handle = set.handle('test');
    using got = ops.groupedFp8Gemm(a, sa, set, offsets, 'f32');
    set.dispose();
    set.dispose(); // safe twice
    await expectSameBytes([['after dispose', want, got]]);
    expect(set.disposed).toBe(true);
    expect(() => ops.groupedFp8Gemm(a, sa, set, offsets, 'f32')).toThrow('groupedFp8Gemm: the weight set was disposed and cannot be used');
    expect(() => native().ops.groupedFp8Gemm(a.handle(), sa.handle(), handle, offsets.handle(), 'f32')).toThrow(
      'groupedFp8Gemm: w is a released weight set and cannot be used',
    );
  });

  it('rejects a malformed set with the argument, expected and received', () => {
    const good = [[part(128, 256), part(64, 256)], [part(128, 256), part(64, 256)]];
    const uneven = [[part(128, 256), part(64, 256)], [part(128, 256)]];
    const otherRows = [[part(128, 256), part(64, 256)], [part(128, 256), part(32, 256)]];
    const badK = [[{ weight: f8([128, 100]), scale: f32([1, 1]) }]];
    const badScale = [[{ weight: f8([130, 256]), scale: f32([1, 2]) }]];
    const badDtype = [[{ weight: f32([128, 256]), scale: f32([1, 2]) }]];
    try {
      expect(() => ops.fp8WeightSet([])).toThrow('fp8WeightSet: expected a non-empty array of experts for experts but received an array of length 0');
      expect(() => ops.fp8WeightSet(uneven)).toThrow('fp8WeightSet: expected an array of 2 part(s) (as experts[0]) for experts[1] but received an array of length 1');
      expect(() => ops.fp8WeightSet(otherRows)).toThrow(
        'fp8WeightSet: weights[3] (part 1 of expert 1) must have shape [64, 256] as expert 0\'s but received [32, 256]',
      );
      expect(() => ops.fp8WeightSet(badK)).toThrow('fp8WeightSet: weights[0] must have shape [rows, K] with K a positive multiple of 128 but received [128, 100]');
      expect(() => ops.fp8WeightSet(badScale)).toThrow('fp8WeightSet: scales[0] must have shape [2, 2] but received [1, 2]');
      expect(() => ops.fp8WeightSet(badDtype)).toThrow('fp8WeightSet: weights[0] must have dtype f8e4m3 but received f32');
      using set = ops.fp8WeightSet(good);
      using a = f8([4, 256]);
      using sa = f32([4, 2]);
      using a384 = f8([4, 384]);
      using sa384 = f32([4, 3]);
      using off3 = tensor(Int32Array.from([0, 4, 4]), { dtype: 'i32', shape: [3] });
      using off4 = tensor(Int32Array.from([0, 1, 2, 4]), { dtype: 'i32', shape: [4] });
      expect(() => ops.fp8Gemm(a, sa, set, 'f32')).toThrow('fp8Gemm: w must be a weight set of 1 expert but received one of 2 (groupedFp8Gemm runs those)');
      expect(() => ops.groupedFp8Gemm(a384, sa384, set, off3, 'f32')).toThrow("groupedFp8Gemm: the last dimension of a (K) must be the weight set's K (256) but received shape [4, 384]");
      expect(() => ops.groupedFp8Gemm(a, sa, set, off4, 'f32')).toThrow('groupedFp8Gemm: offsets must have shape [3] but received [4]');
      expect(() => native().ops.fp8Gemm(a.handle(), sa.handle(), {}, 'f32')).toThrow('fp8Gemm: expected a Tensor for w');
    } finally {
      for (const t of [good, uneven, otherRows, badK, badScale, badDtype]) disposeAll(t);
    }
  });

  it('rejects bad offsets when the kernel runs', async () => {
    const parts = [[part(128, 128)], [part(128, 128)]];
    try {
      using set = ops.fp8WeightSet(parts);
      using a = f8([3, 128]);
      using sa = f32([3, 1]);
      using off = tensor(Int32Array.from([0, 2, 1]), { dtype: 'i32', shape: [3] });
      using y = ops.groupedFp8Gemm(a, sa, set, off, 'f32');
      await expect(y.read()).rejects.toThrow('groupedFp8Gemm: offsets must be non-decreasing but received offsets[2] = 1 after offsets[1] = 2');
    } finally {
      disposeAll(parts);
    }
  });
});
