/**
 * Matrix products, all accumulating in f32 and rounding once to `outDtype`: the FP8 block-scaled
 * linear (dense and grouped by MoE expert), the plain f32/bf16 product (router, LM head, indexer
 * weights_proj) and MLA's per-head batched product.
 *
 * CUDA (cuda/sm90_fp8_gemm.cu, cuda/gemm.cu): the FP8 products run on tensor cores (mma.sync e4m3,
 * two-level accumulation per 128-wide K block, as DeepGEMM); gemm and bmmHeads on the CUDA cores.
 * They sum in their own order, so they match the CPU within f32 summation error, not bit for bit
 * (`exactBlockSums` is a CPU option; the CUDA kernels ignore it).
 */
import { DisposedError, invalidArgument } from '../runtime/errors.js';
import { type Act, handleOf, Tensor, wrap } from '../runtime/tensor.js';
import { native } from '../runtime/native.js';

export type GemmOutDtype = Act;

export interface Fp8GemmOptions {
  /**
   * Compute each 128-block sum exactly (in f64) and round it to f32 once, instead of accumulating it
   * in f32 in the kernel's order. The result then depends on nothing but the inputs: bit-identical on
   * every SIMD path and equal to an exact FP8 emulation (DeepSeek's reference logits). Slower (f64
   * lanes on AVX-512, a scalar kernel otherwise); the model uses it with f32 activations, the
   * accuracy yardstick.
   */
  exactBlockSums?: boolean;
}

/** One FP8 weight `[rows, K]` f8e4m3 and its `[⌈rows/128⌉, K/128]` f32 block scales. */
export interface Fp8WeightPart {
  weight: Tensor;
  scale: Tensor;
}

/**
 * FP8 weights read where they lie, on the CPU: E experts, each the row-concatenation of the same P
 * parts (a SwiGLU's gate and up weights: P = 2), for fp8Gemm (E = 1) and groupedFp8Gemm in place of a
 * stacked weight. Nothing is copied: the set holds its tensors (a checkpoint's mapped bytes stay
 * mapped while the set, or an op reading it, lives). The product equals the one over the stacked
 * copy `[E, Σ rows, K]` bit for bit when every part but the last has a multiple of 128 rows (then the
 * stacked copy's scale rows are the parts' own). The GPU path stacks instead (`ops.concat`).
 */
export class Fp8WeightSet {
  #handle: unknown;
  /** E. */
  readonly experts: number;
  /** Σ rows of the parts: an expert's output width. */
  readonly outFeatures: number;
  /** K. */
  readonly inFeatures: number;

  /** @internal Use fp8WeightSet(). */
  constructor(handle: unknown, experts: number, outFeatures: number, inFeatures: number) {
    this.#handle = handle;
    this.experts = experts;
    this.outFeatures = outFeatures;
    this.inFeatures = inFeatures;
  }

