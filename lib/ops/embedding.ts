/** Token embedding lookup. */
import { type DType, handleOf, type Tensor, wrap } from '../runtime/tensor.js';
import { native } from '../runtime/native.js';

/**
 * Rows of the embedding table by token id. Ids are checked when the op runs: one outside the
 * table rejects the next read naming the op and the id (on the CPU: "embedding: token id 600 at
 * position 3 is outside the table of 512 rows"; on CUDA through the stream's error word). CPU and
 * CUDA kernels, the same bits.
 * @param table `[V, D]` bf16 | f32
 * @param ids `[T]` i32
 * @param outDtype 'bf16' | 'f32'; default the table's dtype (bf16 → f32 is exact)
 * @returns `[T, D]`
 */
export function embedding(table: Tensor, ids: Tensor, outDtype?: DType): Tensor {
  return wrap(native().ops.embedding(handleOf(table, 'embedding', 'table'), handleOf(ids, 'embedding', 'ids'), outDtype));
}
