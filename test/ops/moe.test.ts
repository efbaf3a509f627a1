import { describe, expect, it } from 'vitest';

import { ops, tensor } from '../../lib/index.js';
import { type Rng, rng, roundTo } from '../helpers.js';
import { expectSameAsPieces, missingPath, onEveryPath, onPath, type Path, PATHS } from './cpu-paths.js';


// ---------------------------------------------------------------- moeRoute

interface RouteConfig {
  E: number;
  topk: number;
  nGroups: number;
  topkGroups: number;
  scoreFunc: 'sigmoid' | 'softmax';
  routeScale: number;
  normalize: boolean;
  bias: boolean;
}

/** float64 DeepSeek Gate for one token; also the smallest gap at each decision (to skip near-ties). */
function gateRef(logits: ArrayLike<number>, bias: ArrayLike<number> | null, c: RouteConfig): { ids: number[]; weights: number[]; margin: number } {
  const E = c.E;
  let scores: number[];
  if (c.scoreFunc === 'sigmoid') scores = Array.from(logits, (l) => 1 / (1 + Math.exp(-l)));
  else {
    const mx = Math.max(...Array.from(logits));
    const ex = Array.from(logits, (l) => Math.exp(l - mx));
    const sum = ex.reduce((a, b) => a + b, 0);
    scores = ex.map((v) => v / sum);
  }
  const chosen = scores.map((s, e) => s + (bias ? bias[e] : 0));
  let margin = Infinity;
  const eligible = new Array<boolean>(E).fill(true);
  if (c.nGroups > 1) {
    const gs = E / c.nGroups;
    const groupScores = Array.from({ length: c.nGroups }, (_, g) => {
      const v = chosen.slice(g * gs, (g + 1) * gs).sort((a, b) => b - a);
      return bias ? v[0] + v[1] : v[0];
    });
    const order = groupScores.map((s, g) => ({ s, g })).sort((a, b) => b.s - a.s || a.g - b.g);
    margin = Math.min(margin, order[c.topkGroups - 1].s - (order[c.topkGroups]?.s ?? -Infinity));
    const kept = new Set(order.slice(0, c.topkGroups).map((o) => o.g));
    for (let e = 0; e < E; ++e) eligible[e] = kept.has(Math.floor(e / gs));
  }
  const ranked = chosen
    .map((s, e) => ({ s, e }))
    .filter((o) => eligible[o.e])
    .sort((a, b) => b.s - a.s || a.e - b.e);
  for (let j = 0; j + 1 < ranked.length && j < c.topk; ++j) margin = Math.min(margin, ranked[j].s - ranked[j + 1].s);
  const ids = ranked.slice(0, c.topk).map((o) => o.e);
  let weights = ids.map((e) => scores[e]);
  if (c.normalize) {
    const sum = weights.reduce((a, b) => a + b, 0);
    weights = weights.map((w) => w / sum);
  }
  return { ids, weights: weights.map((w) => w * c.routeScale), margin };
}

const ROUTES: [string, RouteConfig][] = [
  ['DeepSeek-V3 (sigmoid, bias, 8 groups of 32, 4 kept, top 8)', { E: 256, topk: 8, nGroups: 8, topkGroups: 4, scoreFunc: 'sigmoid', routeScale: 2.5, normalize: true, bias: true }],
  ['DeepSeek-V2 (softmax, no bias, group max, 8 groups of 20, 3 kept, top 6)', { E: 160, topk: 6, nGroups: 8, topkGroups: 3, scoreFunc: 'softmax', routeScale: 16, normalize: false, bias: false }],
  ['softmax, one group, top 6 of 64', { E: 64, topk: 6, nGroups: 1, topkGroups: 1, scoreFunc: 'softmax', routeScale: 1, normalize: false, bias: false }],
  ['sigmoid with bias, one group, odd E = 7, top 3', { E: 7, topk: 3, nGroups: 1, topkGroups: 1, scoreFunc: 'sigmoid', routeScale: 1.5, normalize: true, bias: true }],
  ['sigmoid with bias, groups of 2, topk = all eligible', { E: 10, topk: 4, nGroups: 5, topkGroups: 2, scoreFunc: 'sigmoid', routeScale: 1, normalize: true, bias: true }],
  ['sigmoid with bias, E = 300 (more than 16 vectors), 6 groups of 50, 3 kept, top 8', { E: 300, topk: 8, nGroups: 6, topkGroups: 3, scoreFunc: 'sigmoid', routeScale: 1, normalize: true, bias: true }],
  ['softmax with bias and groups, top 1', { E: 48, topk: 1, nGroups: 4, topkGroups: 1, scoreFunc: 'softmax', routeScale: 1, normalize: false, bias: true }],
];

