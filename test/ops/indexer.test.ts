import { describe, expect, it } from 'vitest';

import { ops, tensor } from '../../lib/index.js';
import { rng } from '../helpers.js';
import { indexerProblem, onSimdPath, SIMD_PATHS } from './attention-helpers.js';

describe('indexerScores on cpu', () => {
  const r = rng();
  const configs = [
    { name: 'T=1 Hi=1, one key', H: 1, D: 16, lengths: [1], queries: [[0, 0]], maxKeys: 1 },
    { name: 'odd sizes, ragged batch, blocks crossed', H: 5, D: 24, lengths: [130, 65, 3], queries: [[0, 129], [1, 64], [2, 2], [0, 63]], maxKeys: 150 },
    { name: 'Hi=20 Di=40', H: 20, D: 40, lengths: [200], queries: [[0, 199], [0, 64]], maxKeys: 200 },
    { name: 'model widths Hi=64 Di=128', H: 64, D: 128, lengths: [600, 300], queries: [[0, 599], [1, 299], [0, 511]], maxKeys: 640 },
    { name: 'Hi=70 (two head chunks) Di=33', H: 70, D: 33, lengths: [90], queries: [[0, 89]], maxKeys: 100 },
  ];
  for (let i = 0; i < 2; ++i) {
    const lengths = Array.from({ length: r.int(1, 4) }, () => r.int(1, 300));
    const queries = Array.from({ length: r.int(1, 5) }, () => {
      const seq = r.int(0, lengths.length);
      return [seq, r.int(0, lengths[seq])];
    });
    const [H, D] = [r.int(1, 80), r.int(1, 150)];
    const maxKeys = Math.max(...queries.map((q) => q[1])) + 1 + r.int(0, 50);
    configs.push({ name: `random shapes Hi=${H} Di=${D} lengths=${lengths} queries=${JSON.stringify(queries)} maxKeys=${maxKeys}`, H, D, lengths, queries, maxKeys });
  }
  for (const c of configs) {
    it(`${c.name}: float64 reference on every SIMD path (seed ${r.seed})`, async () => {
      const { H, D, maxKeys } = c;
      const { T, numBlocks, maxBlocks, table, kCache, kScales, q, weights, seqIdx, qPos, want, bound } = indexerProblem(r, c);
      using qT = tensor(q, { shape: [T, H, D], dtype: 'f8e4m3' });
      using wT = tensor(weights, { shape: [T, H] });
      using kT = tensor(kCache, { shape: [numBlocks, 64, D], dtype: 'f8e4m3' });
      using ksT = tensor(kScales, { shape: [numBlocks, 64] });
      using tableT = tensor(table, { shape: [c.lengths.length, maxBlocks] });
      using seqT = tensor(seqIdx);
      using posT = tensor(qPos);
      for (const path of SIMD_PATHS) {
        await onSimdPath(path, async (used) => {
          using out = ops.indexerScores(qT, wT, kT, ksT, tableT, seqT, posT, maxKeys);
          expect(out.shape).toEqual([T, maxKeys]);
          expect(out.dtype).toBe('f32');
          const got = await out.read<'f32'>();
          for (let i = 0; i < want.length; ++i) {
            const tol = bound[i] * 2 ** -19;
            const ok = want[i] === -Infinity ? got[i] === -Infinity : Math.abs(got[i] - want[i]) <= tol;
            if (!ok) expect({ path: used, t: Math.floor(i / maxKeys), s: i % maxKeys, got: got[i] }).toEqual({ path: used, t: Math.floor(i / maxKeys), s: i % maxKeys, got: want[i] });
          }
        });
      }
    });
  }

  it('checks ids and maxKeys when it runs', async () => {
    using q = tensor(new Uint8Array(2 * 2 * 8), { shape: [2, 2, 8], dtype: 'f8e4m3' });
    using w = tensor(new Float32Array(4), { shape: [2, 2] });
    using k = tensor(new Uint8Array(3 * 64 * 8), { shape: [3, 64, 8], dtype: 'f8e4m3' });
    using ks = tensor(new Float32Array(3 * 64), { shape: [3, 64] });
    using table = tensor(new Int32Array([2, 0, 7, 1]), { shape: [2, 2] });
    const run = async (seq: number[], pos: number[], maxKeys: number) => {
      using s = tensor(new Int32Array(seq));
      using p = tensor(new Int32Array(pos));
      using out = ops.indexerScores(q, w, k, ks, table, s, p, maxKeys);
      return out.read();
    };
    await expect(run([0, 2], [1, 1], 128)).rejects.toThrow('indexerScores: seqIdx[1] = 2 is out of range [0, 2)');
    await expect(run([0, 1], [1, 128], 200)).rejects.toThrow('indexerScores: qPos[1] = 128 is out of range [0, 128)');
    await expect(run([0, 0], [1, 70], 64)).rejects.toThrow('indexerScores: qPos[1] = 70 needs maxKeys > 70 but maxKeys is 64');
    await expect(run([0, 1], [1, 1], 64)).rejects.toThrow('indexerScores: blockTable[1, 0] = 7 is out of range [0, 3)');
    await expect(run([0, 0], [127, 1], 128)).resolves.toBeDefined();
  });

  it('rejects bad arguments with the op, argument, expected and received', () => {
    using q = tensor(new Uint8Array(2 * 2 * 8), { shape: [2, 2, 8], dtype: 'f8e4m3' });
    using qB = tensor(new Uint16Array(2 * 2 * 8), { shape: [2, 2, 8], dtype: 'bf16' });
    using w = tensor(new Float32Array(4), { shape: [2, 2] });
    using w3 = tensor(new Float32Array(6), { shape: [2, 3] });
    using k = tensor(new Uint8Array(3 * 64 * 8), { shape: [3, 64, 8], dtype: 'f8e4m3' });
    using k16 = tensor(new Uint8Array(3 * 64 * 16), { shape: [3, 64, 16], dtype: 'f8e4m3' });
    using ks = tensor(new Float32Array(3 * 64), { shape: [3, 64] });
    using ks2 = tensor(new Float32Array(2 * 64), { shape: [2, 64] });
    using table = tensor(new Int32Array(4), { shape: [2, 2] });
    using v2 = tensor(new Int32Array(2));
    expect(() => ops.indexerScores(qB, w, k, ks, table, v2, v2, 64)).toThrow('indexerScores: q must have dtype f8e4m3 but received bf16');
    expect(() => ops.indexerScores(q, w3, k, ks, table, v2, v2, 64)).toThrow('indexerScores: weights must have shape [2, 2] but received [2, 3]');
    expect(() => ops.indexerScores(q, w, k16, ks, table, v2, v2, 64)).toThrow('indexerScores: kCache must have size 8 in dimension 2 but received shape [3, 64, 16]');
    expect(() => ops.indexerScores(q, w, k, ks2, table, v2, v2, 64)).toThrow('indexerScores: kScales must have shape [3, 64] but received [2, 64]');
    expect(() => ops.indexerScores(q, w, k, ks, table, v2, v2, 0)).toThrow('indexerScores: expected an integer between 1 and 2147483648 for maxKeys but received 0');
  });
});

