/** Helpers shared by the attention-family suites (rope, hadamard, cache, attention, indexer). */
import { expect } from 'vitest';

import { synchronize } from '../../lib/index.js';
import { native } from '../../lib/runtime/native.js';
import { type Rng, roundE4m3, roundTo } from '../helpers.js';

export const SIMD_PATHS = ['scalar', 'avx2', 'avx512'] as const;
export type SimdPath = (typeof SIMD_PATHS)[number];

/**
 * Runs `fn` with the CPU kernels capped at `level` (the cap is read when a kernel runs, so `fn`
 * must await its results); restores 'avx512' afterwards. Passes the path actually in use.
 */
export async function onSimdPath<T>(level: SimdPath, fn: (used: string) => Promise<T>): Promise<T> {
  await synchronize('cpu');
  const used = native().setSimdCap(level);
  try {
    return await fn(used);
  } finally {
    await synchronize('cpu');
    native().setSimdCap('avx512');
  }
}

/** A random permutation of 0..n-1. */
export function shuffled(n: number, next: () => number): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; --i) {
    const j = Math.floor(next() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/** Largest |x| of an array. */
export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; ++i) m = Math.max(m, Math.abs(a[i]));
  return m;
}

export type Act = 'f32' | 'bf16';

/**
 * float64 attention of one query: softmax over the visible keys' scores, probabilities rounded to
 * the activation dtype (as the reference's scores.type_as(x)), then Σ P·v. Zeros when no key is visible.
 *
 * `flip` ([dv]) collects what rounding cannot pin down: a kernel computes P in f32, so when the
 * exact P lies within f32 noise (2^-12 relative) of a bf16 rounding midpoint, kernel and reference
 * may round it to neighbouring values one ulp apart; flip[c] += ulp(P) · |v_c| for each such P.
 */
export function attendRef(visible: number[], score: (s: number) => number, value: (s: number, c: number) => number, dv: number, dtype: Act, flip?: Float64Array): Float64Array {
  const out = new Float64Array(dv);
  if (visible.length === 0) return out;
  const sc = visible.map(score);
  const m = Math.max(...sc);
  const e = sc.map((v) => Math.exp(v - m));
  const sum = e.reduce((a, b) => a + b, 0);
  visible.forEach((s, i) => {
    const exact = e[i] / sum;
    const p = roundTo(dtype, exact);
    if (dtype === 'bf16' && flip && exact > 0) {
      const ulp = 2 ** (Math.floor(Math.log2(exact)) - 7);
      if (ulp / 2 - Math.abs(exact - p) < 2 ** -12 * exact) for (let c = 0; c < dv; ++c) flip[c] += ulp * Math.abs(value(s, c));
    }
    for (let c = 0; c < dv; ++c) out[c] += p * value(s, c);
  });
  return out;
}

/** Visible keys of a query: 0..qPos, or the listed ones (-1 padding skipped) that are <= qPos. */
export function visibleKeys(qPos: number, list?: ArrayLike<number>): number[] {
  if (!list) return Array.from({ length: qPos + 1 }, (_, s) => s);
  return [...new Set(Array.from(list).filter((s) => s >= 0 && s <= qPos))];
}

/**
 * Tolerance of output element i: f32 summation error; in bf16 also the output's rounding (up to
 * 2^-8 relative) and the probabilities whose bf16 rounding f32 noise may flip (`flip`, from
 * attendRef). Real bugs give errors of 0.1 · max|v|.
 */
export function tolerance(dtype: Act, maxV: number, flip: Float64Array): (want: number, i: number) => number {
  return dtype === 'f32' ? () => 3e-5 * maxV : (want, i) => 2 ** -8 * Math.abs(want) + 3e-5 * maxV + flip[i];
}