describe('moeRoute on cpu', () => {
  const r = rng();
  for (const [name, c] of ROUTES) {
    for (const T of [1, 37]) {
      it(`${name}, T = ${T}: exact ids and f32 weights vs float64, same on every path (seed ${r.seed})`, async () => {
        const bias = c.bias ? r.floats(c.E, 0.05) : null;
        const logits = new Float32Array(T * c.E);
        const want: ReturnType<typeof gateRef>[] = [];
        for (let t = 0; t < T; ++t) {
          // Redraw a token whose decisions have a near-tie (closer than f32 rounding could split).
          for (;;) {
            const row = r.floats(c.E, 2);
            const ref = gateRef(row, bias, c);
            if (ref.margin > 1e-5) {
              logits.set(row, t * c.E);
              want.push(ref);
              break;
            }
          }
        }
        using lt = tensor(logits, { shape: [T, c.E] });
        using bt = bias ? tensor(bias) : null;
        const opts = { topk: c.topk, nGroups: c.nGroups, topkGroups: c.topkGroups, scoreFunc: c.scoreFunc, routeScale: c.routeScale, normalize: c.normalize };
        const results: { path: Path; ids: Int32Array; weights: Float32Array }[] = [];
        for (const path of PATHS) {
          if (missingPath(path)) continue;
          const got = await onPath(path, async () => {
            const { ids, weights } = ops.moeRoute(lt, bt, opts);
            using i = ids;
            using w = weights;
            expect(i.shape).toEqual([T, c.topk]);
            expect(i.dtype).toBe('i32');
            expect(w.dtype).toBe('f32');
            return { path, ids: await i.read<'i32'>(), weights: await w.read<'f32'>() };
          });
          if (got) results.push(got);
        }
        for (const got of results) {
          for (let t = 0; t < T; ++t) {
            expect({ path: got.path, t, ids: Array.from(got.ids.subarray(t * c.topk, (t + 1) * c.topk)) }).toEqual({ path: got.path, t, ids: want[t].ids });
            for (let j = 0; j < c.topk; ++j) {
              const w = want[t].weights[j], g = got.weights[t * c.topk + j];
              // exp within a few ulp, then a sum over ≤ 256 terms and two roundings.
              if (!(Math.abs(g - w) <= 2e-6 * Math.abs(w) + 1e-12)) expect({ path: got.path, t, j, got: g }).toEqual({ path: got.path, t, j, got: w });
            }
          }
          expect(Array.from(got.weights)).toEqual(Array.from(results[0].weights));
        }
      });
    }
  }

  it('breaks ties by lower group, then lower expert id', async () => {
    // Equal logits: every group scores the same, so groups 0 and 1 are kept; ids 0…3 in order.
    using lt = tensor(new Float32Array(2 * 16), { shape: [2, 16] });
    using zero = tensor(new Float32Array(16));
    const opts = { topk: 4, nGroups: 4, topkGroups: 2, scoreFunc: 'sigmoid', routeScale: 1, normalize: true } as const;
    for (const bias of [null, zero]) {
      const { ids, weights } = ops.moeRoute(lt, bias, opts);
      using i = ids;
      using w = weights;
      expect(Array.from(await i.read<'i32'>())).toEqual([0, 1, 2, 3, 0, 1, 2, 3]);
      expect(Array.from(await w.read<'f32'>())).toEqual(new Array(8).fill(0.25));
    }
    // A tie inside the top-k: experts 5 and 2 score the same; the lower id comes first.
    const row = new Float32Array(8).fill(-3);
    row[5] = 1;
    row[2] = 1;
    row[7] = 2;
    using lt2 = tensor(row, { shape: [1, 8] });
    const { ids, weights } = ops.moeRoute(lt2, null, { ...opts, nGroups: 1, topkGroups: 1, topk: 3, normalize: false });
    using i2 = ids;
    weights.dispose();
    expect(Array.from(await i2.read<'i32'>())).toEqual([7, 2, 5]);
  });

  it('chooses by the biased scores and weighs by the unbiased ones', async () => {
    const logits = Float32Array.from([0, 1, 2, 3]);
    const bias = Float32Array.from([10, 0, 0, 0]);
    using lt = tensor(logits, { shape: [1, 4] });
    using bt = tensor(bias);
    const { ids, weights } = ops.moeRoute(lt, bt, { topk: 2, nGroups: 1, topkGroups: 1, scoreFunc: 'sigmoid', routeScale: 2, normalize: false });
    using i = ids;
    using w = weights;
    expect(Array.from(await i.read<'i32'>())).toEqual([0, 3]);
    const got = await w.read<'f32'>();
    expect(got[0]).toBeCloseTo(2 * 0.5, 6);
    expect(got[1]).toBeCloseTo(2 / (1 + Math.exp(-3)), 6);
  });

  it('rejects bad arguments with the op, argument, expected and received', () => {
    using lt = tensor(r.floats(2 * 16), { shape: [2, 16] });
    using b8 = tensor(r.floats(8));
    using lb = tensor(r.floats(2 * 16), { shape: [2, 16], dtype: 'bf16' });
    const ok = { topk: 4, nGroups: 4, topkGroups: 2, scoreFunc: 'sigmoid', routeScale: 1, normalize: true } as const;
    expect(() => ops.moeRoute(lt, null, { ...ok, topk: 17 })).toThrow('moeRoute: expected an integer between 1 and 16 for topk but received 17');
    expect(() => ops.moeRoute(lt, null, { ...ok, nGroups: 3 })).toThrow('moeRoute: nGroups (3) must divide the 16 experts');
    expect(() => ops.moeRoute(lt, null, { ...ok, topkGroups: 5 })).toThrow('moeRoute: expected an integer between 1 and 4 for topkGroups but received 5');
    expect(() => ops.moeRoute(lt, null, { ...ok, topk: 9 })).toThrow('moeRoute: topk (9) must be at most topkGroups · experts / nGroups = 8');
    expect(() => ops.moeRoute(lt, b8, ok)).toThrow('moeRoute: bias must have shape [16] but received [8]');
    expect(() => ops.moeRoute(lb, null, ok)).toThrow('moeRoute: logits must have dtype f32 but received bf16');
    using b16 = tensor(r.floats(16));
    expect(() => ops.moeRoute(lt, b16, { ...ok, nGroups: 16, topkGroups: 4 })).toThrow(
      'moeRoute: with a bias, each group scores the sum of its top 2, so groups need at least 2 experts but hold 1',
    );
    // @ts-expect-error not a score function
    expect(() => ops.moeRoute(lt, null, { ...ok, scoreFunc: 'relu' })).toThrow("moeRoute: scoreFunc must be 'sigmoid' or 'softmax' but received 'relu'");
    // @ts-expect-error missing normalize
    expect(() => ops.moeRoute(lt, null, { ...ok, normalize: undefined })).toThrow('moeRoute: expected a boolean for normalize but received undefined');
    // @ts-expect-error not an object
    expect(() => ops.moeRoute(lt, null, 8)).toThrow('moeRoute: expected an object for options but received 8 of type number');
  });
});