/**
 * torch.topk's selection on the CPU, written out independently: (value, index) pairs ordered by
 * `greater` with NaN first, through libstdc++'s std::partial_sort (heap select) when k·64 ≤ n and
 * std::nth_element (introselect) otherwise; the selected set listed by value (NaN first), then index.
 */
type Pair = [number, number];
const greater = (x: Pair, y: Pair) => (Number.isNaN(x[0]) && !Number.isNaN(y[0])) || x[0] > y[0];
const swapAt = (q: Pair[], i: number, j: number) => ([q[i], q[j]] = [q[j], q[i]]);

function pushHeap(q: Pair[], first: number, hole: number, top: number, value: Pair): void {
  let parent = Math.floor((hole - 1) / 2);
  while (hole > top && greater(q[first + parent], value)) {
    q[first + hole] = q[first + parent];
    hole = parent;
    parent = Math.floor((hole - 1) / 2);
  }
  q[first + hole] = value;
}
function adjustHeap(q: Pair[], first: number, hole: number, len: number, value: Pair): void {
  const top = hole;
  let child = hole;
  while (child < Math.floor((len - 1) / 2)) {
    child = 2 * (child + 1);
    if (greater(q[first + child], q[first + child - 1])) child--;
    q[first + hole] = q[first + child];
    hole = child;
  }
  if ((len & 1) === 0 && child === Math.floor((len - 2) / 2)) {
    child = 2 * (child + 1);
    q[first + hole] = q[first + child - 1];
    hole = child - 1;
  }
  pushHeap(q, first, hole, top, value);
}
function heapSelect(q: Pair[], first: number, middle: number, last: number): void {
  const len = middle - first;
  if (len >= 2) for (let parent = Math.floor((len - 2) / 2); ; parent--) {
    adjustHeap(q, first, parent, len, q[first + parent]);
    if (parent === 0) break;
  }
  for (let i = middle; i < last; ++i)
    if (greater(q[i], q[first])) {
      const v = q[i];
      q[i] = q[first];
      adjustHeap(q, first, 0, len, v);
    }
}
function nthElement(q: Pair[], nth: number): void {
  let first = 0, last = q.length, depth = 2 * Math.floor(Math.log2(last));
  while (last - first > 3) {
    if (depth === 0) {
      heapSelect(q, first, nth + 1, last);
      swapAt(q, first, nth);
      return;
    }
    --depth;
    const mid = first + Math.floor((last - first) / 2), a = first + 1, c = last - 1;
    if (greater(q[a], q[mid])) {
      if (greater(q[mid], q[c])) swapAt(q, first, mid);
      else if (greater(q[a], q[c])) swapAt(q, first, c);
      else swapAt(q, first, a);
    } else if (greater(q[a], q[c])) swapAt(q, first, a);
    else if (greater(q[mid], q[c])) swapAt(q, first, c);
    else swapAt(q, first, mid);
    let lo = first + 1, hi = last;
    for (;;) {
      while (greater(q[lo], q[first])) ++lo;
      --hi;
      while (greater(q[first], q[hi])) --hi;
      if (!(lo < hi)) break;
      swapAt(q, lo, hi);
      ++lo;
    }
    if (lo <= nth) first = lo;
    else last = lo;
  }
  for (let i = first + 1; i < last; ++i) {
    const v = q[i];
    let j = i;
    while (j > first && greater(v, q[j - 1])) {
      q[j] = q[j - 1];
      --j;
    }
    q[j] = v;
  }
}
function topKRef(row: Float32Array, k: number, n: number): number[] {
  const q: Pair[] = Array.from({ length: n }, (_, i) => [row[i], i]);
  const take = Math.min(k, n);
  if (take > 0) {
    if (take * 64 <= n) heapSelect(q, 0, take, n);
    else nthElement(q, take - 1);
  }
  const chosen = q.slice(0, take).sort((x, y) => (greater(x, y) ? -1 : greater(y, x) ? 1 : x[1] - y[1]));
  const out = chosen.map((p) => p[1]);
  while (out.length < k) out.push(-1);
  return out;
}

