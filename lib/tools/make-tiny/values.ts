/**
 * make-tiny's values: a seeded N(0,1) stream per tensor, the f32 -> bf16 and f32 -> E4M3 encoders,
 * and the writer of one planned tensor's bytes (FP8 weights quantised per 128×128 block).
 */
import { writeAll } from '../../io/safetensors.js';
import type { PlannedTensor } from './plan.js';

/** A seeded stream of N(0,1) samples (mulberry32 + Box–Muller), one stream per tensor. */
class Normals {
  #s: number;
  #spare = NaN;
  constructor(seed: number, name: string) {
    let h = 0x811c9dc5 ^ (seed >>> 0);
    for (let i = 0; i < name.length; ++i) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
    this.#s = (h ^ Math.imul(seed >>> 0, 0x9e3779b1)) >>> 0;
  }
  #uniform(): number {
    this.#s = (this.#s + 0x6d2b79f5) >>> 0;
    let t = this.#s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Fills `out` with mean + std·N(0,1). */
  fill(out: Float32Array, std: number, mean = 0): void {
    for (let i = 0; i < out.length; ++i) {
      if (this.#spare === this.#spare) {
        out[i] = mean + std * this.#spare;
        this.#spare = NaN;
        continue;
      }
      const r = Math.sqrt(-2 * Math.log(1 - this.#uniform()));
      const th = 2 * Math.PI * this.#uniform();
      this.#spare = r * Math.sin(th);
      out[i] = mean + std * r * Math.cos(th);
    }
  }
}

/** f32 bits -> bf16 bits, round to nearest even (NaN stays NaN). */
function bf16Bits(u: number): number {
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** f32 bits -> E4M3 (fn) code, round to nearest even, saturating at ±448 (as native/runtime/dtype.h). */
export function e4m3Code(u: number): number {
  const sign = (u >>> 24) & 0x80;
  let a = u & 0x7fffffff;
  if (a > 0x7f800000) return sign | 0x7f;
  if (a >= 0x43e00000) return sign | 0x7e; // >= 448
  if (a < 0x3c800000) {
    // below 2^-6: subnormal, a multiple of 2^-9; the value × 2^9 is exact in a double
    u32x[0] = a;
    const v = f32x[0] * 512;
    const f = Math.floor(v);
    const q = v - f > 0.5 || (v - f === 0.5 && (f & 1) === 1) ? f + 1 : f;
    return sign | q;
  }
  a = (a + 0x7ffff + ((a >>> 20) & 1)) >>> 0;
  return sign | ((a >>> 20) - (120 << 3));
}
const f32x = new Float32Array(1);
const u32x = new Uint32Array(f32x.buffer);

/** Writes one tensor's bytes to `fd`, 128 rows at a time; returns the block scales of an FP8 weight. */
export function writeTensor(fd: number, t: PlannedTensor, seed: number, scales: Map<string, Float32Array>, plan: Map<string, PlannedTensor>): void {
  const m = t.make;
  if (m.kind === 'scale') {
    let s = scales.get(m.weight);
    if (!s) {
      // The weight was not written before its scales: make it again, into nothing.
      s = quantise(plan.get(m.weight)!, seed, () => {});
    }
    writeAll(fd, new Uint8Array(s.buffer, s.byteOffset, s.byteLength));
    scales.delete(m.weight);
    return;
  }
  if (m.kind === 'fp8') {
    scales.set(t.name, quantise(t, seed, (codes) => writeAll(fd, codes)));
    return;
  }
  const rows = t.shape.length > 1 ? t.shape[0] : 1;
  const cols = t.shape.length > 1 ? t.shape.slice(1).reduce((a, b) => a * b, 1) : t.shape.reduce((a, b) => a * b, 1);
  const g = new Normals(seed, t.name);
  const stripe = Math.max(1, Math.min(rows, Math.floor((1 << 22) / Math.max(cols, 1))));
  const f = new Float32Array(stripe * cols);
  const bits = new Uint32Array(f.buffer);
  const out16 = new Uint16Array(stripe * cols);
  for (let r = 0; r < rows; r += stripe) {
    const n = Math.min(stripe, rows - r) * cols;
    const v = f.subarray(0, n);
    g.fill(v, m.std, m.mean ?? 0);
    if (t.dtype === 'f32') {
      writeAll(fd, new Uint8Array(f.buffer, 0, n * 4));
    } else {
      for (let i = 0; i < n; ++i) out16[i] = bf16Bits(bits[i]);
      writeAll(fd, new Uint8Array(out16.buffer, 0, n * 2));
    }
  }
}

/** Generates FP8 weight `t` ([N, K]) 128 rows at a time, hands each stripe's codes to `sink`, and
 *  returns the f32 scales [⌈N/128⌉, ⌈K/128⌉] (block amax / 448). */
function quantise(t: PlannedTensor, seed: number, sink: (codes: Uint8Array) => void): Float32Array {
  const [N, K] = t.shape;
  const fanIn = (t.make as { fanIn: number }).fanIn;
  const kb = Math.ceil(K / 128);
  const scales = new Float32Array(Math.ceil(N / 128) * kb);
  const g = new Normals(seed, t.name);
  const f = new Float32Array(128 * K);
  const bits = new Uint32Array(f.buffer);
  const codes = new Uint8Array(128 * K);
  const std = 1 / Math.sqrt(fanIn);
  for (let r0 = 0, rb = 0; r0 < N; r0 += 128, ++rb) {
    const rows = Math.min(128, N - r0);
    const v = f.subarray(0, rows * K);
    g.fill(v, std);
    for (let b = 0; b < kb; ++b) {
      const c0 = b * 128;
      const c1 = Math.min(K, c0 + 128);
      let amax = 0;
      for (let r = 0; r < rows; ++r)
        for (let c = r * K + c0, e = r * K + c1; c < e; ++c) {
          const a = Math.abs(v[c]);
          if (a > amax) amax = a;
        }
      const scale = Math.fround(amax > 0 ? amax / 448 : 1);
      scales[rb * kb + b] = scale;
      for (let r = 0; r < rows; ++r)
        for (let c = r * K + c0, e = r * K + c1; c < e; ++c) {
          v[c] = v[c] / scale; // rounded to f32 by the store, as the reference divides in f32
          codes[c] = e4m3Code(bits[c]);
        }
    }
    sink(codes.subarray(0, rows * K));
  }
  return scales;
}
