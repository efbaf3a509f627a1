/**
 * The checkpoint's tensors, built from the config: every tensor name a DeepSeek-V3.2 (or V3)
 * checkpoint holds (Hugging Face names), its shape, its dtype as the published checkpoints store
 * it, whether the model needs it, and which config.json fields decide each dimension. The loader
 * checks names and shapes with it (weights.ts), make-tiny writes it (tools/make-tiny/plan.ts), and
 * the modules read their tensors by these names.
 */
import type { DType } from '../runtime/tensor.js';
import type { ModelConfig } from './config.js';

/** What a tensor is (make-tiny draws its values by kind). */
export type TensorKind =
  | 'embedding' // [vocab, dim] bf16
  | 'norm' // a norm's weight, bf16
  | 'bias' // a norm's bias (bf16) or the router's correction bias (f32)
  | 'linear' // a bf16 weight [out, in]
  | 'fp8' // an FP8 E4M3 weight [out, in]
  | 'fp8-scale'; // its f32 block scales [⌈out/128⌉, ⌈in/128⌉]

/**
 * 'required': loading fails without it. 'optional': the model does without it (the router's
 * correction bias, the MTP layer's own embedding, which the reference shares with the model's).
 * 'mtp': part of a multi-token-prediction layer, loaded only when all of that layer's are present.
 */
export type TensorNeed = 'required' | 'optional' | 'mtp';

export interface TensorSpec {
  readonly name: string;
  /** As the published checkpoints store it (make-tiny writes it; the loader checks names and shapes,
   *  and each op checks the dtypes it is given). */
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** Per dimension, the config.json fields it is computed from: 'vocab_size', '⌈hidden_size / 128⌉'. */
  readonly dims: readonly string[];
  readonly kind: TensorKind;
  readonly need: TensorNeed;
}

/** A dimension: its size and the config.json fields it comes from. */
type Dim = readonly [size: number, from: string];

/** Rows and columns of a 128×128 block of an FP8 weight (quantization_config.weight_block_size). */
const WEIGHT_BLOCK = 128;

/**
 * Every tensor of the checkpoint `cfg` describes: embedding, final norm, LM head, the
 * `num_hidden_layers` blocks, then `mtpLayers` MTP layers (default num_nextn_predict_layers) at
 * index num_hidden_layers + i. Bound `cfg`'s counts by the checkpoint first (weights.ts does):
 * the list grows with layers × experts (92 425 tensors for DeepSeek-V3.2).
 */
export function checkpointSchema(cfg: ModelConfig, mtpLayers = cfg.nMtpLayers): TensorSpec[] {
  const b = schemaBuilder(cfg);
  b.model();
  for (let i = 0; i < mtpLayers; ++i) b.mtpLayer(i);
  return b.out;
}

/** The tensors of MTP layer `i` alone (at index num_hidden_layers + i). */
export function mtpLayerSchema(cfg: ModelConfig, i = 0): TensorSpec[] {
  const b = schemaBuilder(cfg);
  b.mtpLayer(i);
  return b.out;
}

