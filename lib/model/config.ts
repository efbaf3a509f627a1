/**
 * The model configuration: Hugging Face `config.json` of `model_type` `deepseek_v32` (or
 * `deepseek_v3`, which has no indexer: dense MLA), field for field, validated, plus the values
 * derived from it once (softmax scale with mscale², YaRN, which layers are dense).
 */
import { isPlainObject } from '../runtime/errors.js';

/** The fields of config.json the model uses (names as in the file). */
export interface HfConfig {
  model_type: 'deepseek_v32' | 'deepseek_v3';
  /** Tokens in the vocabulary (rows of embed_tokens and lm_head). */
  vocab_size: number;
  /** Model width. */
  hidden_size: number;
  /** Width of the dense SwiGLU MLPs of the first `first_k_dense_replace` layers. */
  intermediate_size: number;
  /** Width of each routed and shared expert. */
  moe_intermediate_size: number;
  /** Transformer blocks (the MTP layer sits after them, at this index). */
  num_hidden_layers: number;
  /** Multi-token-prediction layers stored after the blocks (loaded, not used by forward). */
  num_nextn_predict_layers?: number;
  num_attention_heads: number;
  n_shared_experts: number;
  n_routed_experts: number;
  /** Multiplies the routing weights. */
  routed_scaling_factor: number;
  /** MLA latent width of K/V (512 in V3.2). */
  kv_lora_rank: number;
  /** MLA latent width of Q (1536 in V3.2). */
  q_lora_rank: number;
  qk_rope_head_dim: number;
  qk_nope_head_dim: number;
  v_head_dim: number;
  /** Expert groups; `topk_group` of them are kept per token. */
  n_group: number;
  topk_group: number;
  /** Routed experts per token. */
  num_experts_per_tok: number;
  /** Layers before this index use the dense MLP. */
  first_k_dense_replace: number;
  moe_layer_freq?: number;
  norm_topk_prob: boolean;
  scoring_func: 'sigmoid' | 'softmax';
  topk_method?: string;
  hidden_act?: string;
  max_position_embeddings: number;
  rms_norm_eps: number;
  rope_theta: number;
  rope_scaling?: {
    type?: string;
    rope_type?: string;
    factor: number;
    original_max_position_embeddings: number;
    beta_fast: number;
    beta_slow: number;
    mscale: number;
    mscale_all_dim?: number;
  } | null;
  tie_word_embeddings?: boolean;
  bos_token_id?: number;
  eos_token_id?: number | number[];
  /** DSA lightning indexer (deepseek_v32 only). */
  index_n_heads?: number;
  index_head_dim?: number;
  index_topk?: number;
  quantization_config?: {
    quant_method: string;
    fmt: string;
    activation_scheme?: string;
    scale_fmt?: string | null;
    weight_block_size: [number, number];
  };
}

/** Validated config plus derived values. */
export interface ModelConfig {
  /** config.json as read (what the fields below are derived from); model code reads the fields below. */
  hf: HfConfig;
  modelType: HfConfig['model_type'];
  /** True for deepseek_v32: the indexer selects `indexTopk` keys per query. */
  sparse: boolean;
  vocabSize: number;
  dim: number;
  interDim: number;
  moeInterDim: number;
  nLayers: number;
  /** Multi-token-prediction layers stored after the blocks (num_nextn_predict_layers; 0 when absent). */
  nMtpLayers: number;
  nDenseLayers: number;
  nHeads: number;
  nRoutedExperts: number;
  nSharedExperts: number;
  nActivatedExperts: number;
  nExpertGroups: number;
  nLimitedGroups: number;
  scoreFunc: 'sigmoid' | 'softmax';
  /** The chosen experts' routing weights are normalised to sum 1 (norm_topk_prob). */
  normTopkProb: boolean;
  routeScale: number;
  qLoraRank: number;
  kvLoraRank: number;
  qkNopeHeadDim: number;
  qkRopeHeadDim: number;
  qkHeadDim: number;
  vHeadDim: number;
  maxPositions: number;
  eps: number;
  rope: { theta: number; factor: number; originalMaxPositions: number; betaFast: number; betaSlow: number; mscale: number; yarn: boolean };
  /** qk_head_dim^-0.5, times mscale² when YaRN extends the context. */
  softmaxScale: number;
  indexNHeads: number;
  indexHeadDim: number;
  indexTopk: number;
  /** Activation scales rounded up to powers of two ('ue8m0') or not (null). */
  scaleFmt: 'ue8m0' | null;
  eosTokenIds: number[];
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

function fail(field: string, value: unknown, allowed: string): never {
  throw new ConfigError(`config.json: ${field} is ${JSON.stringify(value)}; allowed: ${allowed}`);
}

/** `prefix` names the object a nested field is in ('rope_scaling.'). */
function int(c: Record<string, unknown>, field: string, min = 1, prefix = ''): number {
  const v = c[field];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) fail(prefix + field, v, `an integer >= ${min}`);
  return v;
}

