/**
 * The WeightSource modules load from: it checks the checkpoint against the schema the config gives
 * (schema.ts) before any tensor is read — missing tensors are one error listing them, a tensor of
 * the wrong shape an error naming it, its shape and the expected one, unknown tensors a warning —
 * and hands out tensors on the model's device.
 */
import type { Tensor } from '../runtime/tensor.js';
import { ConfigError, type ModelConfig } from './config.js';
import type { WeightSource } from './linear.js';
import { checkpointSchema, type TensorSpec } from './schema.js';

/** What a checkpoint offers the loader. */
export interface TensorStore {
  names(): string[];
  has(name: string): boolean;
  tensor(name: string, device: string): Tensor;
  /** The tensor's shape without loading it (a Checkpoint has it); enables the shape checks. */
  info?(name: string): { readonly shape: readonly number[] };
}

/**
 * Bounds the config's counts by what the checkpoint holds, before the schema is built from them
 * (num_hidden_layers: 1e9 would otherwise build a billion names): num_hidden_layers is at most
 * the number of `model.layers.N` in the checkpoint, n_routed_experts at most the number of
 * `mlp.experts.E`. Throws ConfigError naming the field, its value and what the checkpoint holds.
 * Returns the MTP layers to expect: num_nextn_predict_layers, or fewer when the checkpoint holds
 * fewer layers after the blocks (checkpoints stripped of the MTP layer are common).
 */
function boundByCheckpoint(names: readonly string[], cfg: ModelConfig): number {
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
  return Math.min(cfg.nMtpLayers, layers - cfg.nLayers);
}

/**
 * Checks the shape of every schema tensor the checkpoint holds. A wrong shape is a ConfigError
 * naming the tensor, its shape, the expected one and the config.json field the first differing
 * dimension comes from (a vocab_size or num_attention_heads that disagrees with the weights is an
 * error at load, not misaligned logits or a bare reshape error at the first step).
 */
function checkShapes(store: TensorStore, schema: readonly TensorSpec[], cfg: ModelConfig): void {
  if (!store.info) return;
  for (const t of schema) {
    if (!store.has(t.name)) continue;
    const s = store.info(t.name).shape;
    if (s.length === t.shape.length && s.every((d, i) => d === t.shape[i])) continue;
    const got = `[${s.join(', ')}]`, want = `[${t.shape.join(', ')}]`;
    const d = s.length === t.shape.length ? s.findIndex((x, i) => x !== t.shape[i]) : -1;
    if (d < 0) throw new ConfigError(`config.json and the checkpoint disagree: ${t.name} has shape ${got}, expected ${want} = [${t.dims.join(', ')}]`);
    const from = t.dims[d];
    const field = /[a-z_]+/.exec(from)![0];
    const value = (cfg.hf as unknown as Record<string, unknown>)[field];
    throw new ConfigError(`config.json: ${field} is ${JSON.stringify(value)} but ${t.name} has shape ${got}, expected ${want} (dimension ${d} should be ${t.shape[d]}${from === field ? '' : ` = ${from}`})`);
  }
}

export class MissingTensorsError extends Error {
  override name = 'MissingTensorsError';
}

/** The WeightSource of one model load: checks names up front and counts what was taken. */
export class CheckpointWeights implements WeightSource {
  readonly taken = new Set<string>();
  readonly unknown: string[];

  /** The checkpoint's tensors as the config describes them, by name. */
  readonly schema: ReadonlyMap<string, TensorSpec>;

  constructor(readonly store: TensorStore, readonly device: string, cfg: ModelConfig, readonly dir: string) {
    const all = store.names();
    const schema = checkpointSchema(cfg, boundByCheckpoint(all, cfg));
    const missing = schema.filter((t) => t.need === 'required' && !store.has(t.name)).map((t) => t.name);
    if (missing.length) {
      const shown = missing.slice(0, 20).join('\n  ');
      throw new MissingTensorsError(
        `${dir}: the checkpoint lacks ${missing.length} tensor(s) the config needs:\n  ${shown}${missing.length > 20 ? `\n  … and ${missing.length - 20} more` : ''}`,
      );
    }
    checkShapes(store, schema, cfg);
    this.schema = new Map(schema.map((t) => [t.name, t]));
    this.unknown = all.filter((n) => !this.schema.has(n));
  }

  has(name: string): boolean {
    return this.store.has(name);
  }

  /** The tensor `name`, which must be in the schema: a module reading a name the schema lacks is a bug. */
  tensor(name: string): Tensor {
    if (!this.schema.has(name)) throw new Error(`CheckpointWeights: '${name}' is not in the checkpoint schema (lib/model/schema.ts); this is a bug in deepseek-native`);
    this.taken.add(name);
    return this.store.tensor(name, this.device);
  }
}