  /** @internal The native handle; throws DisposedError after dispose(). */
  handle(where: string): unknown {
    if (this.#handle === undefined) throw new DisposedError(`${where}: the weight set was disposed and cannot be used`);
    return this.#handle;
  }

  get disposed(): boolean {
    return this.#handle === undefined;
  }

  /** Lets go of the tensors (ops already queued keep them until they have run). Safe twice. */
  dispose(): void {
    if (this.#handle !== undefined) native().ops.fp8WeightSetRelease(this.#handle);
    this.#handle = undefined;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/**
 * The weight set of `experts[e][p]` (part p of expert e): every expert has the same number of parts,
 * part p the same shape in every expert, all on the CPU. The set holds the tensors: the caller may
 * dispose its own handles at once.
 */
export function fp8WeightSet(experts: readonly (readonly Fp8WeightPart[])[]): Fp8WeightSet {
  const op = 'fp8WeightSet';
  if (!Array.isArray(experts) || experts.length === 0) throw invalidArgument(op, 'experts', 'a non-empty array of experts', experts);
  const parts = experts[0].length;
  const weights: unknown[] = [], scales: unknown[] = [];
  experts.forEach((ex, e) => {
    if (!Array.isArray(ex) || ex.length !== parts || parts === 0)
      throw invalidArgument(op, `experts[${e}]`, `an array of ${parts || 'at least 1'} part(s) (as experts[0])`, ex);
    ex.forEach((part: Fp8WeightPart, p) => {
      weights.push(handleOf(part?.weight, op, `experts[${e}][${p}].weight`));
      scales.push(handleOf(part?.scale, op, `experts[${e}][${p}].scale`));
    });
  });
  const handle = native().ops.fp8WeightSet(weights, scales, parts);
  const rows = experts[0].reduce((n: number, part: Fp8WeightPart) => n + part.weight.shape[0], 0);
  return new Fp8WeightSet(handle, experts.length, rows, experts[0][0].weight.shape[1]);
}

/**
 * FP8 linear with 1×128 activation and 128×128 weight scales (DeepSeek's `fp8_gemm`):
 * y[m, n] = Σ_kb (Σ_{k∈kb} a[m, k]·w[n, k]) · aScales[m, kb] · wScales[⌊n/128⌋, kb].
 * Products of E4M3 values are exact; each 128-block sum accumulates in f32, is multiplied by
 * aScales·wScales (one f32 product) and added to the f32 total, rounded once to outDtype.
 * @param a `[..., K]` f8e4m3 (codes from actQuant), K a multiple of 128
 * @param aScales `[..., K/128]` f32
 * @param w `[N, K]` f8e4m3, any N ≥ 1 — or a weight set of 1 expert (CPU; N = its outFeatures), then
 *   without wScales
 * @param wScales `[⌈N/128⌉, K/128]` f32
 * @returns `[..., N]` of outDtype
 */
export function fp8Gemm(a: Tensor, aScales: Tensor, w: Tensor, wScales: Tensor, outDtype: GemmOutDtype, options?: Fp8GemmOptions): Tensor;
export function fp8Gemm(a: Tensor, aScales: Tensor, w: Fp8WeightSet, outDtype: GemmOutDtype, options?: Fp8GemmOptions): Tensor;
export function fp8Gemm(a: Tensor, aScales: Tensor, w: Tensor | Fp8WeightSet, ...rest: unknown[]): Tensor {
  const op = 'fp8Gemm';
  const ha = handleOf(a, op, 'a'), hs = handleOf(aScales, op, 'aScales');
  if (w instanceof Fp8WeightSet) {
    const [outDtype, options = {}] = rest as [GemmOutDtype, Fp8GemmOptions?];
    return wrap(native().ops.fp8Gemm(ha, hs, w.handle(op), outDtype, options.exactBlockSums ?? false));
  }
  const [wScales, outDtype, options = {}] = rest as [Tensor, GemmOutDtype, Fp8GemmOptions?];
  return wrap(native().ops.fp8Gemm(ha, hs, handleOf(w, op, 'w'), handleOf(wScales, op, 'wScales'), outDtype, options.exactBlockSums ?? false));
}

/**
 * fp8Gemm per MoE expert over expert-contiguous rows: rows offsets[e] ≤ r < offsets[e+1] use
 * expert e's weight. Experts without rows cost nothing. offsets are checked when the kernel runs
 * (offsets[0] = 0, non-decreasing, offsets[E] = R); a bad one rejects the next read with
 * "groupedFp8Gemm: offsets …".
 * @param a `[R, K]` f8e4m3, K a multiple of 128
 * @param aScales `[R, K/128]` f32
 * @param w `[E, N, K]` f8e4m3 — or a weight set of E experts (CPU; N = its outFeatures), then without
 *   wScales
 * @param wScales `[E, ⌈N/128⌉, K/128]` f32
 * @param offsets `[E + 1]` i32
 * @returns `[R, N]` of outDtype
 */
export function groupedFp8Gemm(
  a: Tensor,
  aScales: Tensor,
  w: Tensor,
  wScales: Tensor,
  offsets: Tensor,
  outDtype: GemmOutDtype,
  options?: Fp8GemmOptions,
): Tensor;
export function groupedFp8Gemm(a: Tensor, aScales: Tensor, w: Fp8WeightSet, offsets: Tensor, outDtype: GemmOutDtype, options?: Fp8GemmOptions): Tensor;
export function groupedFp8Gemm(a: Tensor, aScales: Tensor, w: Tensor | Fp8WeightSet, ...rest: unknown[]): Tensor {
  const op = 'groupedFp8Gemm';
  const ha = handleOf(a, op, 'a'), hs = handleOf(aScales, op, 'aScales');
  if (w instanceof Fp8WeightSet) {
    const [offsets, outDtype, options = {}] = rest as [Tensor, GemmOutDtype, Fp8GemmOptions?];
    return wrap(native().ops.groupedFp8Gemm(ha, hs, w.handle(op), handleOf(offsets, op, 'offsets'), outDtype, options.exactBlockSums ?? false));
  }
  const [wScales, offsets, outDtype, options = {}] = rest as [Tensor, Tensor, GemmOutDtype, Fp8GemmOptions?];
  return wrap(
    native().ops.groupedFp8Gemm(
      ha,
      hs,
      handleOf(w, op, 'w'),
      handleOf(wScales, op, 'wScales'),
      handleOf(offsets, op, 'offsets'),
      outDtype,
      options.exactBlockSums ?? false,
    ),
  );
}

/**
 * fp8Gemm per MoE expert in the masked layout (decode): each expert has M row slots, of which the
 * first counts[e] are in use. The launch shape depends on E and M only, never on the routing, and
 * the counts stay on the device. Rows at or past counts[e] are neither read nor written: their
 * output is unspecified. A count outside [0, M] rejects the next read with
 * "maskedGroupedFp8Gemm: counts[e] …" (CPU) or "…: row count … is out of range" (CUDA).
 * @param a `[E, M, K]` f8e4m3, K a multiple of 128
 * @param aScales `[E, M, K/128]` f32
 * @param w `[E, N, K]` f8e4m3
 * @param wScales `[E, ⌈N/128⌉, K/128]` f32
 * @param counts `[E]` i32
 * @returns `[E, M, N]` of outDtype
 */
export function maskedGroupedFp8Gemm(
  a: Tensor,
  aScales: Tensor,
  w: Tensor,
  wScales: Tensor,
  counts: Tensor,
  outDtype: GemmOutDtype,
  options: Fp8GemmOptions = {},
): Tensor {
  const op = 'maskedGroupedFp8Gemm';
  return wrap(
    native().ops.maskedGroupedFp8Gemm(
      handleOf(a, op, 'a'),
      handleOf(aScales, op, 'aScales'),
      handleOf(w, op, 'w'),
      handleOf(wScales, op, 'wScales'),
      handleOf(counts, op, 'counts'),
      outDtype,
      options.exactBlockSums ?? false,
    ),
  );
}

/**
 * y = x · wᵀ with f32 accumulation (any K, N; f32 and bf16 operands may be mixed). With both operands
 * bf16 on a CPU with AVX512-BF16 the products go through vdpbf16ps (exact products, f32 sums), which
 * reads bf16 subnormals (|v| < 2⁻¹²⁶) as zero.
 * @param x `[..., K]` f32 | bf16
 * @param w `[N, K]` f32 | bf16
 * @returns `[..., N]` of outDtype
 */
export function gemm(x: Tensor, w: Tensor, outDtype: GemmOutDtype): Tensor {
  return wrap(native().ops.gemm(handleOf(x, 'gemm', 'x'), handleOf(w, 'gemm', 'w'), outDtype));
}

/**
 * Per-head batched product (MLA's absorbed projections): y[t, h, b] = Σ_a x[t, h, a] · w[h, a, b],
 * f32 accumulation (bf16 × bf16 as in gemm).
 * @param x `[T, H, A]` f32 | bf16
 * @param w `[H, A, B]` f32 | bf16
 * @returns `[T, H, B]` of outDtype
 */
export function bmmHeads(x: Tensor, w: Tensor, outDtype: GemmOutDtype): Tensor {
  return wrap(native().ops.bmmHeads(handleOf(x, 'bmmHeads', 'x'), handleOf(w, 'bmmHeads', 'w'), outDtype));
}

/**
 * Batch-invariant GEMM on (true) or off (false, the default): when on, a row's result does not depend
 * on how many rows its product has (the few-rows kernels, which sum in another order, are not used),
 * so a request's logits are the same alone or in a batch. Process-wide, read when each product
 * runs: switch it while no op is queued. Returns the new setting.
 */
export function setBatchInvariant(enabled: boolean): boolean {
  if (typeof enabled !== 'boolean') throw new TypeError(`setBatchInvariant: expected a boolean but received ${typeof enabled}`);
  return native().ops.gemmSetBatchInvariant(enabled) as boolean;
}