function num(c: Record<string, unknown>, field: string, positive = true, prefix = ''): number {
  const v = c[field];
  if (typeof v !== 'number' || !Number.isFinite(v) || (positive && !(v > 0))) fail(prefix + field, v, positive ? 'a number > 0' : 'a finite number');
  return v;
}

/** Validates every field the model uses; errors name the field, its value and what is allowed. */
export function parseConfig(raw: unknown): ModelConfig {
  if (!isPlainObject(raw)) throw new ConfigError('config.json: expected a JSON object');
  const c = raw as Record<string, unknown>;
  if (c.model_type !== 'deepseek_v32' && c.model_type !== 'deepseek_v3') fail('model_type', c.model_type, "'deepseek_v32' or 'deepseek_v3'");
  const sparse = c.model_type === 'deepseek_v32';
  const dim = int(c, 'hidden_size');
  const nHeads = int(c, 'num_attention_heads');
  const nLayers = int(c, 'num_hidden_layers');
  const nDense = int(c, 'first_k_dense_replace', 0);
  if (nDense > nLayers) fail('first_k_dense_replace', nDense, `an integer <= num_hidden_layers (${nLayers})`);
  const nRouted = int(c, 'n_routed_experts');
  const nActivated = int(c, 'num_experts_per_tok');
  if (nActivated > nRouted) fail('num_experts_per_tok', nActivated, `an integer <= n_routed_experts (${nRouted})`);
  const nGroups = int(c, 'n_group');
  if (nRouted % nGroups !== 0) fail('n_group', nGroups, `a divisor of n_routed_experts (${nRouted})`);
  const topkGroup = int(c, 'topk_group');
  if (topkGroup > nGroups) fail('topk_group', topkGroup, `an integer <= n_group (${nGroups})`);
  if (nGroups > 1 && (nRouted / nGroups) * topkGroup < nActivated)
    fail('topk_group', topkGroup, `enough groups to hold num_experts_per_tok (${nActivated}) experts`);
  if (c.scoring_func !== 'sigmoid' && c.scoring_func !== 'softmax') fail('scoring_func', c.scoring_func, "'sigmoid' or 'softmax'");
  if (c.hidden_act !== undefined && c.hidden_act !== 'silu') fail('hidden_act', c.hidden_act, "'silu'");
  if (c.moe_layer_freq !== undefined && c.moe_layer_freq !== 1) fail('moe_layer_freq', c.moe_layer_freq, '1');
  const ropeDim = int(c, 'qk_rope_head_dim');
  if (ropeDim % 2 !== 0) fail('qk_rope_head_dim', ropeDim, 'an even integer');
  const nope = int(c, 'qk_nope_head_dim');
  const vHead = int(c, 'v_head_dim');
  const qLora = int(c, 'q_lora_rank');
  const kvLora = int(c, 'kv_lora_rank');
  const interDim = int(c, 'intermediate_size');
  const moeInter = int(c, 'moe_intermediate_size');
  const maxPositions = int(c, 'max_position_embeddings');
  const theta = num(c, 'rope_theta');
  const eps = num(c, 'rms_norm_eps');
  if (typeof c.norm_topk_prob !== 'boolean') fail('norm_topk_prob', c.norm_topk_prob, 'true or false');
  if (c.tie_word_embeddings === true) fail('tie_word_embeddings', true, 'false (DeepSeek checkpoints have their own lm_head)');

  const q = c.quantization_config as HfConfig['quantization_config'] | undefined;
  if (!q || typeof q !== 'object') fail('quantization_config', q, 'an fp8 quantization config');
  if (q.quant_method !== 'fp8') fail('quantization_config.quant_method', q.quant_method, "'fp8'");
  if (q.fmt !== 'e4m3') fail('quantization_config.fmt', q.fmt, "'e4m3'");
  if (!Array.isArray(q.weight_block_size) || q.weight_block_size[0] !== 128 || q.weight_block_size[1] !== 128)
    fail('quantization_config.weight_block_size', q.weight_block_size, '[128, 128]');
  if (q.scale_fmt != null && q.scale_fmt !== 'ue8m0') fail('quantization_config.scale_fmt', q.scale_fmt, "'ue8m0' or null");
  if (q.activation_scheme !== undefined && q.activation_scheme !== 'dynamic')
    fail('quantization_config.activation_scheme', q.activation_scheme, "'dynamic'");
  // Activations are quantised per 1×128 group: every linear's input width must be a multiple of 128.
  for (const [field, v] of [['hidden_size', dim], ['q_lora_rank', qLora], ['kv_lora_rank', kvLora], ['intermediate_size', interDim], ['moe_intermediate_size', moeInter]] as const)
    if (v % 128 !== 0) fail(field, v, 'a multiple of 128 (FP8 activations are quantised per 128 values)');
  if ((nHeads * vHead) % 128 !== 0) fail('v_head_dim', vHead, 'a value with num_attention_heads × v_head_dim a multiple of 128');

  const rs = c.rope_scaling as HfConfig['rope_scaling'];
  let rope: ModelConfig['rope'] = { theta, factor: 1, originalMaxPositions: maxPositions, betaFast: 32, betaSlow: 1, mscale: 1, yarn: false };
  if (rs) {
    const kind = rs.type ?? rs.rope_type;
    if (kind !== 'yarn') fail('rope_scaling.type', kind, "'yarn'");
    const r = rs as unknown as Record<string, unknown>;
    rope = {
      theta,
      factor: num(r, 'factor', true, 'rope_scaling.'),
      originalMaxPositions: int(r, 'original_max_position_embeddings', 1, 'rope_scaling.'),
      betaFast: num(r, 'beta_fast', true, 'rope_scaling.'),
      betaSlow: num(r, 'beta_slow', true, 'rope_scaling.'),
      mscale: num(r, 'mscale', false, 'rope_scaling.'),
      yarn: maxPositions > (r.original_max_position_embeddings as number),
    };
  }
  let softmaxScale = (nope + ropeDim) ** -0.5;
  if (rope.yarn) {
    const m = 0.1 * rope.mscale * Math.log(rope.factor) + 1;
    softmaxScale *= m * m;
  }

  let indexNHeads = 0, indexHeadDim = 0, indexTopk = 0;
  if (sparse) {
    indexNHeads = int(c, 'index_n_heads');
    indexHeadDim = int(c, 'index_head_dim');
    indexTopk = int(c, 'index_topk');
    if (indexHeadDim % 128 !== 0 || (indexHeadDim & (indexHeadDim - 1)) !== 0)
      fail('index_head_dim', indexHeadDim, 'a power of two and a multiple of 128');
    if (ropeDim > indexHeadDim) fail('qk_rope_head_dim', ropeDim, `at most index_head_dim (${indexHeadDim})`);
  }
  const eos = c.eos_token_id;
  return {
    hf: c as unknown as HfConfig,
    modelType: c.model_type,
    sparse,
    vocabSize: int(c, 'vocab_size'),
    dim,
    interDim,
    moeInterDim: moeInter,
    nLayers,
    nMtpLayers: c.num_nextn_predict_layers === undefined ? 0 : int(c, 'num_nextn_predict_layers', 0),
    nDenseLayers: nDense,
    nHeads,
    nRoutedExperts: nRouted,
    nSharedExperts: int(c, 'n_shared_experts', 0),
    nActivatedExperts: nActivated,
    nExpertGroups: nGroups,
    nLimitedGroups: topkGroup,
    scoreFunc: c.scoring_func as 'sigmoid' | 'softmax',
    normTopkProb: c.norm_topk_prob,
    routeScale: num(c, 'routed_scaling_factor'),
    qLoraRank: qLora,
    kvLoraRank: kvLora,
    qkNopeHeadDim: nope,
    qkRopeHeadDim: ropeDim,
    qkHeadDim: nope + ropeDim,
    vHeadDim: vHead,
    maxPositions,
    eps,
    rope,
    softmaxScale,
    indexNHeads,
    indexHeadDim,
    indexTopk,
    scaleFmt: q.scale_fmt === 'ue8m0' ? 'ue8m0' : null,
    eosTokenIds: typeof eos === 'number' ? [eos] : Array.isArray(eos) ? (eos as number[]) : [],
  };
}
