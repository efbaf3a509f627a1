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
import { type Act, handleOf, type Tensor, wrap } from '../runtime/tensor.js';
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

/**
 * FP8 linear with 1×128 activation and 128×128 weight scales (DeepSeek's `fp8_gemm`):
 * y[m, n] = Σ_kb (Σ_{k∈kb} a[m, k]·w[n, k]) · aScales[m, kb] · wScales[⌊n/128⌋, kb].
 * Products of E4M3 values are exact; each 128-block sum accumulates in f32, is multiplied by
 * aScales·wScales (one f32 product) and added to the f32 total, rounded once to outDtype.
 * @param a `[..., K]` f8e4m3 (codes from actQuant), K a multiple of 128
 * @param aScales `[..., K/128]` f32
 * @param w `[N, K]` f8e4m3, any N ≥ 1
 * @param wScales `[⌈N/128⌉, K/128]` f32
 * @returns `[..., N]` of outDtype
 */
export function fp8Gemm(a: Tensor, aScales: Tensor, w: Tensor, wScales: Tensor, outDtype: GemmOutDtype, options: Fp8GemmOptions = {}): Tensor {
  const op = 'fp8Gemm';
  return wrap(
    native().ops.fp8Gemm(
      handleOf(a, op, 'a'),
      handleOf(aScales, op, 'aScales'),
      handleOf(w, op, 'w'),
      handleOf(wScales, op, 'wScales'),
      outDtype,
      options.exactBlockSums ?? false,
    ),
  );
}

/**
 * fp8Gemm per MoE expert over expert-contiguous rows: rows offsets[e] ≤ r < offsets[e+1] use
 * expert e's weight. Experts without rows cost nothing. offsets are checked when the kernel runs
 * (offsets[0] = 0, non-decreasing, offsets[E] = R); a bad one rejects the next read with
 * "groupedFp8Gemm: offsets …".
 * @param a `[R, K]` f8e4m3, K a multiple of 128
 * @param aScales `[R, K/128]` f32
 * @param w `[E, N, K]` f8e4m3
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
  options: Fp8GemmOptions = {},
): Tensor {
  const op = 'groupedFp8Gemm';
  return wrap(
    native().ops.groupedFp8Gemm(
      handleOf(a, op, 'a'),
      handleOf(aScales, op, 'aScales'),
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
