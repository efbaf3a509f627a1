/** make-tiny's tensor plan: every tensor of the checkpoint, its dtype and shape, and how its values are made. */
import type { DType } from '../../runtime/tensor.js';
import type { TinyDims } from './dims.js';

/** How a tensor's values are made. */
export type Kind =
  | { kind: 'fp8'; fanIn: number } // FP8 codes of N(0,1)/√fanIn, quantised per 128×128 block
  | { kind: 'scale'; weight: string } // the block scales of `weight`
  | { kind: 'normal'; std: number; mean?: number }; // bf16 / f32 values mean + std·N(0,1)

export interface PlannedTensor {
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
