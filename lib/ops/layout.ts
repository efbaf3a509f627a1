/** Layout copies. */
import { handleOf, type Tensor, wrap } from '../runtime/tensor.js';
import { native } from '../runtime/native.js';

/**
 * Swaps two dimensions into a new contiguous tensor (any dtype).
 * @param x `[..., a, ..., b, ...]`
 * @returns `[..., b, ..., a, ...]`
 */
export function transpose(x: Tensor, dim0: number, dim1: number): Tensor {
  return wrap(native().ops.transpose(handleOf(x, 'transpose', 'x'), dim0, dim1));
}
