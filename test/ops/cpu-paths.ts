/** Test helpers for CPU kernels with SIMD paths: run on each path, compare outputs bit for bit. */
import { expect } from 'vitest';

import { synchronize, type Tensor } from '../../lib/index.js';
import { native } from '../../lib/runtime/native.js';

export const PATHS = ['avx512', 'avx2', 'scalar'] as const;
export type Path = (typeof PATHS)[number];

const RANK: Record<Path, number> = { scalar: 0, avx2: 1, avx512: 2 };
/** The best path this CPU has (asked once, at load, while the stream is idle). */
export const BEST_PATH = native().setSimdCap('avx512') as Path;
/** Whether the AVX512-BF16 dot-product GEMM kernels run here (true is also the default to restore). */
export const HAS_BF16_DOT: boolean = native().ops.gemmSetBf16Dot(true);

/** Why this machine cannot run `path` (for `it.skipIf` and the test's name), or false when it can. */
export function missingPath(path: Path): string | false {
  return RANK[path] > RANK[BEST_PATH] ? `this CPU lacks ${path}; its best path is ${BEST_PATH}` : false;
}

/** Why the AVX512-BF16 GEMM kernels cannot run here, or false when they can. */
export function missingBf16Dot(): string | false {
  return missingPath('avx512') || (HAS_BF16_DOT ? false : 'this CPU lacks AVX512-BF16 (vdpbf16ps)');
}

/** ` (skipped: reason)` for a test's name, or '' when it runs. */
export const skipNote = (why: string | false): string => (why ? ` (skipped: ${why})` : '');

/** Runs fn with the CPU SIMD path capped at `path`, then restores avx512. Throws when the CPU lacks
 *  that path: a test for it must be skipped with `missingPath`, never reported green. */
export async function onPath<T>(path: Path, fn: () => Promise<T>): Promise<T> {
  await synchronize('cpu');
  try {
    const now = native().setSimdCap(path);
    if (now !== path) throw new Error(`onPath: the CPU runs ${now}, not ${path}; skip this test with missingPath('${path}')`);
    return await fn();
  } finally {
    await synchronize('cpu');
    native().setSimdCap('avx512');
  }
}

/** Runs `op` on every SIMD path, checks the outputs agree bit for bit, returns the first (as f32). */
export async function onEveryPath(op: () => Tensor): Promise<Float32Array> {
  const outs: { path: Path; bits: Uint32Array; values: Float32Array }[] = [];
  for (const path of PATHS) {
    if (missingPath(path)) continue;
    const got = await onPath(path, async () => {
      using y = op();
      return y.toFloat32Array();
    });
    outs.push({ path, bits: new Uint32Array(got.buffer.slice(0)), values: got });
  }
  for (const o of outs.slice(1)) {
    const same = o.bits.every((v, i) => v === outs[0].bits[i]);
    expect({ path: o.path, sameBitsAs: outs[0].path, same }).toEqual({ path: o.path, sameBitsAs: outs[0].path, same: true });
  }
  return outs[0].values;
}

/**
 * For ops with large outputs (16 MiB and more take non-temporal stores): `run(start, count)` runs
 * the op on rows start … start + count − 1. The whole run must give the same bytes on every path,
 * and the same bytes as the op run on pieces of `piece` rows (small outputs, cached stores).
 */
export async function expectSameAsPieces(rows: number, piece: number, run: (start: number, count: number) => Tensor[]): Promise<void> {
  const whole: Buffer[] = [];
  for (const path of PATHS) {
    if (missingPath(path)) continue;
    const got = await onPath(path, async () => {
      const outs = run(0, rows);
      try {
        return await Promise.all(outs.map(async (o) => Buffer.from((await o.read()).buffer)));
      } finally {
        for (const o of outs) o.dispose();
      }
    });
    if (whole.length === 0) whole.push(...got);
    else got.forEach((b, k) => expect({ path, output: k, same: b.equals(whole[k]) }).toEqual({ path, output: k, same: true }));
  }
  const pieces: Buffer[][] = whole.map(() => []);
  for (let i = 0; i < rows; i += piece) {
    const outs = run(i, Math.min(piece, rows - i));
    for (let k = 0; k < outs.length; ++k) pieces[k].push(Buffer.from((await outs[k].read()).buffer));
    for (const o of outs) o.dispose();
  }
  pieces.forEach((p, k) => expect({ output: k, same: Buffer.concat(p).equals(whole[k]) }).toEqual({ output: k, same: true }));
}
