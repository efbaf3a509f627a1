/**
 * Element-wise ops with f32 math (the output takes the first input's dtype) and copies along a
 * dimension; the same bits on the CPU and on CUDA devices.
 */
import { invalidArgument } from '../runtime/errors.js';
import { handleOf, type Tensor, wrap } from '../runtime/tensor.js';
import { native } from '../runtime/native.js';

/**
 * a + b in f32, rounded to a's dtype.
 * @param a `[..., D]` f32 | bf16
 * @param b the shape of a, or `[D]` (broadcast over a's rows); f32 | bf16
 * @returns the shape and dtype of a
 */
export function add(a: Tensor, b: Tensor): Tensor {
  return wrap(native().ops.add(handleOf(a, 'add', 'a'), handleOf(b, 'add', 'b')));
}

/**
 * a · b in f32, rounded to a's dtype.
 * @param a `[..., D]` f32 | bf16
 * @param b the shape of a, or `[D]` (broadcast over a's rows); f32 | bf16
 * @returns the shape and dtype of a
 */
export function mul(a: Tensor, b: Tensor): Tensor {
  return wrap(native().ops.mul(handleOf(a, 'mul', 'a'), handleOf(b, 'mul', 'b')));
}

/**
 * SiLU: x / (1 + e^−x) in f32, rounded to x's dtype.
 * @param x `[...]` f32 | bf16
 */
export function silu(x: Tensor): Tensor {
  return wrap(native().ops.silu(handleOf(x, 'silu', 'x')));
}

/**
 * x · s in f32 (s rounded to f32), rounded to x's dtype.
 * @param x `[...]` f32 | bf16
 */
export function scale(x: Tensor, s: number): Tensor {
  return wrap(native().ops.scale(handleOf(x, 'scale', 'x'), s));
}

/**
 * A copy of `x` with dimension `dim` cut to `[start, start + length)`.
 * @param x any dtype, at least 1 dimension
 * @param dim a dimension of x; negative counts from the end
 * @returns x's shape with `length` at `dim`, x's dtype
 */
export function slice(x: Tensor, dim: number, start: number, length: number): Tensor {
  return wrap(native().ops.slice(handleOf(x, 'slice', 'x'), dim, start, length));
}

/**
 * A copy of the tensors joined along `dim`.
 * @param tensors one dtype, one device, the same shape outside `dim`
 * @param dim a dimension; negative counts from the end
 */
export function concat(tensors: readonly Tensor[], dim: number): Tensor {
  if (!Array.isArray(tensors) || tensors.length === 0) throw invalidArgument('concat', 'tensors', 'a non-empty array of Tensors', tensors);
  return wrap(native().ops.concat(tensors.map((t, i) => handleOf(t, 'concat', `tensors[${i}]`)), dim));
}
