/** Shared test helpers: seeded random inputs, float64 reference rounding, the devices to run on. */
import { expect } from 'vitest';

import { devices, opDevices, type Tensor } from '../lib/index.js';

/** A small seeded PRNG (mulberry32); every suite logs its seed so a failure can be replayed with
 *  TEST_SEED=<seed>. */
export function rng(seed = process.env.TEST_SEED ? Number(process.env.TEST_SEED) : (Date.now() ^ (Math.random() * 0x7fffffff)) >>> 0) {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    seed,
    next,
    /** Uniform in [lo, hi). */
    uniform: (lo = -1, hi = 1) => lo + (hi - lo) * next(),
    /** Standard normal (Box–Muller). */
    normal: () => Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next()),
    int: (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo)),
    floats(n: number, scale = 1) {
      const a = new Float32Array(n);
      for (let i = 0; i < n; ++i) a[i] = this.normal() * scale;
      return a;
    },
  };
}
export type Rng = ReturnType<typeof rng>;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Rounds to the nearest bf16 (ties to even), as a number. */
export function roundBf16(x: number): number {
  f32[0] = x;
  let u = u32[0];
  if ((u & 0x7fffffff) > 0x7f800000) return NaN;
  u = (u + 0x7fff + ((u >>> 16) & 1)) >>> 0;
  u32[0] = (u >>> 16) << 16;
  return f32[0];
}

/** Rounds to the nearest f16 (ties to even), as a number, via Math.fround-free exact arithmetic. */
export function roundF16(x: number): number {
  if (!Number.isFinite(x)) return x;
  const a = Math.abs(x);
  if (a >= 65520) return Math.sign(x) * Infinity;
  const e = a < 2 ** -14 ? -14 : Math.floor(Math.log2(a));
  const ulp = 2 ** (e - 10);
  return Math.sign(x) * roundHalfEven(a / ulp) * ulp;
}

export function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** Rounds to the nearest f8 E4M3 value (ties to even, saturating at ±448). */
export function roundE4m3(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const a = Math.min(Math.abs(x), 448);
  const e = a < 2 ** -6 ? -6 : Math.floor(Math.log2(a));
  const ulp = 2 ** (e - 3);
  return Math.sign(x) * Math.min(448, roundHalfEven(a / ulp) * ulp);
}

export function roundTo(dtype: string, x: number): number {
  switch (dtype) {
    case 'bf16': return roundBf16(x);
    case 'f16': return roundF16(x);
    case 'f8e4m3': return roundE4m3(x);
    case 'f32': return Math.fround(x);
    default: return x;
  }
}

/** The largest |a - b| over the arrays, and where. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): { diff: number; index: number } {
  let diff = 0, index = -1;
  for (let i = 0; i < a.length; ++i) {
    const d = Math.abs(a[i] - b[i]);
    if (d > diff || Number.isNaN(d)) { diff = d; index = i; }
  }
  return { diff, index };
}

/** ‖x − ref‖ / ‖ref‖: how the golden logits are compared, per step and row. */
export function relL2(x: ArrayLike<number>, ref: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < ref.length; ++i) {
    num += (x[i] - ref[i]) ** 2;
    den += ref[i] ** 2;
  }
  return Math.sqrt(num / den);
}

export function median(a: readonly number[]): number {
  const s = [...a].sort((p, q) => p - q);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/**
 * Devices the op suites run on: the CPU and cuda:0. The CUDA suite appears as skipped, with the
 * reason, where there is no usable CUDA device or where one of `ops` has no CUDA kernel in the
 * loaded build (the addon's opDevices list). Under the cuda-emu build (the cuda-emu vitest project)
 * only the cuda:0 suites are defined: the CPU suites run in the cpu project.
 */
export function suiteDevices(...ops: string[]): { device: string; skip: string | false }[] {
  const all = devices().filter((d) => d.kind === 'cuda');
  const cuda = all.filter((d) => d.supported !== false);
  const list = opDevices();
  const missing = ops.filter((op) => !(list[op] ?? []).includes('cuda'));
  const emu = process.env.DEEPSEEK_NATIVE_BUILD === 'cuda-emu';
  const skip = !cuda.length
    ? all.length
      ? `no CUDA GPU this build can run on (${all[0].name}: ${all[0].unsupported})`
      : 'no CUDA GPU present (or the addon was built without CUDA)'
    : missing.length
      ? `${missing.join(', ')} ${missing.length > 1 ? 'have' : 'has'} no CUDA kernel in this build`
      : false;
  const gpu: { device: string; skip: string | false } = { device: cuda.length ? cuda[0].name : 'cuda:0', skip };
  return emu ? [gpu] : [{ device: 'cpu', skip: false }, gpu];
}

/** The ops with a CUDA kernel in a CUDA build (the addon's opDevices list must say exactly these). */
export const CUDA_OPS = [
  'actQuant', 'add', 'argmax', 'bmmHeads', 'cast', 'concat', 'embedding', 'fp8Dequant', 'fp8Gemm', 'gatherRows',
  'gemm', 'groupedFp8Gemm', 'hadamard', 'indexerScores', 'latentCacheRead', 'latentCacheWrite', 'layerNorm',
  'maskedGroupedFp8Gemm', 'mlaDecode', 'mlaPrefill', 'moeCombine', 'moeDispatch', 'moeRoute', 'mul', 'pagedGather',
  'pagedWrite', 'rmsNorm', 'rope', 'sample', 'sampleRows', 'scale', 'silu', 'slice', 'swiglu', 'topK', 'transpose',
];

/** The value of an E4M3 (fn) code, decoded independently of the addon (NaN for 0x7f / 0xff). */
export function e4m3Value(c: number): number {
  const sign = c & 0x80 ? -1 : 1;
  const e = (c >> 3) & 15, m = c & 7;
  if (e === 15 && m === 7) return NaN;
  return sign * (e === 0 ? m * 2 ** -9 : (1 + m / 8) * 2 ** (e - 7));
}

/** Expects each pair (reference, result) to hold the same shape, dtype and bytes, naming the first
 *  byte that differs. */
export async function expectSameBytes(pairs: [string, Tensor, Tensor][]): Promise<void> {
  const bytesOf = async (t: Tensor) => {
    const a = await t.read();
    return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  };
  for (const [what, a, b] of pairs) {
    expect(b.shape, what).toEqual(a.shape);
    expect(b.dtype, what).toBe(a.dtype);
    const [x, y] = [await bytesOf(a), await bytesOf(b)];
    if (!x.equals(y)) {
      let i = 0;
      while (x[i] === y[i]) ++i;
      expect({ what, byte: i, got: y[i] }).toEqual({ what, byte: i, got: x[i] });
    }
  }
}
