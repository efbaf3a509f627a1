/**
 * Which checkpoint tensors a config needs (Hugging Face names), and the WeightSource modules load
 * from: it checks every name up front (missing tensors are one error listing them; unknown ones a
 * warning) and hands out tensors on the model's device.
 */
import type { Tensor } from '../runtime/tensor.js';
import { ConfigError, type ModelConfig } from './config.js';
import type { WeightSource } from './linear.js';

function fp8(prefix: string): string[] {
  return [`${prefix}.weight`, `${prefix}.weight_scale_inv`];
}

function mlpNames(prefix: string): string[] {
  return [...fp8(`${prefix}.gate_proj`), ...fp8(`${prefix}.up_proj`), ...fp8(`${prefix}.down_proj`)];
}

/** Names of one block's tensors (layer index i). */
export function blockTensorNames(cfg: ModelConfig, i: number): string[] {
  const p = `model.layers.${i}`;
  const a = `${p}.self_attn`;
  const names = [
    `${p}.input_layernorm.weight`,
    `${p}.post_attention_layernorm.weight`,
    ...fp8(`${a}.q_a_proj`),
    `${a}.q_a_layernorm.weight`,
    ...fp8(`${a}.q_b_proj`),
    ...fp8(`${a}.kv_a_proj_with_mqa`),
    `${a}.kv_a_layernorm.weight`,
    ...fp8(`${a}.kv_b_proj`),
    ...fp8(`${a}.o_proj`),
  ];
  if (cfg.sparse)
    names.push(...fp8(`${a}.indexer.wq_b`), ...fp8(`${a}.indexer.wk`), `${a}.indexer.k_norm.weight`, `${a}.indexer.k_norm.bias`, `${a}.indexer.weights_proj.weight`);
  if (i < cfg.nDenseLayers) {
    names.push(...mlpNames(`${p}.mlp`));
  } else {
    names.push(`${p}.mlp.gate.weight`);
    for (let e = 0; e < cfg.nRoutedExperts; ++e) names.push(...mlpNames(`${p}.mlp.experts.${e}`));
    if (cfg.nSharedExperts > 0) names.push(...mlpNames(`${p}.mlp.shared_experts`));
  }
  return names;
}

/** Names of the MTP layer's own tensors (besides its block), at index num_hidden_layers. */
export function mtpTensorNames(cfg: ModelConfig): string[] {
  const p = `model.layers.${cfg.nLayers}`;
  return [`${p}.enorm.weight`, `${p}.hnorm.weight`, `${p}.eh_proj.weight`, `${p}.shared_head.norm.weight`, `${p}.shared_head.head.weight`];
}

/** Every tensor the model needs (optional ones — the router's correction bias, the MTP layer — excluded). */
export function requiredTensorNames(cfg: ModelConfig): string[] {
  const names = ['model.embed_tokens.weight', 'model.norm.weight', 'lm_head.weight'];
  for (let i = 0; i < cfg.nLayers; ++i) names.push(...blockTensorNames(cfg, i));
  return names;
}

/** What a checkpoint offers the loader. */
export interface TensorStore {
  names(): string[];
  has(name: string): boolean;
  tensor(name: string, device: string): Tensor;
  /** The tensor's shape without loading it (a Checkpoint has it); enables the shape checks. */
  info?(name: string): { readonly shape: readonly number[] };
}

/**
 * Bounds the config's counts by what the checkpoint holds, before any list of names is built from
 * them (num_hidden_layers: 1e9 would otherwise build a billion names): num_hidden_layers is at most
 * the number of `model.layers.N` in the checkpoint, n_routed_experts at most the number of
 * `mlp.experts.E`. Throws ConfigError naming the field, its value and what the checkpoint holds.
 */
