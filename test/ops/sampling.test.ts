import { describe, expect, it } from 'vitest';

import { ops, synchronize, tensor } from '../../lib/index.js';
import { native } from '../../lib/runtime/native.js';
import { handleOf, wrap } from '../../lib/runtime/tensor.js';
import { rng } from '../helpers.js';

const PATHS = ['avx512', 'avx2', 'scalar'] as const;

/** Runs fn on every SIMD path the CPU has, restoring avx512 afterwards. */
async function everyPath<T>(fn: () => Promise<T>): Promise<{ path: string; value: T }[]> {
  const out: { path: string; value: T }[] = [];
  for (const path of PATHS) {
    await synchronize('cpu');
    try {
      if (native().setSimdCap(path) !== path) continue;
      out.push({ path, value: await fn() });
    } finally {
      await synchronize('cpu');
      native().setSimdCap('avx512');
    }
  }
  return out;
}

/** float64 model of sample()'s distribution over the ids of one row. */
function sampleDist(logits: ArrayLike<number>, temperature: number, topK = 0, topP = 1): Float64Array {
  const z = Array.from(logits, (l) => Math.fround(l / temperature));
  const m = z.reduce((a, b) => (b > a ? b : a), -Infinity);
  const e = z.map((v) => Math.exp(v - m));
  let order = e.map((v, i) => ({ v, i })).sort((a, b) => b.v - a.v || a.i - b.i);
  if (topK > 0) order = order.slice(0, topK);
  if (topP < 1) {
    const total = order.reduce((s, o) => s + o.v, 0);
    let mass = 0, n = 0;
    while (n < order.length && mass < topP * total) mass += order[n++].v;
    order = order.slice(0, n);
  }
  const p = new Float64Array(logits.length);
  const total = order.reduce((s, o) => s + o.v, 0);
  for (const o of order) p[o.i] = o.v / total;
  return p;
}

function argmaxRef(row: ArrayLike<number>): number {
  let best = -Infinity, at = 0;
  for (let i = 0; i < row.length; ++i) if (row[i] > best) { best = row[i]; at = i; }
  return at;
}

async function drawIds(logits: Float32Array, B: number, V: number, opts: Parameters<typeof ops.sample>[1]): Promise<Int32Array> {
  using x = tensor(logits, { shape: [B, V] });
  using y = ops.sample(x, opts);
  expect(y.shape).toEqual([B]);
  expect(y.dtype).toBe('i32');
  return y.read<'i32'>();
}

describe('argmax on cpu', () => {
  const r = rng();
  for (const [B, V] of [[1, 1], [1, 7], [5, 17], [3, 1000], [2, 129280]] as const) {
    it(`[${B}, ${V}] with ties (lower index wins) and NaN entries, every path (seed ${r.seed})`, async () => {
      const xs = r.floats(B * V, 3);
      for (let b = 0; b < B; ++b) {
        const row = xs.subarray(b * V, (b + 1) * V);
        if (V > 4) {
          const top = row.reduce((a, b) => (b > a ? b : a), -Infinity) + 1;
          const i = r.int(1, V), j = r.int(0, i);
          row[i] = top;
          row[j] = top;  // tie: j < i wins
          row[r.int(0, V)] = NaN;
        }
      }
      const want = Array.from({ length: B }, (_, b) => argmaxRef(xs.subarray(b * V, (b + 1) * V)));
      using x = tensor(xs, { shape: [B, V] });
      for (const { path, value } of await everyPath(async () => {
        using y = ops.argmax(x);
        expect(y.shape).toEqual([B]);
        return Array.from(await y.read<'i32'>());
      }))
        expect({ path, ids: value }).toEqual({ path, ids: want });
    });
  }

  it('gives 0 for a row without a finite maximum and rejects bad arguments', async () => {
    using x = tensor(Float32Array.from([NaN, NaN, -Infinity, -Infinity, -Infinity, 5]), { shape: [3, 2] });
    using y = ops.argmax(x);
    expect(Array.from(await y.read<'i32'>())).toEqual([0, 0, 1]);
    using h = tensor(new Float32Array(4), { shape: [2, 2], dtype: 'bf16' });
    using flat = tensor(new Float32Array(4));
    expect(() => ops.argmax(h)).toThrow('argmax: logits must have dtype f32 but received bf16');
    expect(() => ops.argmax(flat)).toThrow('argmax: logits must have 2 dimensions but received shape [4]');
  });
});

