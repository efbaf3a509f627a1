/**
 * The MoE layer's kernels and embedding on a CUDA device (the emulated cuda:0 in CI) against the CPU
 * ops, which their own suites check against float64: routing (ids and weights), dispatch, gather,
 * swiglu, combine and embedding give the CPU's bits exactly, on odd sizes, one token, experts with
 * no rows, every row on one expert, and ties.
 */
import { describe, expect, it } from 'vitest';

import { ops, tensor } from '../../lib/index.js';
import { expectSameBytes, rng, roundTo, suiteDevices } from '../helpers.js';

for (const { device, skip } of suiteDevices('moeRoute', 'moeDispatch', 'gatherRows', 'swiglu', 'moeCombine', 'embedding')) {
  if (device === 'cpu') continue; // this file compares a device's kernels with the CPU's
  describe.skipIf(skip)(`MoE kernels and embedding on ${device} give the CPU's bits${skip ? ` (skipped: ${skip})` : ''}`, () => {
    const r = rng();
    const on = (d: string, data: Float32Array | Int32Array, shape: number[], dtype?: 'f32' | 'bf16' | 'i32') =>
      tensor(data, { shape, device: d, ...(dtype ? { dtype } : {}) });

    const routeCases = [
      { name: 'DeepSeek-V3 routing (256 experts, 8 groups, top-4 groups, 8 a token, bias)', T: 5, E: 256, topk: 8, G: 8, TG: 4, bias: true, fn: 'sigmoid' as const },
      { name: 'one token, 16 experts, no groups, softmax', T: 1, E: 16, topk: 4, G: 1, TG: 1, bias: false, fn: 'softmax' as const },
      { name: 'odd sizes: 37 tokens, 12 experts in 3 groups, no bias', T: 37, E: 12, topk: 3, G: 3, TG: 2, bias: false, fn: 'sigmoid' as const },
      { name: 'ties: logits from 4 values', T: 9, E: 32, topk: 6, G: 4, TG: 2, bias: true, fn: 'sigmoid' as const, ties: true },
    ];
    for (const c of routeCases)
      it(`moeRoute: ${c.name} (seed ${r.seed})`, async () => {
        const logits = Float32Array.from({ length: c.T * c.E }, () => ('ties' in c ? [-1, 0, 0.5, 2][r.int(0, 4)] : r.normal() * 3));
        const bias = c.bias ? Float32Array.from({ length: c.E }, () => ('ties' in c ? 0 : r.normal() * 0.1)) : null;
        const opts = { topk: c.topk, nGroups: c.G, topkGroups: c.TG, scoreFunc: c.fn, routeScale: 2.5, normalize: c.fn === 'sigmoid' };
        const run = (d: string) => {
          using lt = on(d, logits, [c.T, c.E]);
          using bt = bias ? on(d, bias, [c.E]) : null;
          return ops.moeRoute(lt, bt, opts);
        };
        const a = run('cpu'), b = run(device);
        await expectSameBytes([['ids', a.ids, b.ids], ['weights', a.weights, b.weights]]);
        for (const t of [a.ids, a.weights, b.ids, b.weights]) t.dispose();
      });

    for (const [T, k, E, how] of [[1, 1, 1, 'one expert'], [70, 8, 64, 'random'], [33, 4, 300, 'most experts empty'], [40, 3, 16, 'every slot on expert 5']] as const)
      it(`moeDispatch T = ${T}, k = ${k}, E = ${E} (${how}), then gatherRows (seed ${r.seed})`, async () => {
        const ids = Int32Array.from({ length: T * k }, () => (how === 'every slot on expert 5' ? 5 : r.int(0, E)));
        const x = Float32Array.from({ length: T * 33 }, () => r.normal());
        const run = async (d: string) => {
          using it = on(d, ids, [T, k]);
          const out = ops.moeDispatch(it, E);
          using xt = on(d, x, [T, 33], 'bf16');
          return { ...out, rows: ops.gatherRows(xt, out.tokenOfRow) };
        };
        const a = await run('cpu'), b = await run(device);
        await expectSameBytes([['tokenOfRow', a.tokenOfRow, b.tokenOfRow], ['rowOfSlot', a.rowOfSlot, b.rowOfSlot], ['offsets', a.offsets, b.offsets], ['rows', a.rows, b.rows]]);
        for (const o of [a, b]) for (const t of Object.values(o)) t.dispose();
      });

    for (const [inType, outType, R, I] of [['bf16', 'bf16', 3, 257], ['f32', 'f32', 1, 1], ['bf16', 'f32', 17, 64], ['f32', 'bf16', 5, 1000]] as const)
      it(`swiglu ${inType} -> ${outType} [${R}, ${2 * I}], extreme gates included (seed ${r.seed})`, async () => {
        const xs = Float32Array.from({ length: R * 2 * I }, (_, i) => roundTo(inType, i % 97 === 0 ? [-120, 95, -0, 1e-30][i % 4] : r.normal() * 4));
        const run = (d: string) => {
          using x = on(d, xs, [R, 2 * I], inType);
          return ops.swiglu(x, outType);
        };
        using a = run('cpu');
        using b = run(device);
        await expectSameBytes([['out', a, b]]);
      });

    for (const [eType, sharedType, outType] of [['bf16', 'bf16', 'bf16'], ['f32', null, 'f32'], ['bf16', 'f32', 'f32']] as const)
      it(`moeCombine expertOut ${eType}, shared ${sharedType ?? 'none'} -> ${outType}, repeated experts (seed ${r.seed})`, async () => {
        const [T, k, D] = [13, 6, 71];
        const ids = Int32Array.from({ length: T * k }, () => r.int(0, 5)); // repeats: the order of equal ids is the choice index
        const rowOfSlot = Int32Array.from({ length: T * k }, () => r.int(0, T * k));
        const eo = Float32Array.from({ length: T * k * D }, () => r.normal());
        const w = Float32Array.from({ length: T * k }, () => r.normal());
        const sh = sharedType ? Float32Array.from({ length: T * D }, () => r.normal()) : null;
        const run = (d: string) => {
          using eot = on(d, eo, [T * k, D], eType);
          using rt = on(d, rowOfSlot, [T * k]);
          using wt = on(d, w, [T, k]);
          using it = on(d, ids, [T, k]);
          using st = sh ? on(d, sh, [T, D], sharedType!) : null;
          return ops.moeCombine(eot, rt, wt, it, st, outType);
        };
        using a = run('cpu');
        using b = run(device);
        await expectSameBytes([['out', a, b]]);
      });

    it(`embedding bf16 -> f32 and f32 -> bf16 (seed ${r.seed})`, async () => {
      const table = Float32Array.from({ length: 50 * 19 }, () => r.normal());
      const ids = Int32Array.from({ length: 23 }, () => r.int(0, 50));
      for (const [tt, ot] of [['bf16', 'f32'], ['f32', 'bf16']] as const) {
        const run = (d: string) => {
          using t = on(d, table, [50, 19], tt);
          using i = on(d, ids, [23]);
          return ops.embedding(t, i, ot);
        };
        using a = run('cpu');
        using b = run(device);
        await expectSameBytes([['embedding', a, b]]);
      }
    });

    it('ids and rows out of range fail at the next sync point, naming the op and the value', async () => {
      using table = on(device, new Float32Array(8), [4, 2]);
      using badIds = on(device, Int32Array.from([1, 7]), [2]);
      using e = ops.embedding(table, badIds);
      await expect(e.read()).rejects.toThrow(/embedding.*\b7\b/);
      using experts = on(device, Int32Array.from([0, 1, 9, 2]), [2, 2]);
      const d = ops.moeDispatch(experts, 4);
      await expect(d.offsets.read()).rejects.toThrow(/moeDispatch.*\b9\b/);
      for (const t of Object.values(d)) t.dispose();
      using x = on(device, new Float32Array(6), [3, 2]);
      using idx = on(device, Int32Array.from([0, -4]), [2]);
      using g = ops.gatherRows(x, idx);
      await expect(g.read()).rejects.toThrow(/gatherRows.*-4/);
      // The device works on after an error.
      using good = on(device, Int32Array.from([2, 0]), [2]);
      using ok = ops.gatherRows(x, good);
      expect(Array.from(await ok.toFloat32Array())).toEqual([0, 0, 0, 0]);
    });
  });
}
