/**
 * The dense SwiGLU MLP of the first `first_k_dense_replace` layers, also the MoE's shared experts.
 * Gate and up projections run as one `[2·inter, dim]` FP8 linear (the same outputs as two GEMMs:
 * every output element is computed alone).
 */
import * as ops from '../ops/index.js';
import type { Act, Tensor } from '../runtime/tensor.js';
import type { ModelConfig } from './config.js';
import { Fp8Linear, swigluQuantised, type WeightSource } from './linear.js';

/** The FP8 weight `<prefix>.weight` `[rows, K]` and its block scales `<prefix>.weight_scale_inv`. */
export function fp8Part(src: WeightSource, prefix: string): ops.Fp8WeightPart {
  const weight = src.tensor(`${prefix}.weight`);
  try {
    return { weight, scale: src.tensor(`${prefix}.weight_scale_inv`) };
  } catch (e) {
    weight.dispose();
    throw e;
  }
}

/** The gate and up parts of the SwiGLU MLP at `prefix`, in that order. */
export function gateUpParts(src: WeightSource, prefix: string): ops.Fp8WeightPart[] {
  const gate = fp8Part(src, `${prefix}.gate_proj`);
  try {
    return [gate, fp8Part(src, `${prefix}.up_proj`)];
  } catch (e) {
    disposeParts([gate]);
    throw e;
  }
}

/** Disposes the tensors of weight parts. */
export function disposeParts(parts: readonly ops.Fp8WeightPart[]): void {
  for (const { weight, scale } of parts) {
    weight.dispose();
    scale.dispose();
  }
}

/** Parts `[rows_p, K]` (and their scales) stacked by rows into one `[Σ rows_p, K]` copy (one part: views of it, which the caller disposes as its own). */
export function stackParts(parts: readonly ops.Fp8WeightPart[]): ops.Fp8WeightPart {
  if (parts.length === 1) return { weight: parts[0].weight.reshape(parts[0].weight.shape), scale: parts[0].scale.reshape(parts[0].scale.shape) };
  const weight = ops.concat(parts.map((p) => p.weight), 0);
  try {
    return { weight, scale: ops.concat(parts.map((p) => p.scale), 0) };
  } catch (e) {
    weight.dispose();
    throw e;
  }
}

/**
 * The gate and up projections as one FP8 linear `[2I, dim]`. On the CPU the product reads both
 * weights where the checkpoint holds them (a weight set: nothing copied, the mapped pages shared with
 * the page cache); on a device they are stacked into one weight (the upload copies anyway).
 */
export class GateUp {
  readonly #set: ops.Fp8WeightSet | null;
  readonly #stacked: Fp8Linear | null;

  constructor(src: WeightSource, prefix: string, readonly scaleFmt: 'ue8m0' | null) {
    const parts = gateUpParts(src, prefix);
    try {
      if (parts[0].weight.device === 'cpu') {
        this.#set = ops.fp8WeightSet([parts]);
        this.#stacked = null;
      } else {
        const s = stackParts(parts);
        this.#stacked = new Fp8Linear(s.weight, s.scale, scaleFmt);
        this.#set = null;
      }
    } finally {
      disposeParts(parts);
    }
  }

  /** x `[..., dim]` → `[..., 2I]`: the gate's I outputs, then the up projection's. */
  forward(x: Tensor, outDtype: Act): Tensor {
    if (this.#stacked) return this.#stacked.forward(x, outDtype);
    const { codes, scales } = ops.actQuant(x, { scaleFmt: this.scaleFmt });
    using _c = codes;
    using _s = scales;
    // As Fp8Linear.forward: f32 activations have exact block sums.
    return ops.fp8Gemm(codes, scales, this.#set!, outDtype, { exactBlockSums: outDtype === 'f32' });
  }

  dispose(): void {
    this.#set?.dispose();
    this.#stacked?.dispose();
  }
}

/** SwiGLU MLP: w2(silu(w1·x) · (w3·x)). */
export class MLP {
  readonly w13: GateUp;
  readonly w2: Fp8Linear;

  constructor(src: WeightSource, prefix: string, cfg: ModelConfig) {
    this.w13 = new GateUp(src, prefix, cfg.scaleFmt);
    try {
      this.w2 = Fp8Linear.load(src, `${prefix}.down_proj`, cfg.scaleFmt);
    } catch (e) {
      this.w13.dispose();
      throw e;
    }
  }

  /** x `[T, dim]` → `[T, dim]`. */
  forward(x: Tensor, act: Act): Tensor {
    using h = this.w13.forward(x, act); //                                         [T, 2I]
    const a = swigluQuantised(h, act, this.w2.scaleFmt); //                         [T, I] e4m3 + scales
    using _c = a.codes;
    using _s = a.scales;
    return this.w2.forwardQuantised(a, act);
  }

  dispose(): void {
    this.w13.dispose();
    this.w2.dispose();
  }
}
