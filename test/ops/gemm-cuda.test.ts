/**
 * The GEMM family on a CUDA device (the emulated cuda:0 in CI) against the CPU ops, which their own
 * suites check against float64. The tensor core (and the CUDA cores' fmaf chain) sum in their own
 * order, so the results are not bit-identical: each element is bounded by f32 summation error on the
 * magnitudes of its products, plus one rounding of the output.
 *
 * | op                | bound per element                                                        | why |
 * | ----------------- | ------------------------------------------------------------------------ | --- |
 * | fp8Gemm, grouped, masked | 2⁻¹⁷ · Σ_kb sa·sw·Σ_k |a·w| + one ulp of the output dtype of |ref| | each 128-term block summed in f32 in another order (≤ 128 · 2⁻²⁴ = 2⁻¹⁷ of its magnitude), then scaled and added |
 * | fp8Gemm split over K (swapAB, splits > 1) | the above + 2 · (K/128 − 1) · 2⁻²⁴ · Σ_kb sa·sw·Σ_k |a·w| | the blocks' scaled sums are added in another grouping (each split's chain, then the splits in order) than the CPU's one chain: each side's K/128-term f32 sum errs by ≤ (K/128 − 1) · 2⁻²⁴ of the magnitude |
 * | gemm, bmmHeads    | K · 2⁻²⁴ · Σ_k |x·w| + one ulp of the output dtype of |ref|       | a K-term f32 sum in another order |
 */
import { describe, expect, it } from 'vitest';

import { ops, tensor } from '../../lib/index.js';
import { native } from '../../lib/runtime/native.js';
import { e4m3Value, rng, roundTo, suiteDevices } from '../helpers.js';

/** One ulp of the output dtype at v: two roundings of values a hair apart may land one ulp apart. */
const oneUlp = (dtype: string, v: number) => (dtype === 'bf16' ? 2 ** -7 : 2 ** -23) * Math.abs(v);

function expectWithin(what: string, got: Float32Array, ref: Float32Array, bound: (i: number) => number): void {
  let worst = 0, at = -1;
  for (let i = 0; i < ref.length; ++i) {
    const d = Math.abs(got[i] - ref[i]) / bound(i);
    if (!(d <= worst)) {
      worst = d;
      at = i;
    }
  }
  if (!(worst <= 1)) expect({ what, at, got: got[at] }).toEqual({ what, at, got: ref[at], bound: bound(at) });
}

