/**
 * make-tiny's dims: the config.json fields it lets you choose, the two presets, their checks, and
 * the config.json they make (field for field as the published DeepSeek-V3.2 config).
 */
import { parseConfig } from '../../model/config.js';
import { invalidArgument, isNonNegativeInteger, isPositiveInteger } from '../../runtime/errors.js';

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
  try {
    parseConfig(tinyConfig(out));
  } catch (e) {
    throw new RangeError(`${where}: dims must make a config the model loads: ${(e as Error).message}`);
  }
  return out;
}
