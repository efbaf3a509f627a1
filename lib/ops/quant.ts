/**
 * FP8 E4M3 quantisation: activations per 1×blockSize group (the reference's `act_quant`), and
 * dequantisation of block-scaled FP8 weights.
 */
import { invalidArgument, isPositiveInteger } from '../runtime/errors.js';
import { type Act, handleOf, type Tensor, wrap } from '../runtime/tensor.js';
import { native } from '../runtime/native.js';

export interface ActQuantOptions {
  /** Elements per group sharing one scale; must divide K. Default 128. */
  blockSize?: number;
  /** 'ue8m0': scales rounded up to a power of two (checkpoints with `scale_fmt: ue8m0`). Default null. */
  scaleFmt?: 'ue8m0' | null;
}

/**
 * Quantises activations to FP8 E4M3 per group of `blockSize` along the last dimension.
 * Per group: amax = max(max|x|, 1e-4); s = amax · f32(1/448) (ue8m0: the next power of two ≥ s);
 * code = e4m3(clamp(x / s, ±448)) with an f32 division and round-to-nearest-even. Bit-exact.
 * @param x `[..., K]` bf16 | f32, K a multiple of blockSize
 * @returns codes `[..., K]` f8e4m3 and scales `[..., K / blockSize]` f32 (x ≈ code · scale)
 */
export function actQuant(x: Tensor, options: ActQuantOptions = {}): { codes: Tensor; scales: Tensor } {
  if (typeof options !== 'object' || options === null) throw invalidArgument('actQuant', 'options', 'an object', options);
  const blockSize = options.blockSize ?? 128;
  if (!isPositiveInteger(blockSize)) throw invalidArgument('actQuant', 'blockSize', 'a positive integer', blockSize, true);
  const scaleFmt = options.scaleFmt ?? null;
  if (scaleFmt !== null && scaleFmt !== 'ue8m0') throw invalidArgument('actQuant', 'scaleFmt', "'ue8m0' or null", scaleFmt);
  const [codes, scales] = native().ops.actQuant(handleOf(x, 'actQuant', 'x'), blockSize, scaleFmt === 'ue8m0');
  return { codes: wrap(codes), scales: wrap(scales) };
}

/** The quantised output rmsNorm and swiglu can produce in their own kernel (`rmsNormQuant`,
 *  `addRmsNormQuant`, `swigluQuant`): actQuant of the op's output with blockSize 128. */
export interface FusedQuantOptions {
  /** 'ue8m0': scales rounded up to a power of two, as actQuant's. Default null. */
  scaleFmt?: 'ue8m0' | null;
}

/** @internal The native ops' `quant` argument (ue8m0) from the options, checked as actQuant checks them. */
export function fusedQuantArg(op: string, options: FusedQuantOptions): boolean {
  if (typeof options !== 'object' || options === null) throw invalidArgument(op, 'options', 'an object', options);
  const scaleFmt = options.scaleFmt ?? null;
  if (scaleFmt !== null && scaleFmt !== 'ue8m0') throw invalidArgument(op, 'scaleFmt', "'ue8m0' or null", scaleFmt);
  return scaleFmt === 'ue8m0';
}

/**
 * Dequantises a block-scaled FP8 weight: out[n, k] = f32(w[n, k]) · wScales[⌊n/128⌋, ⌊k/128⌋],
 * rounded once to outDtype.
 * @param w `[N, K]` f8e4m3
 * @param wScales `[⌈N/128⌉, ⌈K/128⌉]` f32
 * @returns `[N, K]` of outDtype
 */
export function fp8Dequant(w: Tensor, wScales: Tensor, outDtype: Act): Tensor {
  return wrap(native().ops.fp8Dequant(handleOf(w, 'fp8Dequant', 'w'), handleOf(wScales, 'fp8Dequant', 'wScales'), outDtype));
}