// ---------------------------------------------------------------- moeDispatch + gatherRows

function dispatchRef(ids: Int32Array, k: number, E: number): { tokenOfRow: number[]; rowOfSlot: number[]; offsets: number[] } {
  const slots = Array.from(ids, (e, s) => ({ e, s })).sort((a, b) => a.e - b.e || a.s - b.s);
  const rowOfSlot = new Array<number>(ids.length);
  slots.forEach((o, row) => (rowOfSlot[o.s] = row));
  const offsets = new Array<number>(E + 1).fill(0);
  for (const e of ids) offsets[e + 1]++;
  for (let e = 0; e < E; ++e) offsets[e + 1] += offsets[e];
  return { tokenOfRow: slots.map((o) => Math.floor(o.s / k)), rowOfSlot, offsets };
}

/** Distinct experts per token, as a router gives (skewed toward low ids so some experts get none). */
function routedIds(r: Rng, T: number, k: number, E: number): Int32Array {
  const ids = new Int32Array(T * k);
  for (let t = 0; t < T; ++t) {
    const seen = new Set<number>();
    for (let j = 0; j < k; ++j) {
      let e;
      do e = Math.floor(E * r.next() ** 2);
      while (seen.has(e));
      seen.add(e);
      ids[t * k + j] = e;
    }
  }
  return ids;
}