function boundByCheckpoint(names: readonly string[], cfg: ModelConfig): void {
  let layers = 0, experts = 0;
  const layer = /^model\.layers\.(\d+)\./, expert = /\.mlp\.experts\.(\d+)\./;
  for (const n of names) {
    const l = layer.exec(n);
    if (l) layers = Math.max(layers, Number(l[1]) + 1);
    const e = expert.exec(n);
    if (e) experts = Math.max(experts, Number(e[1]) + 1);
  }
  if (cfg.nLayers > layers)
    throw new ConfigError(`config.json: num_hidden_layers is ${cfg.nLayers} but the checkpoint holds ${layers} layer(s) (model.layers.0 … model.layers.${layers - 1})`);
  if (cfg.nLayers > cfg.nDenseLayers && cfg.nRoutedExperts > experts)
    throw new ConfigError(`config.json: n_routed_experts is ${cfg.nRoutedExperts} but the checkpoint holds ${experts} routed expert(s) per layer (mlp.experts.0 … mlp.experts.${experts - 1})`);
}

/** Checks the tensors whose shapes the config's sizes decide, naming the field, its value and the
 *  tensor's shape: a vocab_size or num_attention_heads that disagrees with the weights is an error at
 *  load, not misaligned logits or a bare reshape error at the first step. */
function checkShapes(store: TensorStore, cfg: ModelConfig): void {
  if (!store.info) return;
  const shape = (name: string) => store.info!(name).shape;
  const expectDim = (name: string, dim: number, field: string, value: number, want: number, how = '') => {
    const s = shape(name);
    if (s[dim] !== want)
      throw new ConfigError(`config.json: ${field} is ${value} but ${name} has shape [${s.join(', ')}] (dimension ${dim} should be ${want}${how})`);
  };
  for (const name of ['model.embed_tokens.weight', 'lm_head.weight']) {
    expectDim(name, 0, 'vocab_size', cfg.vocabSize, cfg.vocabSize);
    expectDim(name, 1, 'hidden_size', cfg.dim, cfg.dim);
  }
  for (let i = 0; i < cfg.nLayers; ++i) {
    const a = `model.layers.${i}.self_attn`;
    expectDim(`${a}.q_b_proj.weight`, 0, 'num_attention_heads', cfg.nHeads, cfg.nHeads * cfg.qkHeadDim, ` = num_attention_heads × (qk_nope_head_dim + qk_rope_head_dim)`);
    expectDim(`${a}.kv_b_proj.weight`, 0, 'num_attention_heads', cfg.nHeads, cfg.nHeads * (cfg.qkNopeHeadDim + cfg.vHeadDim), ' = num_attention_heads × (qk_nope_head_dim + v_head_dim)');
    expectDim(`${a}.o_proj.weight`, 1, 'num_attention_heads', cfg.nHeads, cfg.nHeads * cfg.vHeadDim, ' = num_attention_heads × v_head_dim');
  }
}

export class MissingTensorsError extends Error {
  override name = 'MissingTensorsError';
}

/** The WeightSource of one model load: checks names up front and counts what was taken. */
export class CheckpointWeights implements WeightSource {
  readonly taken = new Set<string>();
  readonly unknown: string[];

  constructor(readonly store: TensorStore, readonly device: string, cfg: ModelConfig, readonly dir: string) {
    const all = store.names();
    boundByCheckpoint(all, cfg);
    const required = requiredTensorNames(cfg);
    const missing = required.filter((n) => !store.has(n));
    if (missing.length) {
      const shown = missing.slice(0, 20).join('\n  ');
      throw new MissingTensorsError(
        `${dir}: the checkpoint lacks ${missing.length} tensor(s) the config needs:\n  ${shown}${missing.length > 20 ? `\n  … and ${missing.length - 20} more` : ''}`,
      );
    }
    const known = new Set(required);
    const layerPrefix = /^model\.layers\.(\d+)\./;
    checkShapes(store, cfg);
    this.unknown = all.filter((n) => {
      if (known.has(n)) return false;
      const m = layerPrefix.exec(n);
      if (m && Number(m[1]) >= cfg.nLayers) return false; // MTP layers
      return !/\.mlp\.gate\.e_score_correction_bias$/.test(n);
    });
  }

  has(name: string): boolean {
    return this.store.has(name);
  }

  tensor(name: string): Tensor {
    this.taken.add(name);
    return this.store.tensor(name, this.device);
  }
}
