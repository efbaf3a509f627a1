/**
 * The DeepSeekMoE layer's kernels, in the order a layer calls them:
 * `moeRoute` (DeepSeek's Gate) → `moeDispatch` (slots sorted by expert) → `gatherRows` (token rows
 * in expert order) → the grouped expert GEMMs with `swiglu` between them → `moeCombine` (weighted
 * sum back per token, plus the shared expert). CPU and CUDA kernels, bit for bit the same results.
 */
import { invalidArgument } from '../runtime/errors.js';
import { type DType, handleOf, type Tensor, wrap } from '../runtime/tensor.js';
import { native } from '../runtime/native.js';
import { type FusedQuantOptions, fusedQuantArg } from './quant.js';

export interface MoeRouteOptions {
  /** Experts chosen per token (8 in DeepSeek-V3). */
  topk: number;
  /** Expert groups (8); must divide the number of experts. */
  nGroups: number;
  /** Groups each token may route to (4). */
  topkGroups: number;
  /** 'sigmoid' (V3) or 'softmax' over all experts. */
  scoreFunc: 'sigmoid' | 'softmax';
  /** Multiplies the weights last (routed_scaling_factor, 2.5). */
  routeScale: number;
  /** Divide the weights by their sum before scaling (DeepSeek does for sigmoid scores). */
  normalize: boolean;
}

/**
 * DeepSeek's Gate on router logits, in f32: scores = sigmoid(logits) (or softmax over the
 * experts); the choice uses scores + bias; with nGroups > 1 only the topkGroups groups with the
 * best group scores (sum of the top 2 biased scores of a group when there is a bias, else its max;
 * ties: lower group) are eligible; ids = the topk best (descending; ties: lower expert id);
 * weights = the unbiased scores of ids, divided by their sum when `normalize`, times routeScale.
 * The reference then casts the weights to the activation dtype; these stay f32.
 * @param logits `[T, E]` f32
 * @param bias `[E]` f32 (e_score_correction_bias), or null
 * @returns ids `[T, topk]` i32 and weights `[T, topk]` f32
 */
export function moeRoute(logits: Tensor, bias: Tensor | null, options: MoeRouteOptions): { ids: Tensor; weights: Tensor } {
  if (typeof options !== 'object' || options === null) throw invalidArgument('moeRoute', 'options', 'an object', options);
  const { topk, nGroups, topkGroups, scoreFunc, routeScale, normalize } = options;
  const [ids, weights] = native().ops.moeRoute(
    handleOf(logits, 'moeRoute', 'logits'),
    bias === null ? null : handleOf(bias, 'moeRoute', 'bias'),
    topk,
    nGroups,
    topkGroups,
    scoreFunc,
    routeScale,
    normalize,
  );
  return { ids: wrap(ids), weights: wrap(weights) };
}

/**
 * Sorts the T·k (token, choice) slots by expert, stably (by expert, then slot index t·k + j): row r
 * of the expert-ordered batch holds token `tokenOfRow[r]`; slot t·k + j sits in row
 * `rowOfSlot[t·k + j]`; expert e owns rows `offsets[e]` … `offsets[e + 1] − 1`. Ids are checked
 * when the op runs (0 ≤ id < numExperts).
 * @param ids `[T, k]` i32
 * @returns tokenOfRow `[T·k]`, rowOfSlot `[T·k]`, offsets `[numExperts + 1]`, all i32
 */
export function moeDispatch(ids: Tensor, numExperts: number): { tokenOfRow: Tensor; rowOfSlot: Tensor; offsets: Tensor } {
  const [tokenOfRow, rowOfSlot, offsets] = native().ops.moeDispatch(handleOf(ids, 'moeDispatch', 'ids'), numExperts);
  return { tokenOfRow: wrap(tokenOfRow), rowOfSlot: wrap(rowOfSlot), offsets: wrap(offsets) };
}

/**
 * Rows of x by index: `out[r] = x[index[r]]` (indices checked when the op runs).
 * @param x `[T, D]` any dtype
 * @param index `[R]` i32
 * @returns `[R, D]`, x's dtype
 */
export function gatherRows(x: Tensor, index: Tensor): Tensor {
  return wrap(native().ops.gatherRows(handleOf(x, 'gatherRows', 'x'), handleOf(index, 'gatherRows', 'index')));
}

/**
 * SwiGLU of a fused gate/up projection: silu(g) · u = g / (1 + e^−g) · u in f32, rounded once
 * (the reference: `(F.silu(w1(x).float()) * w3(x).float()).type_as(x)`).
 * @param gateUp `[R, 2I]` bf16 | f32: gate in columns 0 … I−1, up in I … 2I−1
 * @param outDtype 'bf16' | 'f32'; default gateUp's dtype
 * @returns `[R, I]`
 */
export function swiglu(gateUp: Tensor, outDtype?: DType): Tensor {
  return wrap(native().ops.swiglu(handleOf(gateUp, 'swiglu', 'gateUp'), outDtype));
}

/**
 * SwiGLU whose kernel also quantises its output for the down projection: the same `out` as
 * `swiglu(gateUp, outDtype)`, and `codes` / `scales` with the bits of
 * `actQuant(out, { blockSize: 128, scaleFmt })`, in one pass.
 * @param gateUp `[R, 2I]` bf16 | f32, I a multiple of 128
 * @returns `out` `[R, I]` (outDtype, default gateUp's dtype), `codes` `[R, I]` f8e4m3, `scales` `[R, I / 128]` f32
 */
export function swigluQuant(gateUp: Tensor, options: FusedQuantOptions & { outDtype?: DType } = {}): { out: Tensor; codes: Tensor; scales: Tensor } {
  const ue8m0 = fusedQuantArg('swigluQuant', options);
  const [out, codes, scales] = native().ops.swiglu(handleOf(gateUp, 'swigluQuant', 'gateUp'), options.outDtype, ue8m0);
  return { out: wrap(out), codes: wrap(codes), scales: wrap(scales) };
}

/**
 * The weighted sum of each token's expert outputs, in the reference's order: for each token,
 * `y = Σ_j weights[t, j] · f32(expertOut[rowOfSlot[t·k + j]])` over its choices in ascending expert
 * id (each product rounded to f32 before it is added, as `y[idx] += expert(x) * w` does), then
 * `+ f32(shared[t])`, rounded once to outDtype. rowOfSlot values are checked when the op runs.
 * @param expertOut `[R, D]` bf16 | f32: rows in moeDispatch's order
 * @param rowOfSlot `[T·k]` i32 (from moeDispatch)
 * @param weights `[T, k]` f32 (from moeRoute)
 * @param ids `[T, k]` i32 (from moeRoute): orders the sum
 * @param shared `[T, D]` bf16 | f32 (the shared expert's output), or null
 * @param outDtype 'bf16' | 'f32'
 * @returns `[T, D]`
 */
export function moeCombine(expertOut: Tensor, rowOfSlot: Tensor, weights: Tensor, ids: Tensor, shared: Tensor | null, outDtype: DType): Tensor {
  return wrap(
    native().ops.moeCombine(
      handleOf(expertOut, 'moeCombine', 'expertOut'),
      handleOf(rowOfSlot, 'moeCombine', 'rowOfSlot'),
      handleOf(weights, 'moeCombine', 'weights'),
      handleOf(ids, 'moeCombine', 'ids'),
      shared === null ? null : handleOf(shared, 'moeCombine', 'shared'),
      outDtype,
    ),
  );
}