describe('moeDispatch / gatherRows on cpu', () => {
  const r = rng();
  for (const [T, k, E] of [[1, 1, 1], [1, 8, 256], [37, 8, 256], [5, 3, 7], [3000, 8, 256]] as const) {
    it(`dispatch T = ${T}, k = ${k}, E = ${E} is a stable sort by expert (seed ${r.seed})`, async () => {
      const ids = routedIds(r, T, k, E);
      // Repeats inside a token are legal too: they keep slot order.
      if (k > 1) ids[1] = ids[0];
      using it = tensor(ids, { shape: [T, k] });
      const d = ops.moeDispatch(it, E);
      using tokenOfRow = d.tokenOfRow;
      using rowOfSlot = d.rowOfSlot;
      using offsets = d.offsets;
      const want = dispatchRef(ids, k, E);
      expect(tokenOfRow.shape).toEqual([T * k]);
      expect(offsets.shape).toEqual([E + 1]);
      expect(Array.from(await tokenOfRow.read<'i32'>())).toEqual(want.tokenOfRow);
      expect(Array.from(await rowOfSlot.read<'i32'>())).toEqual(want.rowOfSlot);
      expect(Array.from(await offsets.read<'i32'>())).toEqual(want.offsets);
    });
  }

  it('rejects bad arguments with the op, argument, expected and received', () => {
    using f = tensor(new Float32Array(4), { shape: [2, 2] });
    using flat = tensor(Int32Array.from([0, 1]));
    using ids = tensor(Int32Array.from([0, 1, 2, 3]), { shape: [2, 2] });
    expect(() => ops.moeDispatch(f, 4)).toThrow('moeDispatch: ids must have dtype i32 but received f32');
    expect(() => ops.moeDispatch(flat, 4)).toThrow('moeDispatch: ids must have 2 dimensions but received shape [2]');
    expect(() => ops.moeDispatch(ids, 0)).toThrow('moeDispatch: expected an integer between 1 and 2147483646 for numExperts but received 0');
    expect(() => ops.moeDispatch(ids, 2.5)).toThrow('moeDispatch: expected an integer between 1 and 2147483646 for numExperts but received 2.5');
  });

  it('rejects an expert id outside [0, numExperts) when it runs', async () => {
    using ids = tensor(Int32Array.from([0, 1, 2, 3, 4, 300]), { shape: [2, 3] });
    const d = ops.moeDispatch(ids, 256);
    using a = d.tokenOfRow;
    d.rowOfSlot.dispose();
    d.offsets.dispose();
    await expect(a.read()).rejects.toThrow('moeDispatch: expert id 300 of token 1 (choice 2) is outside the 256 experts');
    using neg = tensor(Int32Array.from([-1]), { shape: [1, 1] });
    const d2 = ops.moeDispatch(neg, 4);
    using a2 = d2.tokenOfRow;
    d2.rowOfSlot.dispose();
    d2.offsets.dispose();
    await expect(a2.read()).rejects.toThrow('moeDispatch: expert id -1 of token 0 (choice 0) is outside the 4 experts');
  });

  for (const dtype of ['bf16', 'f32', 'i32', 'f8e4m3'] as const) {
    it(`gatherRows ${dtype} copies rows exactly (seed ${r.seed})`, async () => {
      const [T, D, R] = [9, 33, 20];
      const data = dtype === 'i32' ? Int32Array.from({ length: T * D }, () => r.int(-99, 99)) : r.floats(T * D).map((v) => roundTo(dtype, v));
      const index = Int32Array.from({ length: R }, () => r.int(0, T));
      using x = tensor(data, { shape: [T, D], dtype });
      using idx = tensor(index);
      using y = ops.gatherRows(x, idx);
      expect(y.shape).toEqual([R, D]);
      expect(y.dtype).toBe(dtype);
      const got = dtype === 'i32' ? await y.read<'i32'>() : await y.toFloat32Array();
      for (let i = 0; i < R; ++i)
        expect(Array.from(got.subarray(i * D, (i + 1) * D))).toEqual(Array.from(data.subarray(index[i] * D, (index[i] + 1) * D)));
    });
  }

  it('gatherRows rejects bad arguments and out-of-range indices', async () => {
    using x = tensor(r.floats(12), { shape: [3, 4] });
    using flat = tensor(r.floats(12));
    using fi = tensor(r.floats(2));
    using bad = tensor(Int32Array.from([0, 2, 3]));
    expect(() => ops.gatherRows(flat, bad)).toThrow('gatherRows: x must have 2 dimensions but received shape [12]');
    expect(() => ops.gatherRows(x, fi)).toThrow('gatherRows: index must have dtype i32 but received f32');
    using y = ops.gatherRows(x, bad);
    await expect(y.read()).rejects.toThrow('gatherRows: row index 3 at position 2 is outside the 3 rows of x');
  });
});

