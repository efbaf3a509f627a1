/**
 * DeepSeek Sparse Attention's lightning indexer: FP8 index scores of each query against the paged
 * indexer-key cache, and the top-k keys each query attends to.
 */
import { handleOf, type Tensor, wrap } from '../runtime/tensor.js';
import { native } from '../runtime/native.js';

/**
 * score[t, s] = kScales[s] · Σ_h weights[t, h] · relu(Σ_d q[t, h, d] · k[s, d]) for s ≤ qPos[t],
 * −inf for the other columns; FP8 products exact, sums in f32.
 * @param q `[T, Hi, Di]` f8e4m3
 * @param weights `[T, Hi]` f32 (holds the q scale and softmax factors)
 * @param kCache `[numBlocks, 64, Di]` f8e4m3
 * @param kScales `[numBlocks, 64]` f32
 * @param blockTable `[B, maxBlocks]` i32; seqIdx `[T]` i32; qPos `[T]` i32 (as in mlaDecode)
 * @param maxKeys columns of the result; must exceed every qPos (checked when the op runs)
 * @returns `[T, maxKeys]` f32
 */
export function indexerScores(
  q: Tensor,
  weights: Tensor,
  kCache: Tensor,
  kScales: Tensor,
  blockTable: Tensor,
  seqIdx: Tensor,
  qPos: Tensor,
  maxKeys: number,
): Tensor {
  const op = 'indexerScores';
  return wrap(
    native().ops.indexerScores(
      handleOf(q, op, 'q'),
      handleOf(weights, op, 'weights'),
      handleOf(kCache, op, 'kCache'),
      handleOf(kScales, op, 'kScales'),
      handleOf(blockTable, op, 'blockTable'),
      handleOf(seqIdx, op, 'seqIdx'),
      handleOf(qPos, op, 'qPos'),
      maxKeys,
    ),
  );
}

/**
 * The indices of the k largest entries of each row, −1 padded when a row has fewer than k entries.
 * Among equal scores the entries chosen are those torch.topk chooses on the CPU (the reference's
 * DSA selection; ties at 0 are common where relu cuts every head): std::partial_sort when k·64 ≤ n,
 * std::nth_element otherwise, on (score, index) pairs ordered by `greater`, NaN above +inf.
 * The chosen indices are listed by descending score, then ascending index.
 * @param scores `[T, S]` f32
 * @param k ≥ 1
 * @param lengths `[T]` i32, optional: row t uses only its first lengths[t] entries (checked when the op runs: 0 ≤ len ≤ S)
 * @returns `[T, k]` i32
 */
export function topK(scores: Tensor, k: number, lengths?: Tensor): Tensor {
  return wrap(
    native().ops.topK(handleOf(scores, 'topK', 'scores'), k, lengths === undefined ? undefined : handleOf(lengths, 'topK', 'lengths')),
  );
}
