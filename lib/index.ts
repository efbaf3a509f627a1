/**
 * deepseek-native: DeepSeek-V3.2 inference for Node.js. The one export list of the package.
 */
export * as ops from './ops/index.js';
export { Tensor, tensor, zeros, DTYPES } from './runtime/tensor.js';
export type { DType, DeviceName, HostArray, HostArrays, TensorOptions } from './runtime/tensor.js';
export { devices, memoryStats, opDevices, releaseCache, synchronize } from './runtime/device.js';
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
export { Serving, RequestError } from './serve/generation.js';
export type { GenerateRequest, GenerateResult, StreamChunk, TokenLogprob, ToolCallOut, Usage } from './serve/generation.js';
export { Engine, QueueFullError, ContextLengthError } from './serve/engine.js';
export type { EngineOptions, EngineObserver, EngineRequest, EngineResult, FinishReason, SamplingParams } from './serve/engine.js';
export { TextTokenizer, IncrementalDecoder, MissingTokenizerError } from './serve/tokenizer.js';
export { encodeMessages, parseCompletion, CompletionParser, EncodingError } from './serve/dsv32-encoding.js';
export type { ChatMessage, Tool, ToolCall, ParsedMessage, ParseEvent, ThinkingMode } from './serve/dsv32-encoding.js';
export { createServer } from './serve/server.js';
export type { Server, ServerOptions } from './serve/server.js';
export { CheckpointChangedError } from './io/checkpoint.js';