// ---------------------------------------------------------------- swiglu

describe('swiglu on cpu', () => {
  const r = rng();
  for (const inType of ['bf16', 'f32'] as const) {
    for (const outType of [undefined, 'bf16', 'f32'] as const) {
      for (const [R, I] of [[1, 1], [1, 2048], [3, 17], [7, 100]] as const) {
        it(`${inType} -> ${outType ?? 'default'} [${R}, ${2 * I}] within f32 rounding of float64, same on every path (seed ${r.seed})`, async () => {
          const xs = r.floats(R * 2 * I, 3).map((v) => roundTo(inType, v));
          if (R * I > 4) xs.set([roundTo(inType, -100), roundTo(inType, 100), 0], 0);
          using x = tensor(xs, { shape: [R, 2 * I], dtype: inType });
          const dtype = outType ?? inType;
          const got = await onEveryPath(() => {
            const y = ops.swiglu(x, outType);
            expect(y.shape).toEqual([R, I]);
            expect(y.dtype).toBe(dtype);
            return y;
          });
          for (let row = 0; row < R; ++row) {
            for (let i = 0; i < I; ++i) {
              const g = xs[row * 2 * I + i], u = xs[row * 2 * I + I + i];
              const want = (g / (1 + Math.exp(-g))) * u;
              const tol = Math.abs(want) * (dtype === 'f32' ? 8e-7 : 2 ** -8 + 8e-7) + 1e-36;
              const v = got[row * I + i];
              if (!(Math.abs(v - want) <= tol)) expect({ row, i, g, u, got: v, want, tol }).toBe('within tol');
            }
          }
        });
      }
    }
  }

  it('rejects bad arguments with the op, argument, expected and received', () => {
    using odd = tensor(r.floats(15), { shape: [3, 5] });
    using flat = tensor(r.floats(16));
    using h = tensor(r.floats(16), { shape: [2, 8], dtype: 'f16' });
    using x = tensor(r.floats(16), { shape: [2, 8] });
    expect(() => ops.swiglu(odd)).toThrow('swiglu: the last dimension of gateUp (gate and up halves) must be even but received shape [3, 5]');
    expect(() => ops.swiglu(flat)).toThrow('swiglu: gateUp must have 2 dimensions but received shape [16]');
    expect(() => ops.swiglu(h)).toThrow('swiglu: gateUp must have dtype f32 or bf16 but received f16');
    expect(() => ops.swiglu(x, 'i32')).toThrow('swiglu: outDtype must be f32 or bf16 but received i32');
  });
});