function schemaBuilder(cfg: ModelConfig) {
  const out: TensorSpec[] = [];
  let need: TensorNeed = 'required';
  // Tensors of the same dims share one frozen shape and dims list (a V3.2 layer has 1 536 expert tensors).
  const layouts = new Map<Dim, Map<Dim | null, { shape: readonly number[]; dims: readonly string[] }>>();
  const layout = (rows: Dim, cols: Dim | null) => {
    let byCols = layouts.get(rows);
    if (!byCols) layouts.set(rows, (byCols = new Map()));
    let l = byCols.get(cols);
    if (!l) {
      const dims = cols ? [rows, cols] : [rows];
      byCols.set(cols, (l = { shape: Object.freeze(dims.map((d) => d[0])), dims: Object.freeze(dims.map((d) => d[1])) }));
    }
    return l;
  };
  /** A tensor `[rows]` (cols null) or `[rows, cols]`. */
  const add = (name: string, dtype: DType, kind: TensorKind, rows: Dim, cols: Dim | null, n: TensorNeed = need) =>
    out.push({ name, dtype, kind, need: n, ...layout(rows, cols) });
  const scaleDims = new Map<Dim, Dim>();
  const blocks = (d: Dim): Dim => {
    let s = scaleDims.get(d);
    if (!s) scaleDims.set(d, (s = [Math.ceil(d[0] / WEIGHT_BLOCK), `⌈${d[1]} / ${WEIGHT_BLOCK}⌉`]));
    return s;
  };
  const norm = (name: string, d: Dim) => add(`${name}.weight`, 'bf16', 'norm', d, null);
  const linear = (name: string, rows: Dim, cols: Dim) => add(`${name}.weight`, 'bf16', 'linear', rows, cols);
  const fp8 = (name: string, rows: Dim, cols: Dim) => {
    add(`${name}.weight`, 'f8e4m3', 'fp8', rows, cols);
    add(`${name}.weight_scale_inv`, 'f32', 'fp8-scale', blocks(rows), blocks(cols));
  };

  const H: Dim = [cfg.dim, 'hidden_size'];
  const V: Dim = [cfg.vocabSize, 'vocab_size'];
  const qLora: Dim = [cfg.qLoraRank, 'q_lora_rank'];
  const kvLora: Dim = [cfg.kvLoraRank, 'kv_lora_rank'];
  const qHeads: Dim = [cfg.nHeads * cfg.qkHeadDim, 'num_attention_heads × (qk_nope_head_dim + qk_rope_head_dim)'];
  const kvA: Dim = [cfg.kvLoraRank + cfg.qkRopeHeadDim, 'kv_lora_rank + qk_rope_head_dim'];
  const kvHeads: Dim = [cfg.nHeads * (cfg.qkNopeHeadDim + cfg.vHeadDim), 'num_attention_heads × (qk_nope_head_dim + v_head_dim)'];
  const vHeads: Dim = [cfg.nHeads * cfg.vHeadDim, 'num_attention_heads × v_head_dim'];
  const Di: Dim = [cfg.indexHeadDim, 'index_head_dim'];
  const indexQ: Dim = [cfg.indexNHeads * cfg.indexHeadDim, 'index_n_heads × index_head_dim'];
  const indexHeads: Dim = [cfg.indexNHeads, 'index_n_heads'];
  const E: Dim = [cfg.nRoutedExperts, 'n_routed_experts'];
  const inter: Dim = [cfg.interDim, 'intermediate_size'];
  const moeInter: Dim = [cfg.moeInterDim, 'moe_intermediate_size'];
  const sharedInter: Dim = [cfg.nSharedExperts * cfg.moeInterDim, 'n_shared_experts × moe_intermediate_size'];
  const H2: Dim = [2 * cfg.dim, '2 × hidden_size'];

  const mlp = (p: string, width: Dim) => {
    fp8(`${p}.gate_proj`, width, H);
    fp8(`${p}.up_proj`, width, H);
    fp8(`${p}.down_proj`, H, width);
  };
  /** One block's tensors: the same for a transformer block and an MTP layer's. */
  const block = (l: number) => {
    const p = `model.layers.${l}`;
    const a = `${p}.self_attn`;
    norm(`${p}.input_layernorm`, H);
    norm(`${p}.post_attention_layernorm`, H);
    fp8(`${a}.q_a_proj`, qLora, H);
    norm(`${a}.q_a_layernorm`, qLora);
    fp8(`${a}.q_b_proj`, qHeads, qLora);
    fp8(`${a}.kv_a_proj_with_mqa`, kvA, H);
    norm(`${a}.kv_a_layernorm`, kvLora);
    fp8(`${a}.kv_b_proj`, kvHeads, kvLora);
    fp8(`${a}.o_proj`, H, vHeads);
    if (cfg.sparse) {
      fp8(`${a}.indexer.wq_b`, indexQ, qLora);
      fp8(`${a}.indexer.wk`, Di, H);
      norm(`${a}.indexer.k_norm`, Di);
      add(`${a}.indexer.k_norm.bias`, 'bf16', 'bias', Di, null);
      linear(`${a}.indexer.weights_proj`, indexHeads, H);
    }
    if (l < cfg.nDenseLayers) {
      mlp(`${p}.mlp`, inter);
    } else {
      linear(`${p}.mlp.gate`, E, H);
      add(`${p}.mlp.gate.e_score_correction_bias`, 'f32', 'bias', E, null, 'optional');
      for (let e = 0; e < cfg.nRoutedExperts; ++e) mlp(`${p}.mlp.experts.${e}`, moeInter);
      if (cfg.nSharedExperts > 0) mlp(`${p}.mlp.shared_experts`, sharedInter);
    }
  };

  const model = () => {
    add('model.embed_tokens.weight', 'bf16', 'embedding', V, H);
    norm('model.norm', H);
    linear('lm_head', V, H);
    for (let l = 0; l < cfg.nLayers; ++l) block(l);
  };
  /** The MTP layer: a block, the two input norms and the projection of [e; h], its own head. */
  const mtpLayer = (i: number) => {
    need = 'mtp';
    const l = cfg.nLayers + i;
    const p = `model.layers.${l}`;
    block(l);
    add(`${p}.embed_tokens.weight`, 'bf16', 'embedding', V, H, 'optional');
    norm(`${p}.enorm`, H);
    norm(`${p}.hnorm`, H);
    linear(`${p}.eh_proj`, H, H2);
    norm(`${p}.shared_head.norm`, H);
    linear(`${p}.shared_head.head`, V, H);
  };
  return { out, model, mtpLayer };
}
