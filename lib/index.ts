/**
 * deepseek-native: DeepSeek-V3.2 inference for Node.js. The one export list of the package.
 */
export * as ops from './ops/index.js';
export { Tensor, tensor, zeros, DTYPES } from './runtime/tensor.js';
export type { DType, DeviceName, HostArray, HostArrays, TensorOptions } from './runtime/tensor.js';
export { devices, memoryStats, releaseCache, synchronize } from './runtime/device.js';
export type { DeviceInfo, MemoryStats } from './runtime/device.js';
export { runtimeInfo } from './runtime/info.js';
export type { RuntimeInfo } from './runtime/info.js';
export { AddonLoadError, DisposedError } from './runtime/errors.js';
export { loadModel, Model } from './model/model.js';
export type { ForwardOptions, LoadOptions, LoadProgress } from './model/model.js';
export { CacheFullError, Sequence, BLOCK_TOKENS } from './model/kv-cache.js';
export type { BatchItem } from './model/context.js';
export { ConfigError, parseConfig } from './model/config.js';
export type { HfConfig, ModelConfig } from './model/config.js';
export { MissingTensorsError } from './model/weights.js';
export { CheckpointChangedError } from './model/checkpoint.js';