// ---------------------------------------------------------------- moeCombine

describe('moeCombine on cpu', () => {
  const r = rng();

  /** The reference's sum, emulated in f32 exactly, and the same sum in float64. */
  function combineRef(
    eo: Float32Array, D: number, rowOfSlot: Int32Array, w: Float32Array, ids: Int32Array, shared: Float32Array | null, k: number, T: number,
  ): { f32: Float64Array; f64: Float64Array } {
    const f32 = new Float64Array(T * D), f64 = new Float64Array(T * D);
    for (let t = 0; t < T; ++t) {
      const order = Array.from({ length: k }, (_, j) => j).sort((a, b) => ids[t * k + a] - ids[t * k + b] || a - b);
      for (let i = 0; i < D; ++i) {
        let a = 0, b = 0;
        for (const j of order) {
          const e = eo[rowOfSlot[t * k + j] * D + i], wj = w[t * k + j];
          a = Math.fround(a + Math.fround(wj * e));
          b += wj * e;
        }
        if (shared) {
          a = Math.fround(a + shared[t * D + i]);
          b += shared[t * D + i];
        }
        f32[t * D + i] = a;
        f64[t * D + i] = b;
      }
    }
    return { f32, f64 };
  }

  for (const eType of ['bf16', 'f32'] as const) {
    for (const outType of ['bf16', 'f32'] as const) {
      for (const sharedType of [null, 'bf16', 'f32'] as const) {
        for (const [T, k, D] of [[1, 1, 1], [1, 8, 7168], [5, 8, 100], [13, 3, 64], [4, 6, 17]] as const) {
          it(`expertOut ${eType}, shared ${sharedType ?? 'none'} -> ${outType}, T = ${T}, k = ${k}, D = ${D} (seed ${r.seed})`, async () => {
            const E = 32;
            const ids = routedIds(r, T, k, E);
            const { rowOfSlot: ros } = dispatchRef(ids, k, E);
            const rowOfSlot = Int32Array.from(ros);
            const R = T * k;
            const eo = r.floats(R * D).map((v) => roundTo(eType, v));
            const w = r.floats(T * k).map((v) => Math.abs(v) / 3);
            const sh = sharedType ? r.floats(T * D).map((v) => roundTo(sharedType, v)) : null;
            using eot = tensor(eo, { shape: [R, D], dtype: eType });
            using rt = tensor(rowOfSlot);
            using wt = tensor(w, { shape: [T, k] });
            using it = tensor(ids, { shape: [T, k] });
            using st = sh ? tensor(sh, { shape: [T, D], dtype: sharedType! }) : null;
            const got = await onEveryPath(() => {
              const y = ops.moeCombine(eot, rt, wt, it, st, outType);
              expect(y.shape).toEqual([T, D]);
              expect(y.dtype).toBe(outType);
              return y;
            });
            const want = combineRef(eo, D, rowOfSlot, w, ids, sh, k, T);
            for (let i = 0; i < T * D; ++i) {
              // Bit-exact against the reference's f32 order of operations…
              const exact = roundTo(outType, want.f32[i]);
              if (got[i] !== exact) expect({ i, got: got[i] }).toEqual({ i, got: exact });
              // …and within f32 summation error (plus one output rounding) of float64.
              const mag = Math.abs(want.f64[i]) + 1;
              const tol = outType === 'f32' ? 1e-6 * mag * k : (2 ** -8 + 1e-6 * k) * mag;
              if (!(Math.abs(got[i] - want.f64[i]) <= tol)) expect({ i, got: got[i], want: want.f64[i] }).toBe('within tol');
            }
          });
        }
      }
    }
  }

  it('rejects bad arguments and out-of-range rows', async () => {
    using eo = tensor(r.floats(8 * 4), { shape: [8, 4] });
    using ros = tensor(Int32Array.from([0, 1, 2, 3]));
    using ros3 = tensor(Int32Array.from([0, 1, 2]));
    using w = tensor(r.floats(4), { shape: [2, 2] });
    using ids = tensor(Int32Array.from([0, 1, 0, 1]), { shape: [2, 2] });
    using ids3 = tensor(Int32Array.from([0, 1, 2]), { shape: [1, 3] });
    using sh = tensor(r.floats(2 * 5), { shape: [2, 5] });
    expect(() => ops.moeCombine(eo, ros3, w, ids, null, 'bf16')).toThrow('moeCombine: rowOfSlot must have shape [4] but received [3]');
    expect(() => ops.moeCombine(eo, ros, w, ids3, null, 'bf16')).toThrow('moeCombine: ids must have shape [2, 2] but received [1, 3]');
    expect(() => ops.moeCombine(eo, ros, w, ids, sh, 'bf16')).toThrow('moeCombine: shared must have shape [2, 4] but received [2, 5]');
    expect(() => ops.moeCombine(eo, ros, ids, ids, null, 'bf16')).toThrow('moeCombine: weights must have dtype f32 but received i32');
    expect(() => ops.moeCombine(eo, ros, w, ids, null, 'f16')).toThrow('moeCombine: outDtype must be f32 or bf16 but received f16');
    using far = tensor(Int32Array.from([0, 1, 8, 3]));
    using y = ops.moeCombine(eo, far, w, ids, null, 'f32');
    await expect(y.read()).rejects.toThrow('moeCombine: rowOfSlot[2] = 8 is outside the 8 rows of expertOut');
  });
});

