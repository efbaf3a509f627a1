/** Every kernel, one typed function each: `lib/ops/x.ts` → `native/ops/x.cc` → `native/cpu/x.cc` | `cuda/x.cu`. */
export { cast } from './cast.js';
export { transpose } from './layout.js';
export { actQuant, type ActQuantOptions, fp8Dequant, type FusedQuantOptions } from './quant.js';
export {
  bmmHeads,
  fp8Gemm,
  type Fp8GemmOptions,
  type Fp8WeightPart,
  Fp8WeightSet,
  fp8WeightSet,
  gemm,
  type GemmOutDtype,
  groupedFp8Gemm,
  maskedGroupedFp8Gemm,
  setBatchInvariant,
} from './gemm.js';
export { rope, ropeTables } from './rope.js';
export type { RopeOptions, RopeTableParams } from './rope.js';
export { hadamard } from './hadamard.js';
export { BLOCK_TOKENS, LATENT_GROUP, latentCacheRead, latentCacheRowBytes, latentCacheWrite, pagedGather, pagedWrite } from './cache.js';
export type { LatentCacheWriteOptions } from './cache.js';
export { mlaDecode, mlaPrefill } from './attention.js';
export type { MlaDecodeOptions, MlaPrefillOptions, ScoreDtype } from './attention.js';
export { indexerScores, topK } from './indexer.js';
export { addRmsNorm, addRmsNormQuant, layerNorm, rmsNorm, rmsNormQuant } from './norm.js';
export { add, concat, mul, scale, silu, slice } from './elementwise.js';
export { embedding } from './embedding.js';
export { gatherRows, moeCombine, moeDispatch, moeRoute, swiglu, swigluQuant, type MoeRouteOptions } from './moe.js';
export { argmax, sample, sampleRows, type RowSamplingOptions, type SampleOptions, type SampleRowsResult } from './sampling.js';