describe('topK on cpu', () => {
  const r = rng();
  const cases = [
    { T: 1, S: 1, k: 1, lengths: false },
    { T: 3, S: 50, k: 7, lengths: false },
    { T: 4, S: 40, k: 64, lengths: false },  // k > S: -1 padding
    { T: 5, S: 300, k: 17, lengths: true },
    { T: 2, S: 16384, k: 2048, lengths: true },
    { T: 3, S: 4096, k: 8, lengths: true }, // k·64 <= n: the partial-sort path
  ];
  for (const c of cases) {
    it(`[${c.T}, ${c.S}] k=${c.k}${c.lengths ? ' with lengths' : ''}: the set torch.topk selects, with ties, -inf and NaN (seed ${r.seed})`, async () => {
      // Few distinct values, so ties are common; some -inf (masked keys), an occasional NaN.
      const scores = Float32Array.from({ length: c.T * c.S }, () => {
        const u = r.next();
        return u < 0.1 ? -Infinity : u < 0.11 ? NaN : u < 0.12 ? (r.next() < 0.5 ? 0 : -0) : r.int(-20, 20) / 4;
      });
      const lengths = Int32Array.from({ length: c.T }, (_, t) => (!c.lengths ? c.S : t === 0 ? 0 : t === 1 ? c.S : r.int(0, c.S + 1)));
      using s = tensor(scores, { shape: [c.T, c.S] });
      using l = c.lengths ? tensor(lengths) : undefined;
      using out = ops.topK(s, c.k, l);
      expect(out.shape).toEqual([c.T, c.k]);
      expect(out.dtype).toBe('i32');
      const got = await out.read<'i32'>();
      for (let t = 0; t < c.T; ++t) {
        const want = topKRef(scores.subarray(t * c.S, (t + 1) * c.S), c.k, lengths[t]);
        expect({ t, got: Array.from(got.subarray(t * c.k, (t + 1) * c.k)) }).toEqual({ t, got: want });
      }
    });
  }

  it('checks lengths when it runs, and rejects bad arguments', async () => {
    using s = tensor(new Float32Array(6), { shape: [2, 3] });
    using l = tensor(new Int32Array([3, 4]));
    using out = ops.topK(s, 2, l);
    await expect(out.read()).rejects.toThrow('topK: lengths[1] = 4 is out of range [0, 3]');
    using l3 = tensor(new Int32Array(3));
    using si = tensor(new Int32Array(6), { shape: [2, 3] });
    expect(() => ops.topK(s, 0)).toThrow('topK: expected an integer between 1 and 2147483647 for k but received 0');
    expect(() => ops.topK(s, 2, l3)).toThrow('topK: lengths must have shape [2] but received [3]');
    expect(() => ops.topK(si, 2)).toThrow('topK: scores must have dtype f32 but received i32');
  });
});
