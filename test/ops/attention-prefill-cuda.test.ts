/**
 * mlaPrefill on a CUDA device (the emulated cuda:0 in CI) against the float64 reference of the CPU
 * suite (attention-helpers.ts: prefillRef, attendRef and its tolerance) and against the CPU op.
 * Shapes are small (every CUDA thread is a fiber on the emulator) but cover what the kernel's work
 * split can get wrong: T = 1 and odd T (a last block of fewer than 16 queries), blocks of several
 * heads (T < 16) and head counts that leave a last head group short (H = 20 with T = 1, H = 16 with
 * T = 3), S not a multiple of the 8-key tile, the model's widths (128 + 64 / 128) and odd ones,
 * Dn = 0 / Dr = 0, causal chunks against cached keys (T < S), shuffled positions, index lists with
 * -1 padding, repeats, keys beyond qPos and more entries than a warp, and bf16 score rounding.
 * Dense bf16 at Dn + Dr = 192, Dv = 128 runs the tensor-core kernel (64 queries, 64-key tiles: T = 70
 * and S = 135 cross both, Dn = 150 moves the k_nope / kPe seam, shuffled positions vary the causal
 * mask inside a tile); everything else the SIMT one.
 *
 * Bounds: `tolerance` bounds |kernel − float64 reference| for any kernel computing the contract in
 * f32 (summation order, the output's rounding, P's bf16 rounding flips where P lies within f32 noise
 * of a midpoint); CUDA and CPU each meet it, so they differ by at most twice it.
 */
import { describe, expect, it } from 'vitest';

import { ops, tensor, type Tensor } from '../../lib/index.js';
import { rng, roundTo, suiteDevices } from '../helpers.js';
import { type Act, expectClose, type PrefillProblem, prefillRef, randomIndices, tolerance } from './attention-helpers.js';

