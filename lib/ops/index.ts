/** Every kernel, one typed function each: `lib/ops/x.ts` → `native/ops/x.cc` → `native/cpu/x.cc` | `cuda/x.cu`. */
export { cast } from './cast.js';
export { addRmsNorm, layerNorm, rmsNorm } from './norm.js';
export { add, concat, mul, scale, silu, slice } from './elementwise.js';
export { embedding } from './embedding.js';
export { gatherRows, moeCombine, moeDispatch, moeRoute, swiglu, type MoeRouteOptions } from './moe.js';
export { argmax, sample, type SampleOptions } from './sampling.js';
