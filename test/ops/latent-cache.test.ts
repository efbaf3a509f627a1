/**
 * The FP8 latent cache (FlashMLA's format, what DeepSeek deploys): latentCacheWrite quantises each row
 * exactly as actQuant does, latentCacheRead dequantises, and mlaDecode over it computes what it
 * computes over a cache of the dequantised values.
 */
import { describe, expect, it } from 'vitest';

import { ops, tensor, zeros } from '../../lib/index.js';
import { e4m3Value, rng, roundTo } from '../helpers.js';
import { onSimdPath, shuffled, SIMD_PATHS } from './attention-helpers.js';

describe('latentCacheWrite / latentCacheRead on cpu', () => {
  const r = rng();
  it('row bytes: 656 for V3.2 in bf16, 784 in f32', () => {
    expect(ops.latentCacheRowBytes(512, 64, 'bf16')).toBe(656);
    expect(ops.latentCacheRowBytes(512, 64, 'f32')).toBe(784);
    expect(() => ops.latentCacheRowBytes(100, 64, 'bf16')).toThrow('latentCacheRowBytes: expected a positive multiple of 128 for latentDim but received 100');
  });

  for (const dtype of ['bf16', 'f32'] as const)
    for (const ue8m0 of [true, false])
      for (const [C, Dr, numBlocks, T] of [[128, 32, 2, 70], [512, 64, 3, 130], [256, 0, 1, 5]]) {
        it(`${dtype}${ue8m0 ? ' ue8m0' : ''} C=${C} Dr=${Dr}: codes and scales are actQuant's, reads give code·scale rounded once, on every SIMD path (seed ${r.seed})`, async () => {
          const W = ops.latentCacheRowBytes(C, Dr, dtype);
          const esize = dtype === 'f32' ? 4 : 2;
          using cache = zeros([numBlocks, 64, W], { dtype: 'u8' });
          // Rows of very different magnitudes (and an all-zero group) exercise the scale and the amax floor.
          const latent = Float32Array.from({ length: T * C }, (_, i) => roundTo(dtype, r.normal() * 10 ** r.int(-3, 3) * (i < C ? 0 : 1)));
          const kPe = Float32Array.from({ length: T * Dr }, () => roundTo(dtype, r.normal()));
          const perm = shuffled(numBlocks * 64, r.next);
          const slots = Int32Array.from({ length: T }, (_, t) => perm[t % perm.length]);
          slots[T - 1] = slots[0]; // a repeated slot: the later row wins
          using lt = tensor(latent, { shape: [T, C], dtype });
          using pt = tensor(kPe, { shape: [T, Dr], dtype });
          using st = tensor(slots);
          for (const path of SIMD_PATHS)
            await onSimdPath(path, async (used) => {
              ops.latentCacheWrite(cache, lt, pt, st, { scaleFmt: ue8m0 ? 'ue8m0' : null });
              const q = ops.actQuant(lt, { scaleFmt: ue8m0 ? 'ue8m0' : null });
              using codes = q.codes;
              using scales = q.scales;
              const wantCodes = new Uint8Array((await codes.read()).buffer);
              const wantScales = await scales.toFloat32Array();
              const bytes = new Uint8Array((await cache.read()).buffer);
              const ptBytes = new Uint8Array((await pt.read()).buffer);
              for (let t = 0; t < T; ++t) {
                if (t === 0) continue; // overwritten by row T-1
                const row = bytes.subarray(slots[t] * W, (slots[t] + 1) * W);
                expect(Buffer.from(row.subarray(0, C)).equals(Buffer.from(wantCodes.subarray(t * C, (t + 1) * C))), `${used} codes of row ${t}`).toBe(true);
                const sc = new Float32Array(row.slice(C, C + 4 * (C / 128)).buffer);
                expect(Array.from(sc)).toEqual(Array.from(wantScales.subarray(t * (C / 128), (t + 1) * (C / 128))));
                expect(Buffer.from(row.subarray(C + 4 * (C / 128))).equals(Buffer.from(ptBytes.subarray(t * Dr * esize, (t + 1) * Dr * esize)))).toBe(true);
              }
              // Read back every written slot, dequantised from the bytes by an independent decoder.
              using back = ops.latentCacheRead(cache, st, C, Dr, dtype);
              expect(back.shape).toEqual([T, C + Dr]);
              expect(back.dtype).toBe(dtype);
              const got = await back.toFloat32Array();
              for (let t = 0; t < T; ++t) {
                const row = bytes.subarray(slots[t] * W, (slots[t] + 1) * W);
                const sc = new Float32Array(row.slice(C, C + 4 * (C / 128)).buffer);
                for (let c = 0; c < C; ++c) {
                  const want = roundTo(dtype, Math.fround(e4m3Value(row[c]) * sc[c >> 7]));
                  if (got[t * (C + Dr) + c] !== want) expect({ used, t, c, got: got[t * (C + Dr) + c] }).toEqual({ used, t, c, got: want });
                }
                const src = t === 0 ? T - 1 : t;
                for (let i = 0; i < Dr; ++i) expect(got[t * (C + Dr) + C + i]).toBe(kPe[src * Dr + i]);
              }
            });
        });
      }

  it('rejects bad arguments with the op, argument, expected and received', () => {
    using cache = zeros([1, 64, 196], { dtype: 'u8' });
    using lat = tensor(new Float32Array(2 * 128), { shape: [2, 128], dtype: 'bf16' });
    using pe = tensor(new Float32Array(2 * 32), { shape: [2, 32], dtype: 'bf16' });
    using pe32 = tensor(new Float32Array(2 * 32), { shape: [2, 32] });
    using slots = tensor(new Int32Array([0, 1]));
    using bad = zeros([1, 64, 200], { dtype: 'u8' });
    using odd = tensor(new Float32Array(2 * 100), { shape: [2, 100], dtype: 'bf16' });
    expect(() => ops.latentCacheWrite(bad, lat, pe, slots)).toThrow(/latentCacheWrite: .*cache.* 196 .* 200|latentCacheWrite: .*cache.*200/);
    expect(() => ops.latentCacheWrite(cache, lat, pe32, slots)).toThrow('latentCacheWrite: kPe must have the dtype of latent (bf16) but received f32');
    expect(() => ops.latentCacheWrite(cache, odd, pe, slots)).toThrow('latentCacheWrite: the latent width C must be a multiple of 128 (FP8 groups of 1x128) but received 100');
    expect(() => ops.latentCacheWrite(cache, lat, pe, slots, { scaleFmt: 'e8m0' as never })).toThrow("latentCacheWrite: expected 'ue8m0' or null for scaleFmt");
    expect(() => ops.latentCacheRead(cache, slots, 128, 32, 'f16' as never)).toThrow('latentCacheRead: dtype must be bf16 or f32 but received f16');
  });

  it('checks slots when it runs, and the error names the op', async () => {
    using cache = zeros([1, 64, 196], { dtype: 'u8' });
    using lat = tensor(new Float32Array(128).fill(1), { shape: [1, 128], dtype: 'bf16' });
    using pe = tensor(new Float32Array(32), { shape: [1, 32], dtype: 'bf16' });
    using slots = tensor(new Int32Array([64]));
    ops.latentCacheWrite(cache, lat, pe, slots);
    await expect(cache.read()).rejects.toThrow(/latentCacheWrite.*slots\[0\] = 64 is out of range \[0, 64\)/);
  });
});