describe('sample on cpu', () => {
  const r = rng();

  it(`is reproducible: the same seed gives the same ids, other seeds other ids (seed ${r.seed})`, async () => {
    const [B, V] = [64, 1000];
    const xs = r.floats(B * V, 0.5);
    const opts = { temperature: 1, seed: 12345 };
    const a = await drawIds(xs, B, V, opts);
    const b = await drawIds(xs, B, V, opts);
    const c = await drawIds(xs, B, V, { ...opts, seed: 12346 });
    expect(Array.from(b)).toEqual(Array.from(a));
    expect(Array.from(c)).not.toEqual(Array.from(a));
    // A batch of one draws as row 0 of a bigger batch does.
    const one = await drawIds(xs.subarray(0, V), 1, V, opts);
    expect(one[0]).toBe(a[0]);
    // Rows draw independently: identical rows get different ids.
    const same = new Float32Array(B * V);
    for (let i = 0; i < B; ++i) same.set(xs.subarray(0, V), i * V);
    expect(new Set(await drawIds(same, B, V, opts)).size).toBeGreaterThan(B / 2);
  });

  it(`topK = 1 and temperature 0 equal argmax (seed ${r.seed})`, async () => {
    const [B, V] = [9, 333];
    const xs = r.floats(B * V, 2);
    const want = Array.from({ length: B }, (_, b) => argmaxRef(xs.subarray(b * V, (b + 1) * V)));
    for (const temperature of [0.3, 1, 2.5]) expect(Array.from(await drawIds(xs, B, V, { temperature, topK: 1, seed: r.int(0, 1e9) }))).toEqual(want);
    expect(Array.from(await drawIds(xs, B, V, { temperature: 0, seed: 1 }))).toEqual(want);
    expect(Array.from(await drawIds(xs, B, V, { temperature: 0, topK: 50, topP: 0.5, seed: 2 }))).toEqual(want);
  });

  const configs: [number, number | undefined, number | undefined][] = [
    [1, undefined, undefined],
    [0.7, 5, undefined],
    [1.3, undefined, 0.8],
    [1, 8, 0.9],
  ];
  for (const [temperature, topK, topP] of configs) {
    it(`frequencies match the float64 distribution (chi-square), T = ${temperature}, topK = ${topK}, topP = ${topP} (seed ${r.seed})`, async () => {
      const V = 12, B = 4000, seeds = 5;
      const row = r.floats(V, 1.2);
      const p = sampleDist(row, temperature, topK, topP);
      const logits = new Float32Array(B * V);
      for (let b = 0; b < B; ++b) logits.set(row, b * V);
      const counts = new Float64Array(V);
      for (let s = 0; s < seeds; ++s) for (const id of await drawIds(logits, B, V, { temperature, topK, topP, seed: r.int(0, 2 ** 31) })) counts[id]++;
      const n = B * seeds;
      // Never an id of probability 0; ids of expected count < 5 pooled into one bucket.
      let chi = 0, df = -1, poolObs = 0, poolExp = 0;
      for (let i = 0; i < V; ++i) {
        if (p[i] === 0) {
          expect({ id: i, count: counts[i] }).toEqual({ id: i, count: 0 });
          continue;
        }
        const e = n * p[i];
        if (e < 5) {
          poolObs += counts[i];
          poolExp += e;
          continue;
        }
        chi += (counts[i] - e) ** 2 / e;
        df++;
      }
      if (poolExp > 0) {
        chi += (poolObs - poolExp) ** 2 / Math.max(poolExp, 1);
        df++;
      }
      // About the 1e-6 upper quantile of chi-square with df degrees of freedom.
      const limit = df + 7 * Math.sqrt(2 * Math.max(df, 1)) + 10;
      expect({ df, chi, ok: chi < limit }).toEqual({ df, chi, ok: true });
    });
  }

  it(`topP keeps the smallest head holding the mass and never draws the tail (seed ${r.seed})`, async () => {
    const probs = [0.5, 0.3, 0.1, 0.05, 0.03, 0.02];
    const row = Float32Array.from(probs, Math.log);
    const B = 3000;
    const logits = new Float32Array(B * probs.length);
    for (let b = 0; b < B; ++b) logits.set(row, b * probs.length);
    const seen = new Set(await drawIds(logits, B, probs.length, { temperature: 1, topP: 0.85, seed: r.int(0, 1e9) }));
    expect([...seen].sort()).toEqual([0, 1, 2]);
    const two = new Set(await drawIds(logits, B, probs.length, { temperature: 1, topP: 0.75, seed: r.int(0, 1e9) }));
    expect([...two].sort()).toEqual([0, 1]);
  });

  it(`draws only kept ids over a full vocabulary, the same on every path (seed ${r.seed})`, async () => {
    const [B, V] = [3, 129280];
    const xs = r.floats(B * V, 2);
    const opts = { temperature: 0.8, topK: 0, topP: 0.3, seed: r.int(0, 1e9) };
    using x = tensor(xs, { shape: [B, V] });
    const runs = await everyPath(async () => {
      using y = ops.sample(x, opts);
      return Array.from(await y.read<'i32'>());
    });
    for (const run of runs) expect({ path: run.path, ids: run.value }).toEqual({ path: run.path, ids: runs[0].value });
    for (let b = 0; b < B; ++b) {
      const p = sampleDist(xs.subarray(b * V, (b + 1) * V), opts.temperature, 0, opts.topP);
      expect(p[runs[0].value[b]]).toBeGreaterThan(0);
    }
  });

  it('rejects bad arguments with the op, argument, expected and received', () => {
    using x = tensor(r.floats(8), { shape: [2, 4] });
    expect(() => ops.sample(x, { temperature: -1, seed: 0 })).toThrow('sample: temperature must be >= 0 but received -1');
    expect(() => ops.sample(x, { temperature: 1, topP: 0, seed: 0 })).toThrow('sample: topP must be in (0, 1] but received 0');
    expect(() => ops.sample(x, { temperature: 1, topP: 1.5, seed: 0 })).toThrow('sample: topP must be in (0, 1] but received 1.5');
    expect(() => ops.sample(x, { temperature: 1, topK: -1, seed: 0 })).toThrow('sample: expected an integer between 0 and 2147483647 for topK but received -1');
    expect(() => ops.sample(x, { temperature: 1, seed: 0.5 })).toThrow('sample: expected an integer between -9007199254740991 and 9007199254740991 for seed but received 0.5');
    // @ts-expect-error seed is required
    expect(() => ops.sample(x, { temperature: 1 })).toThrow('sample: expected an integer for seed but received undefined');
    // @ts-expect-error not an object
    expect(() => ops.sample(x, 1)).toThrow('sample: expected an object for options but received 1 of type number');
  });
});

describe('sampleRows histories on cpu', () => {
  it("rejects an id listed twice in one row's history (its penalties would apply twice), allows it across rows", async () => {
    using x = tensor(new Float32Array([0, 1, 2, 3, 3, 2, 1, 0]), { shape: [2, 4] });
    // Greedy rows with a repetition penalty of 4: a listed id's positive logit is divided by 4.
    const params = new Float32Array([0, 0, 1, 0, 0, 0, 4, 0, 0, 1, 0, 0, 0, 4]);
    const call = (ids: number[], offsets: number[]) =>
      native().ops.sampleRows(handleOf(x, 'test', 'x'), params, new Float64Array(4), Int32Array.from(offsets), Int32Array.from(ids), new Int32Array(ids.length), -1);
    expect(() => call([1, 3, 1], [0, 3, 3])).toThrow('sampleRows: historyIds[2] repeats id 1 of row 0');
    using ids = wrap(call([3, 0], [0, 1, 2])[0]);
    // Row 0: 3 → 0.75 leaves 2 the largest; row 1: 3 → 0.75 leaves 2 (id 1) the largest.
    expect(Array.from(await ids.read<'i32'>())).toEqual([2, 1]);
  });
});
