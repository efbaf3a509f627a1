/**
 * Linear layers as the reference's `linear()`: FP8 weights quantise their input per 1×128 group
 * (`actQuant`) and run `fp8Gemm` with the 128×128 block scales; BF16/F32 weights run `gemm`.
 */
import * as ops from '../ops/index.js';
import type { Act, Tensor } from '../runtime/tensor.js';

/** What the loader hands a module: a tensor by checkpoint name. */
export interface WeightSource {
  tensor(name: string): Tensor;
  has(name: string): boolean;
}

/** An activation quantised for the FP8 linears: E4M3 codes `[..., in]` and per-1×128 f32 scales `[..., in/128]`. */
export interface Quantised {
  codes: Tensor;
  scales: Tensor;
}

/**
 * swiglu(gateUp) rounded to `act`, then quantised for the FP8 down projection: one kernel
 * (`swigluQuant`, actQuant fused into its epilogue, same bits) when I is a multiple of 128, else the
 * two ops. gateUp `[R, 2I]` → codes `[R, I]`, scales `[R, I/128]`; the caller disposes both.
 */
export function swigluQuantised(gateUp: Tensor, act: Act, scaleFmt: 'ue8m0' | null): Quantised {
  if ((gateUp.shape[gateUp.shape.length - 1] / 2) % 128 === 0) {
    const { out, codes, scales } = ops.swigluQuant(gateUp, { outDtype: act, scaleFmt });
    out.dispose();
    return { codes, scales };
  }
  using g = ops.swiglu(gateUp, act);
  return ops.actQuant(g, { scaleFmt });
}

/** A normalised activation `[T, d]`, and its FP8 quantisation when the norm's kernel made it (width a multiple of 128). */
export class Normed implements Disposable {
  constructor(readonly out: Tensor, readonly quantised: Quantised | null) {}

  [Symbol.dispose](): void {
    this.out.dispose();
    this.quantised?.codes.dispose();
    this.quantised?.scales.dispose();
  }
}

/** RMSNorm whose kernel also quantises its output for the FP8 linears that read it (`rmsNormQuant`, same bits as actQuant) when d % 128 = 0. */
export function rmsNormQuantised(x: Tensor, weight: Tensor, eps: number, scaleFmt: 'ue8m0' | null): Normed {
  if (x.shape[x.shape.length - 1] % 128 !== 0) return new Normed(ops.rmsNorm(x, weight, eps), null);
  const { out, codes, scales } = ops.rmsNormQuant(x, weight, eps, { scaleFmt });
  return new Normed(out, { codes, scales });
}

/** addRmsNorm, with its output quantised by the same kernel (`addRmsNormQuant`) when d % 128 = 0. */
export function addRmsNormQuantised(x: Tensor, residual: Tensor, weight: Tensor, eps: number, scaleFmt: 'ue8m0' | null): { normed: Normed; residual: Tensor } {
  if (x.shape[x.shape.length - 1] % 128 !== 0) {
    const n = ops.addRmsNorm(x, residual, weight, eps);
    return { normed: new Normed(n.out, null), residual: n.residual };
  }
  const n = ops.addRmsNormQuant(x, residual, weight, eps, { scaleFmt });
  return { normed: new Normed(n.out, { codes: n.codes, scales: n.scales }), residual: n.residual };
}

/** An FP8 E4M3 weight `[out, in]` with its `[ceil(out/128), ceil(in/128)]` f32 block scales. */
export class Fp8Linear {
  constructor(readonly weight: Tensor, readonly scale: Tensor, readonly scaleFmt: 'ue8m0' | null) {}

  static load(src: WeightSource, prefix: string, scaleFmt: 'ue8m0' | null): Fp8Linear {
    return new Fp8Linear(src.tensor(`${prefix}.weight`), src.tensor(`${prefix}.weight_scale_inv`), scaleFmt);
  }

  get outFeatures(): number {
    return this.weight.shape[0];
  }

  /** x `[..., in]` → `[..., out]` in `outDtype`; `quantised`: x already quantised (a norm's fused epilogue). */
  forward(x: Tensor, outDtype: Act, quantised: Quantised | null = null): Tensor {
    if (quantised) return this.forwardQuantised(quantised, outDtype);
    const { codes, scales } = ops.actQuant(x, { scaleFmt: this.scaleFmt });
    using _c = codes;
    using _s = scales;
    return this.forwardQuantised({ codes, scales }, outDtype);
  }

  /** The input already quantised per 1×128 (`actQuant`, or a kernel's fused epilogue) → `[..., out]`. */
  forwardQuantised(x: Quantised, outDtype: Act): Tensor {
    // f32 activations are the accuracy yardstick: their block sums are exact, as the reference's.
    return ops.fp8Gemm(x.codes, x.scales, this.weight, this.scale, outDtype, { exactBlockSums: outDtype === 'f32' });
  }

  dispose(): void {
    this.weight.dispose();
    this.scale.dispose();
  }
}

/** A BF16/F32 weight `[out, in]`: y = x·Wᵀ with f32 accumulation. */
export class DenseLinear {
  constructor(readonly weight: Tensor) {}

  /** x `[..., in]` → `[..., out]` in `outDtype`. */
  forward(x: Tensor, outDtype: Act): Tensor {
    return ops.gemm(x, this.weight, outDtype);
  }

  dispose(): void {
    this.weight.dispose();
  }
}