// ---------------------------------------------------------------- the whole layer

describe('MoE layer on cpu: route → dispatch → gather → experts → combine', () => {
  const r = rng();
  it(`matches a float64 DeepSeekMoE with toy experts (seed ${r.seed})`, async () => {
    const [T, D, E] = [23, 40, 16];
    const c: RouteConfig = { E, topk: 4, nGroups: 4, topkGroups: 2, scoreFunc: 'sigmoid', routeScale: 2.5, normalize: true, bias: true };
    const x = r.floats(T * D);
    const bias = r.floats(E, 0.05);
    const logits = new Float32Array(T * E);
    const want: ReturnType<typeof gateRef>[] = [];
    for (let t = 0; t < T; ++t) {
      for (;;) {
        const row = r.floats(E, 2);
        const ref = gateRef(row, bias, c);
        if (ref.margin > 1e-5) {
          logits.set(row, t * E);
          want.push(ref);
          break;
        }
      }
    }
    // Toy expert e: y = x · (1 + e / 8), computed on the host in f32.
    const expertScale = (e: number) => 1 + e / 8;
    using xt = tensor(x, { shape: [T, D] });
    using lt = tensor(logits, { shape: [T, E] });
    using bt = tensor(bias);
    const { ids, weights } = ops.moeRoute(lt, bt, { topk: c.topk, nGroups: c.nGroups, topkGroups: c.topkGroups, scoreFunc: 'sigmoid', routeScale: 2.5, normalize: true });
    using idsT = ids;
    using wT = weights;
    const d = ops.moeDispatch(idsT, E);
    using tokenOfRow = d.tokenOfRow;
    using rowOfSlot = d.rowOfSlot;
    using offsets = d.offsets;
    using rows = ops.gatherRows(xt, tokenOfRow);
    const [rowsHost, offs] = [await rows.read<'f32'>(), await offsets.read<'i32'>()];
    const outHost = new Float32Array(rowsHost.length);
    for (let e = 0; e < E; ++e)
      for (let row = offs[e]; row < offs[e + 1]; ++row)
        for (let i = 0; i < D; ++i) outHost[row * D + i] = rowsHost[row * D + i] * expertScale(e);
    using expertOut = tensor(outHost, { shape: [T * c.topk, D] });
    using y = ops.moeCombine(expertOut, rowOfSlot, wT, idsT, xt, 'f32');
    const got = await y.read<'f32'>();
    for (let t = 0; t < T; ++t) {
      for (let i = 0; i < D; ++i) {
        let ref = x[t * D + i];  // shared expert: identity
        want[t].ids.forEach((e, j) => (ref += want[t].weights[j] * x[t * D + i] * expertScale(e)));
        const g = got[t * D + i];
        if (!(Math.abs(g - ref) <= 1e-5 * (Math.abs(ref) + 1))) expect({ t, i, got: g }).toEqual({ t, i, got: ref });
      }
    }
  });
});