export function expectClose(got: Float32Array, want: Float64Array, tol: number | ((want: number, i: number) => number), what: object): void {
  const tolOf = typeof tol === 'number' ? () => tol : tol;
  let worst = 0, at = -1;
  for (let i = 0; i < want.length; ++i) {
    const d = Math.abs(got[i] - want[i]) / tolOf(want[i], i);
    if (!(d <= worst)) {
      worst = d;
      at = i;
    }
  }
  if (!(worst <= 1)) expect({ ...what, at, got: got[at], want: want[at], tol: tolOf(want[at], at) }).toEqual({ ...what, at, got: want[at], want: want[at], tol: tolOf(want[at], at) });
}

/** The inputs of one mlaPrefill problem, values already rounded to the activation dtype. */
export interface PrefillProblem {
  T: number; H: number; S: number; Dn: number; Dr: number; Dv: number;
  q: Float32Array;    // [T, H, Dn + Dr]
  kv: Float32Array;   // [S, H, Dn + Dv]
  kPe: Float32Array;  // [S, Dr]
  qPos: Int32Array;   // [T]
  idx?: Int32Array;   // [T, k]
  k: number;          // columns of idx
}

/**
 * float64 mlaPrefill (attendRef per query and head): want [T, H, Dv], the bf16 flip allowance and
 * max |v| (for `tolerance`). `score` maps the exact q·k to the score (default: q·k · scale).
 */
export function prefillRef(x: PrefillProblem, dtype: Act, scale: number, score: (dot: number) => number = (dot) => dot * scale) {
  const { T, H, S, Dn, Dr, Dv, q, kv, kPe, qPos, idx, k } = x;
  const want = new Float64Array(T * H * Dv), flip = new Float64Array(T * H * Dv);
  let maxV = 0;
  for (let s = 0; s < S; ++s) for (let h = 0; h < H; ++h) maxV = Math.max(maxV, maxAbs(kv.subarray((s * H + h) * (Dn + Dv) + Dn, (s * H + h + 1) * (Dn + Dv))));
  for (let t = 0; t < T; ++t) {
    const vis = visibleKeys(qPos[t], idx?.subarray(t * k, (t + 1) * k));
    for (let h = 0; h < H; ++h) {
      const qo = (t * H + h) * (Dn + Dr);
      const scoreOf = (s: number) => {
        const ko = (s * H + h) * (Dn + Dv);
        let acc = 0;
        for (let i = 0; i < Dn; ++i) acc += q[qo + i] * kv[ko + i];
        for (let i = 0; i < Dr; ++i) acc += q[qo + Dn + i] * kPe[s * Dr + i];
        return score(acc);
      };
      const th = t * H + h;
      want.set(attendRef(vis, scoreOf, (s, i) => kv[(s * H + h) * (Dn + Dv) + Dn + i], Dv, dtype, flip.subarray(th * Dv, (th + 1) * Dv)), th * Dv);
    }
  }
  return { want, flip, maxV };
}

/** Random -1 padded index lists: some keys <= qPos, some beyond it, repeats. */
export function randomIndices(r: Rng, qPos: ArrayLike<number>, k: number, range: number): Int32Array {
  const T = qPos.length;
  const idx = new Int32Array(T * k).fill(-1);
  for (let t = 0; t < T; ++t) {
    const n = r.int(0, k + 1);
    for (let j = 0; j < n; ++j) idx[t * k + j] = r.next() < 0.85 ? r.int(0, qPos[t] + 1) : r.int(0, range);
    if (n >= 2) idx[t * k + n - 1] = idx[t * k];  // a repeat
  }
  return idx;
}

export interface PagedCache {
  data: Float32Array;  // [numBlocks, 64, W], rounded to dtype
  numBlocks: number;
  table: Int32Array;   // [B, maxBlocks]
  maxBlocks: number;
  row: (seq: number, s: number) => number;
}