for (const { device, skip } of suiteDevices('mlaPrefill')) {
  if (device === 'cpu') continue; // this file compares a device's kernel with the float64 reference and the CPU's
  describe.skipIf(skip)(`mlaPrefill on ${device}${skip ? ` (skipped: ${skip})` : ''}`, () => {
    const r = rng();
    const configs = [
      { name: 'T=1 H=1 S=1', T: 1, H: 1, S: 1, Dn: 8, Dr: 4, Dv: 8, k: 3, qPos: (t: number) => t },
      { name: 'T=1 H=20 (two head groups), a chunk against 44 cached keys', T: 1, H: 20, S: 45, Dn: 12, Dr: 6, Dv: 10, k: 9, qPos: () => 44 },
      { name: 'causal T=S=17, odd dims (a last block of one query)', T: 17, H: 2, S: 17, Dn: 13, Dr: 5, Dv: 11, k: 6, qPos: (t: number) => t },
      { name: 'model widths Dn=128 Dr=64 Dv=128, chunked T=21 S=50', T: 21, H: 2, S: 50, Dn: 128, Dr: 64, Dv: 128, k: 37, qPos: (t: number) => 29 + t },
      { name: 'model widths, T=70 (two blocks of 64 queries) S=135 (three tiles of 64 keys)', T: 70, H: 2, S: 135, Dn: 128, Dr: 64, Dv: 128, k: 20, qPos: (t: number) => 65 + t },
      { name: 'Dn=150 Dr=42 Dv=128 (the tensor-core widths split otherwise), shuffled positions', T: 40, H: 1, S: 100, Dn: 150, Dr: 42, Dv: 128, k: 12, qPos: () => -1 },
      { name: 'T=3 H=16 (5 heads a block, a last group of one head)', T: 3, H: 16, S: 23, Dn: 16, Dr: 8, Dv: 12, k: 6, qPos: (t: number) => 20 + t },
      { name: 'shuffled positions', T: 9, H: 5, S: 30, Dn: 6, Dr: 2, Dv: 7, k: 6, qPos: () => -1 },
      { name: 'Dn=0 (RoPE part only)', T: 5, H: 3, S: 12, Dn: 0, Dr: 8, Dv: 5, k: 4, qPos: () => -1 },
      { name: 'Dr=0', T: 4, H: 2, S: 9, Dn: 10, Dr: 0, Dv: 6, k: 4, qPos: () => -1 },
    ];
    {
      const [T, H, S, Dn, Dr, Dv, k] = [r.int(1, 40), r.int(1, 20), r.int(1, 80), r.int(0, 40), r.int(0, 20), r.int(1, 40), r.int(1, 20)];
      configs.push({ name: `random shapes T=${T} H=${H} S=${S} Dn=${Dn} Dr=${Dr} Dv=${Dv} k=${k}, random positions`, T, H, S, Dn, Dr, Dv, k, qPos: () => -1 });
    }

    /** A random problem of config `c` (positions from c.qPos, or random where it gives -1). */
    function problem(c: (typeof configs)[number], dtype: Act, sparse: boolean): PrefillProblem {
      const { T, H, S, Dn, Dr, Dv, k } = c;
      const qPos = Int32Array.from({ length: T }, (_, t) => (c.qPos(t) < 0 ? r.int(0, S) : c.qPos(t)));
      const round = (a: Float32Array) => a.map((v) => roundTo(dtype, v));
      return {
        T, H, S, Dn, Dr, Dv, k, qPos,
        q: round(r.floats(T * H * (Dn + Dr))),
        kv: round(r.floats(S * H * (Dn + Dv))),
        kPe: round(r.floats(S * Dr)),
        idx: sparse ? randomIndices(r, qPos, k, S) : undefined,
      };
    }

    /** mlaPrefill of `x` on device `d`. */
    function run(x: PrefillProblem, dtype: Act, d: string, options: { scale: number; scoreDtype?: 'bf16' }): Tensor {
      const { T, H, S, Dn, Dr, Dv, k } = x;
      using qT = tensor(x.q, { shape: [T, H, Dn + Dr], dtype, device: d });
      using kvT = tensor(x.kv, { shape: [S, H, Dn + Dv], dtype, device: d });
      using kPeT = tensor(x.kPe, { shape: [S, Dr], dtype, device: d });
      using posT = tensor(x.qPos, { device: d });
      using idxT = x.idx ? tensor(x.idx, { shape: [T, k], device: d }) : undefined;
      return ops.mlaPrefill(qT, kvT, kPeT, posT, { ...options, vHeadDim: Dv, indices: idxT });
    }

    for (const dtype of ['f32', 'bf16'] as const)
      for (const sparse of [false, true])
        for (const c of configs)
          it(`${dtype} ${c.name}${sparse ? `, index lists of ${c.k}` : ''}: float64 reference and the CPU op (seed ${r.seed})`, async () => {
            const x = problem(c, dtype, sparse);
            const scale = 1.5 / Math.sqrt(Math.max(1, c.Dn + c.Dr));
            const { want, flip, maxV } = prefillRef(x, dtype, scale);
            using cpu = run(x, dtype, 'cpu', { scale });
            using out = run(x, dtype, device, { scale });
            expect(out.shape).toEqual([c.T, c.H, c.Dv]);
            expect(out.dtype).toBe(dtype);
            expect(out.device).toBe(device);
            const got = await out.toFloat32Array();
            const tol = tolerance(dtype, maxV, flip);
            expectClose(got, want, tol, { device, vs: 'float64' });
            expectClose(got, Float64Array.from(await cpu.toFloat32Array()), (w, i) => 2 * tol(want[i], i), { device, vs: 'cpu' });
          });

    for (const [T, H, S, Dn, Dr, Dv] of [[11, 3, 14, 48, 16, 8], [20, 2, 70, 128, 64, 128]]) {
      it(`scoreDtype 'bf16': s = bf16(bf16(q·k) · scale), T=${T} H=${H} S=${S} Dn=${Dn} Dr=${Dr} Dv=${Dv} (seed ${r.seed})`, async () => {
        // Small integers make every dot exact in f32, so the bf16 rounding points are deterministic;
        // dots reach the hundreds, where bf16 (8 significant bits) drops bits.
        const ints = (n: number) => Float32Array.from({ length: n }, () => r.int(-8, 9));
        const x: PrefillProblem = { T, H, S, Dn, Dr, Dv, k: 0, q: ints(T * H * (Dn + Dr)), kv: ints(S * H * (Dn + Dv)), kPe: ints(S * Dr), qPos: Int32Array.from({ length: T }, (_, t) => S - T + t) };
        const scale = 2 ** -6;
        const rne = (v: number) => roundTo('bf16', v);
        const { want, flip } = prefillRef(x, 'bf16', scale, (dot) => rne(rne(dot) * scale));
        const plain = prefillRef(x, 'bf16', scale).want;
        const tol = tolerance('bf16', 8, flip);
        expect(want.some((v, i) => Math.abs(v - plain[i]) > tol(v, i))).toBe(true); // the rounding matters here
        using out = run(x, 'bf16', device, { scale, scoreDtype: 'bf16' });
        expectClose(await out.toFloat32Array(), want, tol, { device });
      });
    }

    it('gives zeros to a query that sees no key, and handles no queries and no heads', async () => {
      using q = tensor(r.floats(2 * 3 * 6), { shape: [2, 3, 6], device });
      using kv = tensor(r.floats(5 * 3 * 8), { shape: [5, 3, 8], device });
      using kPe = tensor(r.floats(5 * 2), { shape: [5, 2], device });
      using pos = tensor(new Int32Array([1, 4]), { device });
      // Query 0 lists only keys beyond its position; query 1 sees keys 0 and 3.
      using idx = tensor(new Int32Array([-1, 3, 2, 3, -1, 0]), { shape: [2, 3], device });
      using out = ops.mlaPrefill(q, kv, kPe, pos, { scale: 1, vHeadDim: 4, indices: idx });
      const got = await out.read<'f32'>();
      expect(Array.from(got.subarray(0, 12))).toEqual(new Array(12).fill(0));
      expect(got.subarray(12).some((v) => v !== 0)).toBe(true);
      using q0 = tensor(new Float32Array(0), { shape: [0, 3, 6], device });
      using pos0 = tensor(new Int32Array(0), { device });
      using out0 = ops.mlaPrefill(q0, kv, kPe, pos0, { scale: 1, vHeadDim: 4 });
      expect(out0.shape).toEqual([0, 3, 4]);
      using qh = tensor(new Float32Array(0), { shape: [2, 0, 6], device });
      using kvh = tensor(new Float32Array(0), { shape: [5, 0, 8], device });
      using outh = ops.mlaPrefill(qh, kvh, kPe, pos, { scale: 1, vHeadDim: 4 });
      expect(outh.shape).toEqual([2, 0, 4]);
      expect((await outh.read()).length).toBe(0);
    });

    it('checks qPos and indices when it runs: the error names the op and the value, and the device works on', async () => {
      using q = tensor(r.floats(2 * 6), { shape: [2, 1, 6], device });
      using kv = tensor(r.floats(3 * 8), { shape: [3, 1, 8], device });
      using kPe = tensor(r.floats(3 * 2), { shape: [3, 2], device });
      const runWith = async (pos: number[], list?: number[]) => {
        using p = tensor(new Int32Array(pos), { device });
        using i = list ? tensor(new Int32Array(list), { shape: [2, list.length / 2], device }) : undefined;
        using out: Tensor = ops.mlaPrefill(q, kv, kPe, p, { scale: 1, vHeadDim: 4, indices: i });
        return out.read();
      };
      await expect(runWith([0, 3])).rejects.toThrow('mlaPrefill: position 3 is out of range [0, 3)');
      await expect(runWith([-1, 0])).rejects.toThrow('mlaPrefill: position -1 is out of range [0, 3)');
      await expect(runWith([0, 1], [0, 1, 3, -1])).rejects.toThrow('mlaPrefill: key index 3 is out of range [0, 3)');
      await expect(runWith([0, 1], [0, -2, 1, -1])).rejects.toThrow('mlaPrefill: key index -2 is out of range [0, 3)');
      // -1 padding and entries beyond qPos (but inside [0, S)) are fine.
      await expect(runWith([0, 1], [2, -1, 1, 2])).resolves.toBeDefined();
    });
  });
}