describe('MoE kernels with large outputs (16 MiB and more: non-temporal stores)', () => {
  const r = rng();
  it(`swiglu bf16 [2201, 7626] gives the bytes of small runs on every path (seed ${r.seed})`, async () => {
    const [R, I] = [2201, 3813];
    using x = tensor(r.floats(R * 2 * I, 2), { shape: [R, 2 * I], dtype: 'bf16' });
    await expectSameAsPieces(R, 500, (s, c) => {
      using xs = x.rows(s, c);
      return [ops.swiglu(xs)];
    });
  });

  it(`gatherRows bf16 with rows of 7402 bytes gives the bytes of small runs (seed ${r.seed})`, async () => {
    const [T, D, R] = [700, 3701, 2301];
    using x = tensor(r.floats(T * D), { shape: [T, D], dtype: 'bf16' });
    using index = tensor(Int32Array.from({ length: R }, () => r.int(0, T)));
    await expectSameAsPieces(R, 500, (s, c) => {
      using idx = index.rows(s, c);
      return [ops.gatherRows(x, idx)];
    });
  });

  for (const D of [7168, 7001]) {
    it(`moeCombine bf16, T = 1200, k = 2, D = ${D} gives the bytes of small runs on every path (seed ${r.seed})`, async () => {
      const [T, k, E] = [1200, 2, 16];
      const ids = routedIds(r, T, k, E);
      const rowOfSlot = Int32Array.from(dispatchRef(ids, k, E).rowOfSlot);
      using eo = tensor(r.floats(T * k * D), { shape: [T * k, D], dtype: 'bf16' });
      using sh = tensor(r.floats(T * D), { shape: [T, D], dtype: 'bf16' });
      using rt = tensor(rowOfSlot);
      using wt = tensor(r.floats(T * k), { shape: [T, k] });
      using it = tensor(ids, { shape: [T, k] });
      await expectSameAsPieces(T, 300, (s, c) => {
        using ros = rt.rows(s * k, c * k);
        using w = wt.rows(s, c);
        using i = it.rows(s, c);
        using shared = sh.rows(s, c);
        return [ops.moeCombine(eo, ros, w, i, shared, 'bf16')];
      });
    });
  }
});
