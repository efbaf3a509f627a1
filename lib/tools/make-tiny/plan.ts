/**
 * make-tiny's tensor plan: the checkpoint schema of its config (lib/model/schema.ts, the one the
 * loader checks), each tensor with how its values are made.
 */
import { parseConfig } from '../../model/config.js';
import { checkpointSchema, type TensorSpec } from '../../model/schema.js';
import type { DType } from '../../runtime/tensor.js';
import { type TinyDims, tinyConfig } from './dims.js';

/** How a tensor's values are made. */
export type Kind =
  | { kind: 'fp8'; fanIn: number } // FP8 codes of N(0,1)/√fanIn, quantised per 128×128 block
  | { kind: 'scale'; weight: string } // the block scales of `weight`
  | { kind: 'normal'; std: number; mean?: number }; // bf16 / f32 values mean + std·N(0,1)

export interface PlannedTensor {
  name: string;
  dtype: DType;
  shape: number[];
  make: Kind;
}

/** Norms 1 + 0.1·N(0,1), biases 0.1·N(0,1), embeddings N(0,1), weights N(0,1)/√fan_in. */
function valuesOf(t: TensorSpec): Kind {
  switch (t.kind) {
    case 'fp8': return { kind: 'fp8', fanIn: t.shape[1] };
    case 'fp8-scale': return { kind: 'scale', weight: t.name.slice(0, -'_scale_inv'.length) };
    case 'norm': return { kind: 'normal', std: 0.1, mean: 1 };
    case 'bias': return { kind: 'normal', std: 0.1 };
    case 'embedding': return { kind: 'normal', std: 1 };
    case 'linear': return { kind: 'normal', std: 1 / Math.sqrt(t.shape[1]) };
  }
}

/** Every tensor of the checkpoint, sorted by name (as the published shards are). */
export function tinyTensorPlan(dims: TinyDims): PlannedTensor[] {
  const plan = checkpointSchema(parseConfig(tinyConfig(dims))).map((t) => ({ name: t.name, dtype: t.dtype, shape: [...t.shape], make: valuesOf(t) }));
  return plan.sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
}
