/**
 * mlaDecode on a CUDA device (the emulated cuda:0 in CI) against the float64 reference of the CPU
 * suite (attention-helpers.ts: attendRef and its tolerance) and against the CPU op. Shapes are small
 * (every CUDA thread is a fiber on the emulator) but cross blocks of 64 rows, run several split-KV
 * ranges (mlaDecodeSplits gives up to 4 for these contexts, 1 with short index lists), head counts
 * that are not multiples of the 16-head group or the warp, the plain and the FP8 latent cache, index
 * lists with repeats, -1 padding and keys beyond qPos, and the reference's bf16 score rounding.
 *
 * Bounds: the CPU suite's `tolerance` bounds |kernel − float64 reference| for any kernel computing the
 * contract in f32 (summation order, the output's rounding, P's bf16 rounding flips where P lies within
 * f32 noise of a midpoint); CUDA and CPU each meet it, so they differ by at most twice it.
 */
import { describe, expect, it } from 'vitest';

import { ops, tensor, type Tensor, zeros } from '../../lib/index.js';
import { rng, roundTo, suiteDevices } from '../helpers.js';
import { type Act, attendRef, expectClose, pagedCache, type PagedCache, randomIndices, tolerance, visibleKeys } from './attention-helpers.js';

for (const { device, skip } of suiteDevices('mlaDecode')) {
  if (device === 'cpu') continue; // this file compares a device's kernel with the float64 reference and the CPU's
  describe.skipIf(skip)(`mlaDecode on ${device}${skip ? ` (skipped: ${skip})` : ''}`, () => {
    const r = rng();
    const configs = [
      { name: 'T=1 H=1, one key', H: 1, C: 16, Dr: 4, lengths: [1], queries: [[0, 0]] },
      { name: 'blocks crossed, ragged batch, 4 splits', H: 3, C: 37, Dr: 9, lengths: [130, 64, 1], queries: [[0, 129], [1, 63], [2, 0], [0, 64], [0, 5]] },
      { name: 'H=20 (two head groups, not a warp multiple)', H: 20, C: 40, Dr: 8, lengths: [200, 77], queries: [[1, 76], [0, 199], [0, 128]] },
      { name: 'FP8-able widths C=128 Dr=16, H=5', H: 5, C: 128, Dr: 16, lengths: [100, 20], queries: [[0, 99], [1, 19], [0, 64]] },
      { name: 'Dr=0', H: 2, C: 128, Dr: 0, lengths: [70], queries: [[0, 69], [0, 1]] },
    ];
    {
      const lengths = Array.from({ length: r.int(1, 3) }, () => r.int(1, 150));
      const queries = Array.from({ length: r.int(1, 4) }, () => {
        const seq = r.int(0, lengths.length);
        return [seq, r.int(0, lengths[seq])];
      });
      const [H, C, Dr] = [r.int(1, 24), 128 * r.int(1, 3), r.int(0, 20)];
      configs.push({ name: `random shapes H=${H} C=${C} Dr=${Dr} lengths=${lengths} queries=${JSON.stringify(queries)}`, H, C, Dr, lengths, queries });
    }

    /** The FP8 latent cache of `plain`'s sequence rows (written by the CPU op), and its dequantised values. */
    async function fp8Of(plain: PagedCache, lengths: number[], C: number, Dr: number, dtype: Act) {
      const W = C + Dr, rowBytes = ops.latentCacheRowBytes(C, Dr, dtype);
      const slots: number[] = [];
      lengths.forEach((n, seq) => {
        for (let s = 0; s < n; ++s) slots.push(plain.row(seq, s));
      });
      const lat = new Float32Array(slots.length * C), pe = new Float32Array(slots.length * Dr);
      slots.forEach((row, i) => {
        lat.set(plain.data.subarray(row * W, row * W + C), i * C);
        pe.set(plain.data.subarray(row * W + C, (row + 1) * W), i * Dr);
      });
      using cache = zeros([plain.numBlocks, 64, rowBytes], { dtype: 'u8' });
      using lt = tensor(lat, { shape: [slots.length, C], dtype });
      using pt = tensor(pe, { shape: [slots.length, Dr], dtype });
      using st = tensor(Int32Array.from(slots));
      ops.latentCacheWrite(cache, lt, pt, st);
      using all = tensor(Int32Array.from({ length: plain.numBlocks * 64 }, (_, i) => i));
      using values = ops.latentCacheRead(cache, all, C, Dr, dtype);
      return { bytes: await cache.read<'u8'>(), rowBytes, data: await values.toFloat32Array() };
    }

    for (const dtype of ['f32', 'bf16'] as const)
      for (const sparse of [false, true])
        for (const fp8 of [false, true])
          for (const c of configs) {
            if (fp8 && c.C % 128 !== 0) continue;
            it(`${dtype}${fp8 ? ' FP8 cache' : ''} ${c.name}${sparse ? ', index lists' : ''}: float64 reference and the CPU op (seed ${r.seed})`, async () => {
              const { H, C, Dr } = c;
              const T = c.queries.length, W = C + Dr;
              const plain = pagedCache(r, c.lengths, W, dtype, () => r.normal());
              const f = fp8 ? await fp8Of(plain, c.lengths, C, Dr, dtype) : null;
              const values = f ? f.data : plain.data; // what the keys hold, as the activation dtype
              const seqIdx = Int32Array.from(c.queries, (q) => q[0]);
              const qPos = Int32Array.from(c.queries, (q) => q[1]);
              const qL = r.floats(T * H * C).map((v) => roundTo(dtype, v));
              const qPe = r.floats(T * H * Dr).map((v) => roundTo(dtype, v));
              const k = 9;
              const idx = sparse ? randomIndices(r, qPos, k, plain.maxBlocks * 64) : undefined;
              const scale = 1.7 / Math.sqrt(W);
              const want = new Float64Array(T * H * C), flip = new Float64Array(T * H * C);
              let maxV = 0;
              for (let t = 0; t < T; ++t) {
                const vis = visibleKeys(qPos[t], idx?.subarray(t * k, (t + 1) * k));
                for (const s of vis) for (let i = 0; i < C; ++i) maxV = Math.max(maxV, Math.abs(values[plain.row(seqIdx[t], s) * W + i]));
                for (let h = 0; h < H; ++h) {
                  const th = t * H + h;
                  const score = (s: number) => {
                    const row = plain.row(seqIdx[t], s) * W;
                    let acc = 0;
                    for (let i = 0; i < W; ++i) acc += (i < C ? qL[th * C + i] : qPe[th * Dr + i - C]) * values[row + i];
                    return acc * scale;
                  };
                  want.set(attendRef(vis, score, (s, i) => values[plain.row(seqIdx[t], s) * W + i], C, dtype, flip.subarray(th * C, (th + 1) * C)), th * C);
                }
              }
              const run = (d: string) => {
                using qLt = tensor(qL, { shape: [T, H, C], dtype, device: d });
                using qPet = tensor(qPe, { shape: [T, H, Dr], dtype, device: d });
                using cacheT = f ? tensor(f.bytes, { shape: [plain.numBlocks, 64, f.rowBytes], dtype: 'u8', device: d }) : tensor(plain.data, { shape: [plain.numBlocks, 64, W], dtype, device: d });
                using tableT = tensor(plain.table, { shape: [c.lengths.length, plain.maxBlocks], device: d });
                using seqT = tensor(seqIdx, { device: d });
                using posT = tensor(qPos, { device: d });
                using idxT = idx ? tensor(idx, { shape: [T, k], device: d }) : undefined;
                return ops.mlaDecode(qLt, qPet, cacheT, tableT, seqT, posT, { scale, indices: idxT });
              };
              using cpu = run('cpu');
              using out = run(device);
              expect(out.shape).toEqual([T, H, C]);
              expect(out.dtype).toBe(dtype);
              const got = await out.toFloat32Array();
              const tol = tolerance(dtype, maxV, flip);
              expectClose(got, want, tol, { device, vs: 'float64' });
              expectClose(got, Float64Array.from(await cpu.toFloat32Array()), (w, i) => 2 * tol(want[i], i), { device, vs: 'cpu' });
            });
          }

    it(`scoreDtype 'bf16': s = bf16(bf16(bf16(qLatent·c) + bf16(qPe·pe)) · scale) (seed ${r.seed})`, async () => {
      // Small integers make every dot exact in f32, so the bf16 rounding points are deterministic.
      const [H, C, Dr] = [5, 64, 16];
      const lengths = [90, 33];
      const queries = [[0, 89], [1, 32], [0, 40]];
      const T = queries.length, W = C + Dr;
      const cache = pagedCache(r, lengths, W, 'bf16', () => r.int(-8, 9));
      const ints = (n: number) => Float32Array.from({ length: n }, () => r.int(-8, 9));
      const qL = ints(T * H * C), qPe = ints(T * H * Dr);
      const scale = 2 ** -7;
      const rne = (x: number) => roundTo('bf16', x);
      const want = new Float64Array(T * H * C), plainRef = new Float64Array(T * H * C), flip = new Float64Array(T * H * C);
      queries.forEach(([seq, pos], t) => {
        for (let h = 0; h < H; ++h) {
          const th = t * H + h;
          const dots = (s: number) => {
            const row = cache.row(seq, s) * W;
            let a = 0, b = 0;
            for (let i = 0; i < C; ++i) a += qL[th * C + i] * cache.data[row + i];
            for (let i = 0; i < Dr; ++i) b += qPe[th * Dr + i] * cache.data[row + C + i];
            return [a, b];
          };
          const value = (s: number, i: number) => cache.data[cache.row(seq, s) * W + i];
          want.set(attendRef(visibleKeys(pos), (s) => { const [a, b] = dots(s); return rne(rne(rne(a) + rne(b)) * scale); }, value, C, 'bf16', flip.subarray(th * C, (th + 1) * C)), th * C);
          plainRef.set(attendRef(visibleKeys(pos), (s) => { const [a, b] = dots(s); return (a + b) * scale; }, value, C, 'bf16'), th * C);
        }
      });
      const tol = tolerance('bf16', 8, flip);
      expect(want.some((v, i) => Math.abs(v - plainRef[i]) > tol(v, i))).toBe(true); // the rounding matters here
      using qLt = tensor(qL, { shape: [T, H, C], dtype: 'bf16', device });
      using qPet = tensor(qPe, { shape: [T, H, Dr], dtype: 'bf16', device });
      using cacheT = tensor(cache.data, { shape: [cache.numBlocks, 64, W], dtype: 'bf16', device });
      using tableT = tensor(cache.table, { shape: [lengths.length, cache.maxBlocks], device });
      using seqT = tensor(Int32Array.from(queries, (q) => q[0]), { device });
      using posT = tensor(Int32Array.from(queries, (q) => q[1]), { device });
      using out = ops.mlaDecode(qLt, qPet, cacheT, tableT, seqT, posT, { scale, scoreDtype: 'bf16' });
      expectClose(await out.toFloat32Array(), want, tol, { device });
    });

    it('gives zeros to a query that sees no key, and handles no heads', async () => {
      const cache = pagedCache(r, [10], 6, 'f32', () => r.normal());
      using c = tensor(cache.data, { shape: [cache.numBlocks, 64, 6], device });
      using table = tensor(cache.table, { shape: [1, cache.maxBlocks], device });
      using s = tensor(new Int32Array([0]), { device });
      using p = tensor(new Int32Array([4]), { device });
      using ql = tensor(r.floats(4), { shape: [1, 1, 4], device });
      using qp = tensor(r.floats(2), { shape: [1, 1, 2], device });
      using i = tensor(new Int32Array([-1, 7, -1]), { shape: [1, 3], device });
      using out = ops.mlaDecode(ql, qp, c, table, s, p, { scale: 1, indices: i });
      expect(Array.from(await out.read<'f32'>())).toEqual([0, 0, 0, 0]);
      using ql0 = tensor(new Float32Array(0), { shape: [1, 0, 4], device });
      using qp0 = tensor(new Float32Array(0), { shape: [1, 0, 2], device });
      using out0 = ops.mlaDecode(ql0, qp0, c, table, s, p, { scale: 1 });
      expect(out0.shape).toEqual([1, 0, 4]);
    });

    it('checks ids when it runs: the error names the op and the value, and the device works on', async () => {
      const cache = pagedCache(r, [70], 6, 'f32', () => r.normal());
      using ql = tensor(r.floats(2 * 4), { shape: [2, 1, 4], device });
      using qp = tensor(r.floats(2 * 2), { shape: [2, 1, 2], device });
      using c = tensor(cache.data, { shape: [cache.numBlocks, 64, 6], device });
      using table = tensor(cache.table, { shape: [1, cache.maxBlocks], device });
      const run = async (seq: number[], pos: number[], list?: number[]) => {
        using s = tensor(new Int32Array(seq), { device });
        using p = tensor(new Int32Array(pos), { device });
        using i = list ? tensor(new Int32Array(list), { shape: [2, list.length / 2], device }) : undefined;
        using out: Tensor = ops.mlaDecode(ql, qp, c, table, s, p, { scale: 1, indices: i });
        return out.read();
      };
      const cap = cache.maxBlocks * 64;
      await expect(run([0, 1], [3, 3])).rejects.toThrow('mlaDecode: index 1 is out of range [0, 1)');
      await expect(run([0, 0], [3, cap])).rejects.toThrow(`mlaDecode: offset ${cap} is out of range [0, ${cap})`);
      // Keys past the sequence's blocks reach a table entry that is not a block.
      await expect(run([0, 0], [3, 130])).rejects.toThrow(`mlaDecode: index ${1 << 30} is out of range [0, ${cache.numBlocks})`);
      await expect(run([0, 0], [3, 3], [1, -2, 0, 0])).rejects.toThrow(`mlaDecode: key index -2 is out of range [0, ${cap})`);
      // A listed key beyond qPos is not visible, so its (unused) table entry is not followed.
      await expect(run([0, 0], [3, 3], [1, 140, 0, -1])).resolves.toBeDefined();
    });
  });
}
