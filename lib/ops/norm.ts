/**
 * Normalisations over the last dimension, computed in f32 and rounded to the input's dtype
 * (the reference's RMSNorm: `weight * (x * rsqrt(mean(x²) + eps))`).
 */
import { handleOf, type Tensor, wrap } from '../runtime/tensor.js';
import { native } from '../runtime/native.js';

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