for (const { device, skip } of suiteDevices('fp8Gemm', 'groupedFp8Gemm', 'maskedGroupedFp8Gemm', 'gemm', 'bmmHeads')) {
  if (device === 'cpu') continue; // this file compares a device's kernels with the CPU's
  describe.skipIf(skip)(`the GEMM family on ${device} matches the CPU within f32 summation error${skip ? ` (skipped: ${skip})` : ''}`, () => {
    const r = rng();
    /** Random finite E4M3 codes (no NaN codes 0x7f / 0xff). */
    const codes = (n: number) => Uint8Array.from({ length: n }, () => {
      const c = r.int(0, 256);
      return (c & 0x7f) === 0x7f ? c - 1 : c;
    });

    /** The per-element bound of an FP8 GEMM of codes a [M, K] (scales [M, K/128]) and w [N, K]. */
    function fp8Bound(a: Uint8Array, sa: Float32Array, w: Uint8Array, sw: Float32Array, M: number, N: number, K: number, ref: Float32Array, yType: string, splits = 1) {
      const KB = K / 128, av = Float64Array.from(a, e4m3Value), wv = Float64Array.from(w, e4m3Value);
      const relative = 2 ** -17 + (splits > 1 ? 2 * (KB - 1) * 2 ** -24 : 0);
      return (i: number) => {
        const m = Math.floor(i / N), n = i % N;
        let mag = 0;
        for (let kb = 0; kb < KB; ++kb) {
          let s = 0;
          for (let k = kb * 128; k < (kb + 1) * 128; ++k) s += Math.abs(av[m * K + k] * wv[n * K + k]);
          mag += s * Math.abs(sa[m * KB + kb] * sw[Math.floor(n / 128) * KB + kb]);
        }
        return relative * mag + oneUlp(yType, ref[i]) + 1e-30;
      };
    }

    // The CUDA kernel is chosen by M (native/params/gemm.h's fp8GemmCudaPath): M > 64 runs the Hopper
    // pipeline (TMA, mbarriers, wgmma, 128 x 128 tiles), smaller M the swapAB decode kernel (W rows on
    // the mma's 16-row side, K split over blocks when few column tiles: `splits`). The shapes cover
    // both, tiles cut by M and N (not multiples of 64 / 128), each n8 width of the decode kernel
    // (M 1..8, 9..16, 17..32, 33..64), K at the 128 boundary (one block: no split), splits of one K
    // block each, a split count that leaves the last split shorter (7 K blocks in 4 splits of 2), and
    // more tiles than the emulated device's SMs (so the persistent blocks take several tiles each).
    const fp8Shapes = [
      [1, 1, 128, 'f32', 'swapAB', 1], [2, 100, 1024, 'bf16', 'swapAB', 8], [3, 130, 640, 'f32', 'swapAB', 5], [5, 64, 128, 'bf16', 'swapAB', 1],
      [8, 70, 128, 'bf16', 'swapAB', 1], [17, 200, 768, 'f32', 'swapAB', 6], [33, 72, 384, 'bf16', 'swapAB', 3], [64, 70, 256, 'f32', 'swapAB', 2],
      [3, 5600, 896, 'bf16', 'swapAB', 4],
      [65, 64, 128, 'f32', 'wgmma', 1], [67, 200, 384, 'bf16', 'wgmma', 1], [130, 129, 256, 'f32', 'wgmma', 1],
      [256, 300, 512, 'bf16', 'wgmma', 1], [200, 136, 128, 'f32', 'wgmma', 1], [1280, 1800, 128, 'bf16', 'wgmma', 1],
      [1280, 1664, 256, 'f32', 'wgmma', 1],
    ] as const;
    // The Hopper kernel's tile width (fp8GemmHopperBlockN): 64 columns where they finish sooner on 132
    // SMs (every small shape above, and 1280 x 1800: 3 waves of 64 vs 2 of 128), 128 on a tie
    // (1280 x 1664: one wave of 130 tiles vs two of 260). DeepGEMM's N = 2112 at M = 4096 takes 64.
    it('fp8Gemm on the Hopper kernel picks 64- or 128-column tiles by the waves they take', () => {
      const widths = fp8Shapes.filter(([, , , , path]) => path === 'wgmma').map(([M, N, K]) => `${M}x${N}: ${native().ops.fp8GemmBlockN(M, N, K)}`);
      expect(widths).toEqual(['65x64: 64', '67x200: 64', '130x129: 64', '256x300: 64', '200x136: 64', '1280x1800: 64', '1280x1664: 128']);
      expect([native().ops.fp8GemmBlockN(4096, 2112, 7168), native().ops.fp8GemmBlockN(4096, 24576, 1536), native().ops.fp8GemmBlockN(64, 2112, 7168)]).toEqual([64, 128, 0]);
    });
    it('fp8Gemm picks the wgmma kernel for M > 64 and the swapAB kernel (split over K when its tiles are few) below', () => {
      for (const [M, N, K, , path, splits] of fp8Shapes) {
        const got = `${M}x${N}x${K}: ${native().ops.fp8GemmPath(M, N, K)}, ${native().ops.fp8GemmSplits(M, N, K)} splits`;
        expect(got).toBe(`${M}x${N}x${K}: ${path}, ${splits} splits`);
      }
    });
    for (const [M, N, K, yType, path, splits] of fp8Shapes)
      it(`fp8Gemm [${M}, ${K}] x [${N}, ${K}]ᵀ -> ${yType}, ${path} kernel${splits > 1 ? `, K in ${splits} splits` : ''} (seed ${r.seed})`, async () => {
        const a = codes(M * K), w = codes(N * K);
        const sa = Float32Array.from({ length: M * (K / 128) }, () => 2 ** r.int(-12, -4));
        const sw = Float32Array.from({ length: Math.ceil(N / 128) * (K / 128) }, () => 2 ** r.int(-12, -4) * (1 + r.next()));
        const run = async (d: string) => {
          using at = tensor(a, { shape: [M, K], dtype: 'f8e4m3', device: d });
          using st = tensor(sa, { shape: [M, K / 128], device: d });
          using wt = tensor(w, { shape: [N, K], dtype: 'f8e4m3', device: d });
          using swt = tensor(sw, { shape: [Math.ceil(N / 128), K / 128], device: d });
          using y = ops.fp8Gemm(at, st, wt, swt, yType, { exactBlockSums: true });
          return y.toFloat32Array();
        };
        const ref = await run('cpu');
        const got = await run(device);
        expectWithin('fp8Gemm', got, ref, fp8Bound(a, sa, w, sw, M, N, K, ref, yType, splits));
        expect(ref.some((v) => v !== 0)).toBe(true);
        // Deterministic: a second run gives the same bits (the K splits are summed in a fixed order).
        if (path === 'swapAB') expect(Buffer.from((await run(device)).buffer).equals(Buffer.from(got.buffer))).toBe(true);
      });

    // groupedFp8Gemm takes the wgmma kernel when the mean rows per expert reach 64 (R ≥ 64·E), else
    // mma.sync; both see experts with no rows, one row, and rows not a multiple of either tile.
    const groupedCases: { rowsPer: number[]; N: number; path: string }[] = [
      { rowsPer: [3, 0, 1, 70, 2, 9], N: 96, path: 'mma.sync' },
      { rowsPer: [200, 0, 1, 130, 70], N: 200, path: 'wgmma' },
    ];
    for (const { rowsPer, N, path } of groupedCases)
      it(`groupedFp8Gemm: experts with rows ${rowsPer.join(', ')}, N ${N}, ${path} kernel (seed ${r.seed})`, async () => {
        const E = rowsPer.length, K = 256, KB = K / 128, NB = Math.ceil(N / 128), R = rowsPer.reduce((p, q) => p + q, 0);
        expect(native().ops.groupedFp8GemmPath(R, E, N, K)).toBe(path);
        const offsets = Int32Array.from({ length: E + 1 }, (_, e) => rowsPer.slice(0, e).reduce((p, q) => p + q, 0));
        const a = codes(R * K), w = codes(E * N * K);
        const sa = Float32Array.from({ length: R * KB }, () => 2 ** r.int(-10, -5));
        const sw = Float32Array.from({ length: E * NB * KB }, () => 2 ** r.int(-10, -5));
        const run = async (d: string) => {
          using at = tensor(a, { shape: [R, K], dtype: 'f8e4m3', device: d });
          using st = tensor(sa, { shape: [R, KB], device: d });
          using wt = tensor(w, { shape: [E, N, K], dtype: 'f8e4m3', device: d });
          using swt = tensor(sw, { shape: [E, NB, KB], device: d });
          using ot = tensor(offsets, { device: d });
          using y = ops.groupedFp8Gemm(at, st, wt, swt, ot, 'bf16', { exactBlockSums: true });
          return y.toFloat32Array();
        };
        const ref = await run('cpu');
        const got = await run(device);
        // Row r uses its expert's weights: bound each row against that expert's slice.
        const expertOf = (row: number) => {
          let e = 0;
          while (offsets[e + 1] <= row) ++e;
          return e;
        };
        const bounds = Array.from({ length: E }, (_, e) =>
          fp8Bound(a.subarray(offsets[e] * K, offsets[e + 1] * K), sa.subarray(offsets[e] * KB, offsets[e + 1] * KB), w.subarray(e * N * K, (e + 1) * N * K),
            sw.subarray(e * NB * KB, (e + 1) * NB * KB), rowsPer[e], N, K, ref.subarray(offsets[e] * N, offsets[e + 1] * N), 'bf16'));
        expectWithin('groupedFp8Gemm', got, ref, (i) => {
          const row = Math.floor(i / N), e = expertOf(row);
          return bounds[e]((row - offsets[e]) * N + (i % N));
        });
        expect(ref.some((v) => v !== 0)).toBe(true);
      });

    it('groupedFp8Gemm: bad offsets fail at the next sync point, and the device works on', async () => {
      using at = tensor(new Uint8Array(4 * 128), { shape: [4, 128], dtype: 'f8e4m3', device });
      using st = tensor(new Float32Array(4), { shape: [4, 1], device });
      using wt = tensor(new Uint8Array(2 * 8 * 128), { shape: [2, 8, 128], dtype: 'f8e4m3', device });
      using swt = tensor(new Float32Array(2), { shape: [2, 1, 1], device });
      using bad = tensor(Int32Array.from([0, 3, 2]), { device }); // decreasing, and not ending at 4
      using y = ops.groupedFp8Gemm(at, st, wt, swt, bad, 'f32');
      await expect(y.read()).rejects.toThrow(/groupedFp8Gemm/);
      using good = tensor(Int32Array.from([0, 1, 4]), { device });
      using y2 = ops.groupedFp8Gemm(at, st, wt, swt, good, 'f32');
      expect(Array.from(await y2.toFloat32Array()).every((v) => v === 0)).toBe(true);
    });

    it('groupedFp8Gemm on the wgmma kernel: bad offsets fail at the next sync point, and the device works on', async () => {
      const R = 256, E = 2, N = 8, K = 128;
      expect(native().ops.groupedFp8GemmPath(R, E, N, K)).toBe('wgmma');
      using at = tensor(new Uint8Array(R * K), { shape: [R, K], dtype: 'f8e4m3', device });
      using st = tensor(new Float32Array(R), { shape: [R, 1], device });
      using wt = tensor(new Uint8Array(E * N * K), { shape: [E, N, K], dtype: 'f8e4m3', device });
      using swt = tensor(new Float32Array(E), { shape: [E, 1, 1], device });
      using bad = tensor(Int32Array.from([0, 300, 256]), { device }); // decreasing
      using y = ops.groupedFp8Gemm(at, st, wt, swt, bad, 'f32');
      await expect(y.read()).rejects.toThrow(/groupedFp8Gemm/);
      using good = tensor(Int32Array.from([0, 100, 256]), { device });
      using y2 = ops.groupedFp8Gemm(at, st, wt, swt, good, 'f32');
      expect(Array.from(await y2.toFloat32Array()).every((v) => v === 0)).toBe(true);
    });

    // maskedGroupedFp8Gemm takes the wgmma kernel when an expert has more than 64 row slots, else
    // fp8Gemm's swapAB decode kernel (one grid slice per expert).
    const maskedCases: { counts: number[]; M: number; path: string }[] = [
      { counts: [70, 0, 1, 65], M: 70, path: 'wgmma' }, { counts: [40, 0, 3], M: 40, path: 'swapAB' }, { counts: [8, 1, 0, 5], M: 8, path: 'swapAB' },
    ];
    for (const { counts, M, path } of maskedCases)
      it(`maskedGroupedFp8Gemm: ${counts.length} experts of ${M} row slots, counts ${counts.join(', ')}, ${path} kernel (seed ${r.seed})`, async () => {
        const E = counts.length, N = 72, K = 256;
        expect(native().ops.maskedGroupedFp8GemmPath(E, M, N, K)).toBe(path);
        const a = codes(E * M * K), w = codes(E * N * K);
        const sa = Float32Array.from({ length: E * M * 2 }, () => 2 ** r.int(-10, -5));
        const sw = Float32Array.from({ length: E * 2 }, () => 2 ** r.int(-10, -5));
        const run = async (d: string) => {
          using at = tensor(a, { shape: [E, M, K], dtype: 'f8e4m3', device: d });
          using st = tensor(sa, { shape: [E, M, 2], device: d });
          using wt = tensor(w, { shape: [E, N, K], dtype: 'f8e4m3', device: d });
          using swt = tensor(sw, { shape: [E, 1, 2], device: d });
          using ct = tensor(Int32Array.from(counts), { device: d });
          using y = ops.maskedGroupedFp8Gemm(at, st, wt, swt, ct, 'f32', { exactBlockSums: true });
          return y.toFloat32Array();
        };
        const ref = await run('cpu');
        const got = await run(device);
        for (let e = 0; e < E; ++e) {
          if (counts[e] === 0) continue;
          const rows = [e * M * N, (e * M + counts[e]) * N];
          const bound = fp8Bound(a.subarray(e * M * K, (e * M + counts[e]) * K), sa.subarray(e * M * 2, (e * M + counts[e]) * 2),
            w.subarray(e * N * K, (e + 1) * N * K), sw.subarray(e * 2, (e + 1) * 2), counts[e], N, K, ref.subarray(rows[0], rows[1]), 'f32');
          expectWithin(`maskedGroupedFp8Gemm expert ${e}`, got.subarray(rows[0], rows[1]), ref.subarray(rows[0], rows[1]), bound);
        }
      });

    for (const M of [4, 80])
      it(`maskedGroupedFp8Gemm (${M} row slots, ${M > 64 ? 'wgmma' : 'swapAB'} kernel): a count outside [0, M] fails at the next sync point, and the device works on`, async () => {
        expect(native().ops.maskedGroupedFp8GemmPath(2, M, 8, 128)).toBe(M > 64 ? 'wgmma' : 'swapAB');
        using at = tensor(new Uint8Array(2 * M * 128), { shape: [2, M, 128], dtype: 'f8e4m3', device });
        using st = tensor(new Float32Array(2 * M), { shape: [2, M, 1], device });
        using wt = tensor(new Uint8Array(2 * 8 * 128), { shape: [2, 8, 128], dtype: 'f8e4m3', device });
        using swt = tensor(new Float32Array(2), { shape: [2, 1, 1], device });
        using bad = tensor(Int32Array.from([1, M + 1]), { device });
        using y = ops.maskedGroupedFp8Gemm(at, st, wt, swt, bad, 'f32');
        await expect(y.read()).rejects.toThrow(`maskedGroupedFp8Gemm: row count ${M + 1} is out of range [0, ${M + 1})`);
        using good = tensor(Int32Array.from([M, 1]), { device });
        using y2 = ops.maskedGroupedFp8Gemm(at, st, wt, swt, good, 'f32');
        const out = await y2.toFloat32Array();
        expect(Array.from(out.subarray(0, M * 8 + 8)).every((v) => v === 0)).toBe(true); // expert 0's M rows, expert 1's first
      });

    for (const [M, N, K, xType, wType, yType] of [[1, 300, 77, 'bf16', 'bf16', 'f32'], [33, 65, 1024, 'f32', 'bf16', 'bf16'], [64, 64, 1, 'f32', 'f32', 'f32'], [3, 5, 0, 'bf16', 'f32', 'f32']] as const)
      it(`gemm [${M}, ${K}] ${xType} x [${N}, ${K}]ᵀ ${wType} -> ${yType} (seed ${r.seed})`, async () => {
        const x = Float32Array.from({ length: M * K }, () => roundTo(xType, r.normal()));
        const w = Float32Array.from({ length: N * K }, () => roundTo(wType, r.normal()));
        const run = async (d: string) => {
          using xt = tensor(x, { shape: [M, K], dtype: xType, device: d });
          using wt = tensor(w, { shape: [N, K], dtype: wType, device: d });
          using y = ops.gemm(xt, wt, yType);
          return y.toFloat32Array();
        };
        const ref = await run('cpu');
        const got = await run(device);
        expectWithin('gemm', got, ref, (i) => {
          const m = Math.floor(i / N), n = i % N;
          let mag = 0;
          for (let k = 0; k < K; ++k) mag += Math.abs(x[m * K + k] * w[n * K + k]);
          return K * 2 ** -24 * mag + oneUlp(yType, ref[i]) + 1e-30;
        });
      });

    it(`bmmHeads [T 9, H 5, A 70] x [H 5, A 70, B 33], bf16 -> bf16 (seed ${r.seed})`, async () => {
      const [T, H, A, B] = [9, 5, 70, 33];
      const x = Float32Array.from({ length: T * H * A }, () => roundTo('bf16', r.normal()));
      const w = Float32Array.from({ length: H * A * B }, () => roundTo('bf16', r.normal()));
      const run = async (d: string) => {
        using xt = tensor(x, { shape: [T, H, A], dtype: 'bf16', device: d });
        using wt = tensor(w, { shape: [H, A, B], dtype: 'bf16', device: d });
        using y = ops.bmmHeads(xt, wt, 'bf16');
        return y.toFloat32Array();
      };
      const ref = await run('cpu');
      const got = await run(device);
      expectWithin('bmmHeads', got, ref, (i) => {
        const b = i % B, h = Math.floor(i / B) % H, t = Math.floor(i / (B * H));
        let mag = 0;
        for (let a = 0; a < A; ++a) mag += Math.abs(x[(t * H + h) * A + a] * w[(h * A + a) * B + b]);
        return A * 2 ** -24 * mag + oneUlp('bf16', ref[i]) + 1e-30;
      });
    });
  });
}