/** A paged cache holding sequences of the given lengths in shuffled blocks; unused rows hold large garbage. */
export function pagedCache(r: Rng, lengths: number[], W: number, dtype: string, fill: (seq: number, s: number, w: number) => number): PagedCache {
  const need = lengths.map((n) => Math.ceil(n / 64));
  const numBlocks = need.reduce((a, b) => a + b, 0) + 2;
  const maxBlocks = Math.max(...need) + 1;
  const perm = shuffled(numBlocks, r.next);
  const table = new Int32Array(lengths.length * maxBlocks).fill(1 << 30);  // unused entries are never followed
  let next = 0;
  need.forEach((n, b) => {
    for (let i = 0; i < n; ++i) table[b * maxBlocks + i] = perm[next++];
  });
  const data = new Float32Array(numBlocks * 64 * W).map(() => roundTo(dtype, 1000 * r.normal()));
  const row = (seq: number, s: number) => table[seq * maxBlocks + (s >> 6)] * 64 + (s & 63);
  lengths.forEach((n, seq) => {
    for (let s = 0; s < n; ++s) for (let w = 0; w < W; ++w) data[row(seq, s) * W + w] = roundTo(dtype, fill(seq, s, w));
  });
  return { data, numBlocks, table, maxBlocks, row };
}

/** Random FP8 values (as numbers) over a wide range of magnitudes, subnormals included. */
export function fp8Values(r: Rng, n: number, scale: number): Float32Array {
  return Float32Array.from({ length: n }, () => roundE4m3(r.normal() * scale * 2 ** r.int(-6, 3)));
}

/** One indexerScores problem: the queries' keys in shuffled cache blocks (unused table entries -5),
 *  random FP8 queries and keys, and the float64 scores with Σ |terms| per score (for f32 summation bounds). */
export function indexerProblem(r: Rng, c: { H: number; D: number; lengths: number[]; queries: number[][]; maxKeys: number }) {
  const { H, D, maxKeys } = c;
  const T = c.queries.length;
  const need = c.lengths.map((n) => Math.ceil(n / 64));
  const numBlocks = need.reduce((a, b) => a + b, 0) + 2, maxBlocks = Math.max(...need) + 1;
  const perm = shuffled(numBlocks, r.next);
  const table = new Int32Array(c.lengths.length * maxBlocks).fill(-5);
  let next = 0;
  need.forEach((n, b) => {
    for (let i = 0; i < n; ++i) table[b * maxBlocks + i] = perm[next++];
  });
  const kCache = fp8Values(r, numBlocks * 64 * D, 1);
  const kScales = Float32Array.from({ length: numBlocks * 64 }, () => Math.abs(r.normal()) * 0.1);
  const q = fp8Values(r, T * H * D, 2);
  const weights = Float32Array.from({ length: T * H }, () => r.normal() / Math.sqrt(H));
  const seqIdx = Int32Array.from(c.queries, (x) => x[0]);
  const qPos = Int32Array.from(c.queries, (x) => x[1]);
  const want = new Float64Array(T * maxKeys);
  const bound = new Float64Array(T * maxKeys);  // Σ |terms|, for the f32 summation tolerance
  for (let t = 0; t < T; ++t) {
    for (let s = 0; s < maxKeys; ++s) {
      if (s > qPos[t]) {
        want[t * maxKeys + s] = -Infinity;
        continue;
      }
      const row = table[seqIdx[t] * maxBlocks + (s >> 6)] * 64 + (s & 63);
      let total = 0, mag = 0;
      for (let h = 0; h < H; ++h) {
        let dot = 0, dmag = 0;
        for (let d = 0; d < D; ++d) {
          dot += q[(t * H + h) * D + d] * kCache[row * D + d];
          dmag += Math.abs(q[(t * H + h) * D + d] * kCache[row * D + d]);
        }
        total += weights[t * H + h] * Math.max(dot, 0);
        mag += Math.abs(weights[t * H + h]) * dmag;
      }
      want[t * maxKeys + s] = kScales[row] * total;
      bound[t * maxKeys + s] = kScales[row] * mag;
    }
  }
  return { T, numBlocks, maxBlocks, table, kCache, kScales, q, weights, seqIdx, qPos, want, bound };
}
