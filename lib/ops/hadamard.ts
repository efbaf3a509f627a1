/** The Walsh-Hadamard rotation the indexer applies to its queries and keys (rotate_activation). */
import { handleOf, type Tensor, wrap } from '../runtime/tensor.js';
import { native } from '../runtime/native.js';

/**
 * y = (H_D · x) · D^(−1/2) over the last dimension, H_D the Sylvester Hadamard matrix in natural
 * order (as fast_hadamard_transform), f32 math, rounded to x's dtype.
 * @param x `[..., D]` bf16 | f32, D a power of two ≤ 32768
 * @returns x's shape and dtype
 */
export function hadamard(x: Tensor): Tensor {
  return wrap(native().ops.hadamard(handleOf(x, 'hadamard', 'x')));
}
