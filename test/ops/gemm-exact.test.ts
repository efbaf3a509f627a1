/**
 * fp8Gemm / groupedFp8Gemm with exactBlockSums: each 128-block sum exact, rounded to f32 once, then
 * scaled and accumulated in f32 — bit-exact against a JS reference, on every SIMD path.
 */
import { describe, expect, it } from 'vitest';

import { ops, tensor } from '../../lib/index.js';
import { rng, roundBf16 } from '../helpers.js';
import { missingPath, onPath, PATHS, skipNote } from './cpu-paths.js';

const f = Math.fround;

/** y[m, n] with exact block sums (JS doubles hold FP8 products and their 128-term sums exactly). */
function reference(a: Float32Array, sa: Float32Array, w: Float32Array, sw: Float32Array, M: number, N: number, K: number, bf16: boolean): Float32Array {
  const kb = K / 128, y = new Float32Array(M * N);
  for (let m = 0; m < M; ++m)
    for (let n = 0; n < N; ++n) {
      let c = 0;
      for (let b = 0; b < kb; ++b) {
        let t = 0;
        for (let k = b * 128; k < (b + 1) * 128; ++k) t += a[m * K + k] * w[n * K + k];
        c = f(c + f(f(t) * f(sa[m * kb + b] * sw[Math.floor(n / 128) * kb + b])));
      }
      y[m * N + n] = bf16 ? roundBf16(c) : c;
    }
  return y;
}

describe('exact block sums on cpu', () => {
  const r = rng();
  for (const level of PATHS) {
    for (const [M, N, K] of [[1, 130, 256], [5, 64, 384], [19, 257, 128]]) {
      it.skipIf(missingPath(level))(`fp8Gemm ${level} [${M}, ${K}] x [${N}, ${K}] is bit-exact (seed ${r.seed})${skipNote(missingPath(level))}`, () => onPath(level, async () => {
        // Inputs spanning many binades, so f32 partial sums would round.
        using x = tensor(Float32Array.from({ length: M * K }, () => r.normal() * 2 ** r.int(-8, 8)), { shape: [M, K] });
        const q = ops.actQuant(x, { scaleFmt: 'ue8m0' });
        using codes = q.codes;
        using scales = q.scales;
        const wCodes = Uint8Array.from({ length: N * K }, () => r.int(0, 0x7f) | (r.next() < 0.5 ? 0x80 : 0)).map((c) => ((c & 0x7f) === 0x7f ? c - 1 : c));
        using w = tensor(wCodes, { shape: [N, K], dtype: 'f8e4m3' });
        const swData = Float32Array.from({ length: Math.ceil(N / 128) * (K / 128) }, () => r.uniform(1e-4, 1e-2));
        using sw = tensor(swData, { shape: [Math.ceil(N / 128), K / 128] });
        for (const out of ['f32', 'bf16'] as const) {
          using y = ops.fp8Gemm(codes, scales, w, sw, out, { exactBlockSums: true });
          const got = await y.toFloat32Array();
          const want = reference(await codes.toFloat32Array(), (await scales.read()) as Float32Array, await w.toFloat32Array(), swData, M, N, K, out === 'bf16');
          let bad = 0;
          for (let i = 0; i < got.length; ++i) if (got[i] !== want[i]) ++bad;
          expect(got.length).toBe(M * N);
          expect(bad).toBe(0);
        }
      }));
    }
  }

  it(`groupedFp8Gemm with exact block sums equals fp8Gemm per expert (seed ${r.seed})`, async () => {
    const [E, N, K] = [3, 40, 256];
    const rows = [2, 0, 3];
    const R = rows.reduce((p, q) => p + q, 0);
    using x = tensor(r.floats(R * K, 3), { shape: [R, K] });
    const q = ops.actQuant(x, { scaleFmt: 'ue8m0' });
    using codes = q.codes;
    using scales = q.scales;
    const wCodes = Uint8Array.from({ length: E * N * K }, () => r.int(0, 0x7e) | (r.next() < 0.5 ? 0x80 : 0));
    using w = tensor(wCodes, { shape: [E, N, K], dtype: 'f8e4m3' });
    const swData = Float32Array.from({ length: E * (K / 128) }, () => r.uniform(1e-3, 1e-2));
    using sw = tensor(swData, { shape: [E, 1, K / 128] });
    using offsets = tensor(Int32Array.from([0, 2, 2, 5]));
    using y = ops.groupedFp8Gemm(codes, scales, w, sw, offsets, 'f32', { exactBlockSums: true });
    const got = await y.toFloat32Array();
    const a = await codes.toFloat32Array(), sa = (await scales.read()) as Float32Array, wf = await w.toFloat32Array();
    let r0 = 0;
    for (let e = 0; e < E; ++e) {
      const want = reference(a.subarray(r0 * K, (r0 + rows[e]) * K), sa.subarray(r0 * 2, (r0 + rows[e]) * 2), wf.subarray(e * N * K, (e + 1) * N * K), swData.subarray(e * 2, e * 2 + 2), rows[e], N, K, false);
      expect(Array.from(got.subarray(r0 * N, (r0 + rows[e]) * N))).toEqual(Array.from(want));
      r0 += rows[e];
    }
  });
});
