/** Helpers shared by the attention-family suites (rope, hadamard, cache, attention, indexer). */
import { synchronize } from '../../lib/index.js';
import { native } from '../../lib/runtime/native.js';

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
