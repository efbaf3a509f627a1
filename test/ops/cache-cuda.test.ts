/**
 * The paged cache ops on a CUDA device (the emulated cuda:0 in CI) against the CPU ops, which their
 * own suites check: pagedWrite / pagedGather for every element size (rows of odd byte counts
 * included, which take the byte-wise copy) and the FP8 latent cache (latentCacheWrite quantises as
 * actQuant does, latentCacheRead dequantises) give the CPU's bytes, the whole cache compared after
 * the writes, a repeated slot keeping the last row, and a slot outside the cache an error naming the
 * op and the slot that leaves the cache as it was.
 */
import { describe, expect, it } from 'vitest';

import { ops, tensor } from '../../lib/index.js';
import { expectSameBytes, rng, roundTo, suiteDevices } from '../helpers.js';
import { shuffled } from './attention-helpers.js';

for (const { device, skip } of suiteDevices('pagedWrite', 'pagedGather', 'latentCacheWrite', 'latentCacheRead')) {
  if (device === 'cpu') continue; // this file compares a device's kernels with the CPU's
  describe.skipIf(skip)(`the paged cache ops on ${device} give the CPU's bytes${skip ? ` (skipped: ${skip})` : ''}`, () => {
    const r = rng();
    /** T distinct random slots of numBlocks·64, then the first one again at the end (the later row wins). */
    const slotsFor = (T: number, numBlocks: number) => {
      const perm = shuffled(numBlocks * 64, r.next);
      const s = Int32Array.from({ length: T }, (_, t) => perm[t % perm.length]);
      if (T > 1) s[T - 1] = s[0];
      return s;
    };

    for (const [dtype, W, numBlocks, T] of [['bf16', 576, 3, 70], ['f32', 1, 2, 33], ['u8', 13, 2, 100], ['f32', 128, 1, 1], ['bf16', 7, 4, 200]] as const)
      it(`pagedWrite then pagedGather ${dtype} [${numBlocks}, 64, ${W}], ${T} rows (seed ${r.seed})`, async () => {
        const n = numBlocks * 64 * W;
        const init = dtype === 'u8' ? Uint8Array.from({ length: n }, () => r.int(0, 256)) : Float32Array.from({ length: n }, () => roundTo(dtype, r.normal()));
        const rows = dtype === 'u8' ? Uint8Array.from({ length: T * W }, () => r.int(0, 256)) : Float32Array.from({ length: T * W }, () => roundTo(dtype, r.normal()));
        const slots = slotsFor(T, numBlocks);
        const gatherSlots = Int32Array.from({ length: 2 * T + 3 }, () => r.int(0, numBlocks * 64));
        const run = (d: string) => {
          const cache = tensor(init, { shape: [numBlocks, 64, W], dtype, device: d });
          using rt = tensor(rows, { shape: [T, W], dtype, device: d });
          using st = tensor(slots, { device: d });
          ops.pagedWrite(cache, rt, st);
          using gt = tensor(gatherSlots, { device: d });
          return { cache, gathered: ops.pagedGather(cache, gt) };
        };
        const a = run('cpu'), b = run(device);
        await expectSameBytes([['cache', a.cache, b.cache], ['gathered', a.gathered, b.gathered]]);
        for (const o of [a, b]) for (const t of Object.values(o)) t.dispose();
      });

    for (const dtype of ['bf16', 'f32'] as const)
      for (const ue8m0 of [false, true])
        for (const [C, Dr, numBlocks, T] of [[512, 64, 3, 130], [128, 3, 2, 40], [256, 0, 1, 5], [128, 32, 1, 1]])
          it(`latentCacheWrite then latentCacheRead ${dtype}${ue8m0 ? ' ue8m0' : ''} C=${C} Dr=${Dr}, ${T} rows (seed ${r.seed})`, async () => {
            const W = ops.latentCacheRowBytes(C, Dr, dtype);
            const init = Uint8Array.from({ length: numBlocks * 64 * W }, () => r.int(0, 256));
            // Groups of very different magnitudes, an all-zero group (the amax floor), a few specials.
            const latent = Float32Array.from({ length: T * C }, (_, i) => {
              if (i < 128) return 0;
              if (i % 71 === 9) return [-0, 448, -1e-30, Infinity, NaN][(i / 71) % 5 | 0];
              return roundTo(dtype, r.normal() * 10 ** ((Math.floor(i / 128) % 5) - 2));
            });
            const kPe = Float32Array.from({ length: T * Dr }, () => roundTo(dtype, r.normal()));
            const slots = slotsFor(T, numBlocks);
            const readSlots = Int32Array.from({ length: T + 5 }, () => r.int(0, numBlocks * 64));
            const run = (d: string) => {
              const cache = tensor(init, { shape: [numBlocks, 64, W], dtype: 'u8', device: d });
              using lt = tensor(latent, { shape: [T, C], dtype, device: d });
              using pt = tensor(kPe, { shape: [T, Dr], dtype, device: d });
              using st = tensor(slots, { device: d });
              ops.latentCacheWrite(cache, lt, pt, st, { scaleFmt: ue8m0 ? 'ue8m0' : null });
              using rs = tensor(readSlots, { device: d });
              return { cache, read: ops.latentCacheRead(cache, rs, C, Dr, dtype) };
            };
            const a = run('cpu'), b = run(device);
            await expectSameBytes([['cache', a.cache, b.cache]]);
            // Reads of rows holding ±inf scales (written from ±inf inputs, or the random bytes of
            // unwritten slots) give NaN (0 · inf), whose bf16 bits are not part of the contract (the
            // CPU keeps the payload, a GPU gives its canonical NaN): every other value exactly.
            expect(b.read.shape).toEqual(a.read.shape);
            const [want, got] = [await a.read.toFloat32Array(), await b.read.toFloat32Array()];
            for (let i = 0; i < want.length; ++i)
              if (!(Object.is(got[i], want[i]) || (Number.isNaN(got[i]) && Number.isNaN(want[i])))) expect({ i, got: got[i] }).toEqual({ i, got: want[i] });
            for (const o of [a, b]) for (const t of Object.values(o)) t.dispose();
          });

    it('a slot outside the cache fails at the next sync point, naming the op and the slot; a write with one writes nothing', async () => {
      const W = ops.latentCacheRowBytes(128, 2, 'bf16');
      using paged = tensor(new Float32Array(2 * 64 * 4).fill(1), { shape: [2, 64, 4], device });
      using latentCache = tensor(new Uint8Array(64 * W).fill(7), { shape: [1, 64, W], dtype: 'u8', device });
      using rows = tensor(new Float32Array(3 * 4).fill(5), { shape: [3, 4], device });
      using latent = tensor(new Float32Array(3 * 128).fill(2), { shape: [3, 128], dtype: 'bf16', device });
      using kPe = tensor(new Float32Array(3 * 2).fill(3), { shape: [3, 2], dtype: 'bf16', device });
      using bad = tensor(new Int32Array([4, 128, 9]), { device });
      ops.pagedWrite(paged, rows, bad);
      await expect(paged.read()).rejects.toThrow('pagedWrite: slot 128 is out of range [0, 128)');
      expect(Array.from(await paged.toFloat32Array()).every((v) => v === 1)).toBe(true);
      using g = ops.pagedGather(paged, bad);
      await expect(g.read()).rejects.toThrow('pagedGather: slot 128 is out of range [0, 128)');
      using badLatent = tensor(new Int32Array([4, -3, 9]), { device });
      ops.latentCacheWrite(latentCache, latent, kPe, badLatent);
      await expect(latentCache.read()).rejects.toThrow('latentCacheWrite: slot -3 is out of range [0, 64)');
      expect((await latentCache.read<'u8'>()).every((v) => v === 7)).toBe(true);
      using lr = ops.latentCacheRead(latentCache, badLatent, 128, 2, 'bf16');
      await expect(lr.read()).rejects.toThrow('latentCacheRead: slot -3 is out of range [0, 64)');
      // The device works on after the errors.
      using good = tensor(new Int32Array([4, 5, 9]), { device });
      using ok = ops.pagedGather(paged, good);
      expect(Array.from(await ok.toFloat32Array())).toEqual(new Array(12).fill(1));
    });
  });
}
