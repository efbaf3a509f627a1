/**
 * Which checkpoint tensors a config needs (Hugging Face names), and the WeightSource modules load
 * from: it checks every name up front (missing tensors are one error listing them; unknown ones a
 * warning) and hands out tensors on the model's device.
 */
import type { Tensor } from '../runtime/tensor.js';
import type { ModelConfig } from './config.js';
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
}

export class MissingTensorsError extends Error {
  override name = 'MissingTensorsError';
}

/** The WeightSource of one model load: checks names up front and counts what was taken. */
export class CheckpointWeights implements WeightSource {
  readonly taken = new Set<string>();
  readonly unknown: string[];

  constructor(readonly store: TensorStore, readonly device: string, cfg: ModelConfig, readonly dir: string) {
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
    this.unknown = store.names().filter((n) => {
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