describe('mlaDecode over the FP8 latent cache on cpu', () => {
  const r = rng();
  for (const dtype of ['bf16', 'f32'] as const)
    for (const sparse of [false, true])
      it(`${dtype}${sparse ? ', index lists' : ''}: the same bytes as over a cache of the dequantised rows, on every SIMD path (seed ${r.seed})`, async () => {
        const [H, C, Dr] = [20, 256, 32];
        const lengths = [150, 40];
        const maxBlocks = 4, numBlocks = 8;
        const perm = shuffled(numBlocks, r.next);
        const table = Int32Array.from({ length: 2 * maxBlocks }, (_, i) => perm[i]);
        const slotOf = (seq: number, s: number) => table[seq * maxBlocks + (s >> 6)] * 64 + (s & 63);
        using fp8 = zeros([numBlocks, 64, ops.latentCacheRowBytes(C, Dr, dtype)], { dtype: 'u8' });
        const slots: number[] = [];
        lengths.forEach((n, seq) => { for (let s = 0; s < n; ++s) slots.push(slotOf(seq, s)); });
        using lat = tensor(r.floats(slots.length * C), { shape: [slots.length, C], dtype });
        using pe = tensor(r.floats(slots.length * Dr), { shape: [slots.length, Dr], dtype });
        using st = tensor(Int32Array.from(slots));
        ops.latentCacheWrite(fp8, lat, pe, st, { scaleFmt: 'ue8m0' });
        // The plain cache [numBlocks, 64, C + Dr] holding what the FP8 rows decode to.
        using all = tensor(Int32Array.from({ length: numBlocks * 64 }, (_, i) => i));
        using plainRows = ops.latentCacheRead(fp8, all, C, Dr, dtype);
        using plain = plainRows.reshape([numBlocks, 64, C + Dr]);
        const queries = [[0, 149], [1, 39], [0, 70], [0, 0]];
        const T = queries.length;
        using qL = tensor(r.floats(T * H * C), { shape: [T, H, C], dtype });
        using qPe = tensor(r.floats(T * H * Dr), { shape: [T, H, Dr], dtype });
        using tableT = tensor(table, { shape: [2, maxBlocks] });
        using seqT = tensor(Int32Array.from(queries, (q) => q[0]));
        using posT = tensor(Int32Array.from(queries, (q) => q[1]));
        const k = 16;
        using idx = sparse ? tensor(Int32Array.from({ length: T * k }, (_, i) => (i % 5 === 4 ? -1 : r.int(0, queries[Math.floor(i / k)][1] + 1))), { shape: [T, k] }) : undefined;
        for (const path of SIMD_PATHS)
          await onSimdPath(path, async (used) => {
            using a = ops.mlaDecode(qL, qPe, fp8, tableT, seqT, posT, { scale: 0.07, indices: idx });
            using b = ops.mlaDecode(qL, qPe, plain, tableT, seqT, posT, { scale: 0.07, indices: idx });
            const [x, y] = [await a.toFloat32Array(), await b.toFloat32Array()];
            expect(x.some((v) => v !== 0)).toBe(true);
            expect(Buffer.from(x.buffer).equals(Buffer.from(y.buffer)), used).toBe(true);
          });
      });

  it('checks the FP8 row width against C, Dr and the activation dtype', () => {
    using qL = tensor(new Float32Array(128), { shape: [1, 1, 128], dtype: 'bf16' });
    using qPe = tensor(new Float32Array(32), { shape: [1, 1, 32], dtype: 'bf16' });
    using wrong = zeros([1, 64, 260], { dtype: 'u8' }); // the f32 width
    using table = tensor(new Int32Array([0]), { shape: [1, 1] });
    using z = tensor(new Int32Array([0]));
    expect(() => ops.mlaDecode(qL, qPe, wrong, table, z, z, { scale: 1 })).toThrow(/mlaDecode: .*cache.*196.*260|mlaDecode: .*cache.*260/);
  });
});
