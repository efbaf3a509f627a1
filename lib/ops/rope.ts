/**
 * Rotary position embedding (DeepSeek's YaRN-scaled RoPE): the cos/sin tables, and the rotation
 * of a range of dims of activations by each token's position.
 */
import { invalidArgument, isNonNegativeInteger, isPositiveInteger } from '../runtime/errors.js';
import { handleOf, type Tensor, tensor, wrap } from '../runtime/tensor.js';
import { native } from '../runtime/native.js';

export interface RopeTableParams {
  /** Rotated dims R (qk_rope_head_dim, 64); even. */
  ropeDim: number;
  /** Rows of the tables (max_seq_len). */
  maxPositions: number;
  /** rope_theta. */
  theta: number;
  /** YaRN scaling factor (rope_factor, 40). */
  factor: number;
  /** original_seq_len (4096): YaRN applies when maxPositions exceeds it. */
  originalMaxPositions: number;
  /** beta_fast (32). */
  betaFast: number;
  /** beta_slow (1). */
  betaSlow: number;
  /** Whether YaRN applies; default maxPositions > originalMaxPositions. A model passes its own
   *  decision (the reference decides from max_seq_len, which may exceed the rows it needs). */
  yarn?: boolean;
  /** Device of the tables; default 'cpu'. */
  device?: string;
}

function checkFinite(where: string, name: string, v: unknown, positive = false): void {
  if (typeof v !== 'number' || !Number.isFinite(v) || (positive && v <= 0))
    throw invalidArgument(where, name, positive ? 'a positive finite number' : 'a finite number', v, typeof v === 'number');
}

/**
 * The reference's precompute_freqs_cis, as cos and sin tables, every step rounded to f32 as torch
 * computes it: freq[i] = 1 / theta^(2i/R); with YaRN (maxPositions > originalMaxPositions) the
 * frequencies below the correction range are divided by `factor`, with a linear ramp between;
 * angle(t, i) = t · freq[i].
 * @returns `cos`, `sin`: `[maxPositions, ropeDim / 2]` f32
 */
export function ropeTables(p: RopeTableParams): { cos: Tensor; sin: Tensor } {
  const where = 'ropeTables';
  if (typeof p !== 'object' || p === null) throw invalidArgument(where, 'params', 'an object', p);
  const { ropeDim, maxPositions, theta, factor, originalMaxPositions, betaFast, betaSlow } = p;
  if (!isPositiveInteger(ropeDim) || ropeDim % 2 !== 0) throw invalidArgument(where, 'ropeDim', 'a positive even integer', ropeDim, typeof ropeDim === 'number');
  if (!isPositiveInteger(maxPositions)) throw invalidArgument(where, 'maxPositions', 'a positive integer', maxPositions, typeof maxPositions === 'number');
  if (!isPositiveInteger(originalMaxPositions))
    throw invalidArgument(where, 'originalMaxPositions', 'a positive integer', originalMaxPositions, typeof originalMaxPositions === 'number');
  checkFinite(where, 'theta', theta, true);
  if (theta === 1) throw invalidArgument(where, 'theta', 'a positive finite number other than 1', theta, true);
  checkFinite(where, 'factor', factor, true);
  checkFinite(where, 'betaFast', betaFast, true);
  checkFinite(where, 'betaSlow', betaSlow, true);
  const f = Math.fround;
  const half = ropeDim / 2;
  const freq = new Float32Array(half);
  for (let i = 0; i < half; ++i) freq[i] = f(1 / f(Math.pow(theta, f((2 * i) / ropeDim))));
  if (p.yarn ?? maxPositions > originalMaxPositions) {
    const corr = (rotations: number) => (ropeDim * Math.log(originalMaxPositions / (rotations * 2 * Math.PI))) / (2 * Math.log(theta));
    const low = Math.max(Math.floor(corr(betaFast)), 0);
    let high = Math.min(Math.ceil(corr(betaSlow)), ropeDim - 1);
    if (low === high) high += 0.001;
    const span = f(high - low);
    for (let i = 0; i < half; ++i) {
      const ramp = Math.min(Math.max(f(f(i - low) / span), 0), 1);
      const smooth = f(1 - ramp);
      freq[i] = f(f(f(freq[i] / f(factor)) * f(1 - smooth)) + f(freq[i] * smooth));
    }
  }
  const cos = new Float32Array(maxPositions * half);
  const sin = new Float32Array(maxPositions * half);
  for (let t = 0; t < maxPositions; ++t) {
    for (let i = 0; i < half; ++i) {
      const angle = f(t * freq[i]);
      cos[t * half + i] = Math.cos(angle);
      sin[t * half + i] = Math.sin(angle);
    }
  }
  const device = p.device ?? 'cpu';
  const cosT = tensor(cos, { shape: [maxPositions, half], dtype: 'f32', device });
  try {
    return { cos: cosT, sin: tensor(sin, { shape: [maxPositions, half], dtype: 'f32', device }) };
  } catch (e) {
    cosT.dispose();
    throw e;
  }
}

export interface RopeOptions {
  /** First rotated dim; default 0. offset + 2 · cos.shape[1] must not exceed D. */
  offset?: number;
  /** true: pairs (offset + 2i, offset + 2i + 1) (the reference's interleaved layout); false: pairs (offset + i, offset + i + R/2). */
  interleaved: boolean;
}

/**
 * Rotates dims [offset, offset + R) of each row by its token's angles (R = 2 · cos.shape[1]):
 * (x0, x1) → (x0·c − x1·s, x0·s + x1·c) in f32, rounded to x's dtype; other dims are copied.
 * @param x `[T, D]` or `[T, H, D]` bf16 | f32
 * @param positions `[T]` i32: the table row of each token (checked when the op runs: 0 ≤ p < cos.shape[0])
 * @param cos `[P, R/2]` f32 (from `ropeTables`)
 * @param sin `[P, R/2]` f32
 * @returns x's shape and dtype
 */
export function rope(x: Tensor, positions: Tensor, cos: Tensor, sin: Tensor, options: RopeOptions): Tensor {
  if (typeof options !== 'object' || options === null) throw invalidArgument('rope', 'options', 'an object { offset?, interleaved }', options);
  const offset = options.offset ?? 0;
  if (!isNonNegativeInteger(offset)) throw invalidArgument('rope', 'offset', 'a non-negative integer', offset, typeof offset === 'number');
  return wrap(
    native().ops.rope(
      handleOf(x, 'rope', 'x'),
      handleOf(positions, 'rope', 'positions'),
      handleOf(cos, 'rope', 'cos'),
      handleOf(sin, 'rope', 'sin'),
      offset,
      options.interleaved,
    ),
  );
}
