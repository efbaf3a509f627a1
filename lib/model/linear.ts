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

/** An FP8 E4M3 weight `[out, in]` with its `[ceil(out/128), ceil(in/128)]` f32 block scales. */
export class Fp8Linear {
  constructor(readonly weight: Tensor, readonly scale: Tensor, readonly scaleFmt: 'ue8m0' | null) {}

  static load(src: WeightSource, prefix: string, scaleFmt: 'ue8m0' | null): Fp8Linear {
    return new Fp8Linear(src.tensor(`${prefix}.weight`), src.tensor(`${prefix}.weight_scale_inv`), scaleFmt);
  }

  get outFeatures(): number {
    return this.weight.shape[0];
  }

  /** x `[..., in]` → `[..., out]` in `outDtype`. */
  forward(x: Tensor, outDtype: Act): Tensor {
    const { codes, scales } = ops.actQuant(x, { scaleFmt: this.scaleFmt });
    using _c = codes;
    using _s = scales;
    // f32 activations are the accuracy yardstick: their block sums are exact, as the reference's.
    return ops.fp8Gemm(codes, scales, this.weight, this.scale, outDtype, { exactBlockSums: outDtype === 'f32' });
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
