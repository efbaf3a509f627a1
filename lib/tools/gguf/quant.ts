/**
 * The element encodings the GGUF exporter writes: f32 → f16 bits (round to nearest even), and Q8_0
 * (ggml's 8-bit blocks: 32 consecutive weights of a row share one f16 scale d, each weight stored as
 * an int8 q, the weight being d·q). Also the FP8 checkpoint's weights dequantised with their
 * 128×128 block scales.
 */

const f32x = new Float32Array(1);
const u32x = new Uint32Array(f32x.buffer);

/** f32 value → f16 bits, round to nearest even; overflow to ±inf, NaN stays NaN. */
export function f16Bits(x: number): number {
  f32x[0] = x;
  const u = u32x[0];
  const sign = (u >>> 16) & 0x8000;
  const a = u & 0x7fffffff;
  if (a > 0x7f800000) return sign | 0x7e00;
  if (a >= 0x477ff000) return sign | 0x7c00; // >= 65520 rounds to inf (and inf itself)
  if (a < 0x38800000) {
    // below 2^-14: a subnormal f16, a multiple of 2^-24; the value × 2^24 is exact in a double
    const v = f32x[0] * (x < 0 ? -1 : 1) * 2 ** 24;
    const f = Math.floor(v);
    const q = v - f > 0.5 || (v - f === 0.5 && (f & 1) === 1) ? f + 1 : f;
    return sign | q;
  }
  // normal: drop 13 mantissa bits with round to nearest even, rebias the exponent (127 → 15)
  const r = (a + 0xfff + ((a >>> 13) & 1)) >>> 13;
  return sign | (r - ((127 - 15) << 10));
}

/** f16 bits → value. */
export function f16Value(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** The number of weights a Q8_0 block holds, and its bytes (f16 scale + 32 int8). */
export const Q8_0_BLOCK = 32;
export const Q8_0_BLOCK_BYTES = 34;

/**
 * `x` (rows of a multiple of 32 weights, row-major) as Q8_0 blocks. Per block: d = max|x| / 127
 * rounded to f16, then q = round(x / d) (ties away from zero) clamped to ±127. The error of a
 * weight is at most d/2 plus, where rounding d to f16 made it smaller, 127·(max|x|/127 − d).
 */
export function quantizeQ8_0(x: Float32Array | Float64Array): Uint8Array {
  if (x.length % Q8_0_BLOCK !== 0) throw new RangeError(`quantizeQ8_0: ${x.length} values is not a whole number of ${Q8_0_BLOCK}-blocks`);
  const nBlocks = x.length / Q8_0_BLOCK;
  const out = new Uint8Array(nBlocks * Q8_0_BLOCK_BYTES);
  const view = new DataView(out.buffer);
  for (let b = 0; b < nBlocks; ++b) {
    const base = b * Q8_0_BLOCK;
    let amax = 0;
    for (let i = 0; i < Q8_0_BLOCK; ++i) amax = Math.max(amax, Math.abs(x[base + i]));
    if (!Number.isFinite(amax)) throw new RangeError(`quantizeQ8_0: block ${b} holds a non-finite value`);
    const dBits = f16Bits(amax / 127);
    const d = f16Value(dBits);
    const o = b * Q8_0_BLOCK_BYTES;
    view.setUint16(o, dBits, true);
    if (d === 0) continue; // all zeros (or below f16's smallest subnormal): q = 0
    for (let i = 0; i < Q8_0_BLOCK; ++i) {
      const v = x[base + i] / d;
      const q = Math.max(-127, Math.min(127, Math.sign(v) * Math.round(Math.abs(v))));
      view.setInt8(o + 2 + i, q);
    }
  }
  return out;
}

/** Q8_0 blocks → values (the inverse of quantizeQ8_0 up to its rounding). */
export function dequantizeQ8_0(bytes: Uint8Array, count: number): Float64Array {
  if (count % Q8_0_BLOCK !== 0 || bytes.length < (count / Q8_0_BLOCK) * Q8_0_BLOCK_BYTES)
    throw new RangeError(`dequantizeQ8_0: ${bytes.length} bytes do not hold ${count} values`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float64Array(count);
  for (let b = 0; b < count / Q8_0_BLOCK; ++b) {
    const o = b * Q8_0_BLOCK_BYTES;
    const d = f16Value(view.getUint16(o, true));
    for (let i = 0; i < Q8_0_BLOCK; ++i) out[b * Q8_0_BLOCK + i] = d * view.getInt8(o + 2 + i);
  }
  return out;
}

/** `values` as f16 bits, little-endian bytes. */
export function encodeF16(values: Float32Array): Uint8Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; ++i) out[i] = f16Bits(values[i]);
  return new Uint8Array(out.buffer);
}

/** `values` as little-endian f32 bytes. */
export function encodeF32(values: Float32Array): Uint8Array {
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

/**
 * An FP8 weight [rows, cols] (its values already decoded to f32, row-major) times its block scales
 * [⌈rows/128⌉, ⌈cols/128⌉] (`weight_scale_inv`, one per 128×128 block), in place.
 */
export function applyBlockScales(values: Float32Array, rows: number, cols: number, scales: Float32Array, block = 128): Float32Array {
  const sCols = Math.ceil(cols / block);
  if (values.length !== rows * cols) throw new RangeError(`applyBlockScales: ${values.length} values for [${rows}, ${cols}]`);
  if (scales.length !== Math.ceil(rows / block) * sCols)
    throw new RangeError(`applyBlockScales: ${scales.length} scales for [${rows}, ${cols}] in ${block}×${block} blocks`);
  for (let r = 0; r < rows; ++r) {
    const sRow = Math.floor(r / block) * sCols;
    const row = r * cols;
    for (let c = 0; c < cols; ++c) values[row + c] *= scales[sRow + Math.floor(c / block)];
  }
  return values;
}
