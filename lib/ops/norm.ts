/**
 * Normalisations over the last dimension, computed in f32 and rounded to the input's dtype
 * (the reference's RMSNorm: `weight * (x * rsqrt(mean(x²) + eps))`).
 */
import { handleOf, type Tensor, wrap } from '../runtime/tensor.js';
import { native } from '../runtime/native.js';
import { type FusedQuantOptions, fusedQuantArg } from './quant.js';

/**
 * RMSNorm.
 * @param x `[..., dim]` f32 | bf16 | f16
 * @param weight `[dim]` f32 | bf16
 * @returns `[..., dim]`, dtype of x
 */
export function rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor {
  return wrap(native().ops.rmsNorm(handleOf(x, 'rmsNorm', 'x'), handleOf(weight, 'rmsNorm', 'weight'), eps));
}

/**
 * The reference's fused residual RMSNorm: `sum = x + residual` (in f32), then RMSNorm of `sum`.
 * @param x `[..., dim]` f32 | bf16 | f16
 * @param residual `[..., dim]`, dtype of x
 * @param weight `[dim]` f32 | bf16
 * @returns `out` = RMSNorm(sum) and `residual` = sum, both `[..., dim]` rounded to x's dtype
 */
export function addRmsNorm(x: Tensor, residual: Tensor, weight: Tensor, eps: number): { out: Tensor; residual: Tensor } {
  const [out, sum] = native().ops.rmsNorm(
    handleOf(x, 'addRmsNorm', 'x'),
    handleOf(weight, 'addRmsNorm', 'weight'),
    eps,
    handleOf(residual, 'addRmsNorm', 'residual'),
  );
  return { out: wrap(out), residual: wrap(sum) };
}

/**
 * RMSNorm whose kernel also quantises its output for the FP8 linears that read it: the same `out`
 * as `rmsNorm`, and `codes` / `scales` with the bits of `actQuant(out, { blockSize: 128, scaleFmt })`,
 * in one pass over the rows.
 * @param x `[..., dim]` f32 | bf16, dim a multiple of 128
 * @param weight `[dim]` f32 | bf16
 * @returns `out` `[..., dim]` (x's dtype), `codes` `[..., dim]` f8e4m3, `scales` `[..., dim / 128]` f32
 */
export function rmsNormQuant(x: Tensor, weight: Tensor, eps: number, options: FusedQuantOptions = {}): { out: Tensor; codes: Tensor; scales: Tensor } {
  const ue8m0 = fusedQuantArg('rmsNormQuant', options);
  const [out, codes, scales] = native().ops.rmsNorm(handleOf(x, 'rmsNormQuant', 'x'), handleOf(weight, 'rmsNormQuant', 'weight'), eps, undefined, ue8m0);
  return { out: wrap(out), codes: wrap(codes), scales: wrap(scales) };
}

/**
 * `addRmsNorm` whose kernel also quantises `out` as `rmsNormQuant` does.
 * @param x `[..., dim]` f32 | bf16, dim a multiple of 128
 * @param residual `[..., dim]`, dtype of x
 * @param weight `[dim]` f32 | bf16
 * @returns `out`, `residual` (as addRmsNorm), `codes` `[..., dim]` f8e4m3, `scales` `[..., dim / 128]` f32
 */
export function addRmsNormQuant(
  x: Tensor,
  residual: Tensor,
  weight: Tensor,
  eps: number,
  options: FusedQuantOptions = {},
): { out: Tensor; residual: Tensor; codes: Tensor; scales: Tensor } {
  const ue8m0 = fusedQuantArg('addRmsNormQuant', options);
  const [out, sum, codes, scales] = native().ops.rmsNorm(
    handleOf(x, 'addRmsNormQuant', 'x'),
    handleOf(weight, 'addRmsNormQuant', 'weight'),
    eps,
    handleOf(residual, 'addRmsNormQuant', 'residual'),
    ue8m0,
  );
  return { out: wrap(out), residual: wrap(sum), codes: wrap(codes), scales: wrap(scales) };
}

/**
 * LayerNorm (torch `F.layer_norm(x.float(), …).type_as(x)`): mean and biased variance in f32,
 * `y = (x − mean) / sqrt(var + eps) · weight + bias`, rounded to x's dtype.
 * @param x `[..., dim]` f32 | bf16
 * @param weight `[dim]` f32 | bf16
 * @param bias `[dim]` f32 | bf16, or null for none
 * @returns `[..., dim]`, dtype of x
 */
export function layerNorm(x: Tensor, weight: Tensor, bias: Tensor | null, eps: number): Tensor {
  return wrap(
    native().ops.layerNorm(
      handleOf(x, 'layerNorm', 'x'),
      handleOf(weight, 'layerNorm', 'weight'),
      bias === null ? null : handleOf(bias, 'layerNorm', 'bias'),
      eps,
    ),
  );
}
