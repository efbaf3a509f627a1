/** Every kernel, one typed function each: `lib/ops/x.ts` → `native/ops/x.cc` → `native/cpu/x.cc` | `cuda/x.cu`. */
export { cast } from './cast.js';
export { addRmsNorm, rmsNorm } from './norm.js';
export { transpose } from './layout.js';
export { actQuant, type ActQuantOptions, fp8Dequant } from './quant.js';
export { bmmHeads, fp8Gemm, gemm, type GemmOutDtype, groupedFp8Gemm } from './gemm.js';
