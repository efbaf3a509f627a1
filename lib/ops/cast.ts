/** Element-wise dtype conversion. */
import { type DType, handleOf, type Tensor, wrap } from '../runtime/tensor.js';
import { native } from '../runtime/native.js';

/**
 * Converts between f32, bf16, f16 and f8e4m3 with round-to-nearest-even (f8e4m3 saturates at ±448).
 * @param x `[...]` f32 | bf16 | f16 | f8e4m3
 * @returns `[...]` of `dtype`
 */
export function cast(x: Tensor, dtype: DType): Tensor {
  return wrap(native().ops.cast(handleOf(x, 'cast', 'x'), dtype));
}
