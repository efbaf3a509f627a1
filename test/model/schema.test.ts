/**
 * The checkpoint schema (lib/model/schema.ts) is the one list of the checkpoint's tensors: the
 * modules read exactly its tensors, the loader refuses a tensor whose shape differs from it (naming
 * the tensor, its shape and the expected one), and make-tiny writes it (test/tools/make-tiny.test.ts
 * compares make-tiny's checkpoints with the golden ones).
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { openCheckpoint } from '../../lib/io/checkpoint.js';
import { ConfigError, loadModel } from '../../lib/index.js';
import { parseConfig } from '../../lib/model/config.js';
import { checkpointSchema } from '../../lib/model/schema.js';
import { Transformer } from '../../lib/model/transformer.js';
import { CheckpointWeights } from '../../lib/model/weights.js';
import { GOLDEN } from '../golden-dir.js';

const tmp = mkdtempSync(join(tmpdir(), 'dsn-schema-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let counter = 0;

/** A copy of golden tiny-sparse with `edit` applied to the header entry of tensor `name` (its shape, say). */
function withHeaderEdit(name: string, edit: (entry: { dtype: string; shape: number[]; data_offsets: number[] }) => void): string {
  const dir = join(tmp, `ck-${counter++}`);
  cpSync(join(GOLDEN, 'tiny-sparse'), dir, { recursive: true });
  const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8'));
  const file = join(dir, index.weight_map[name]);
  const bytes = readFileSync(file);
  const headerBytes = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerBytes).toString('utf8'));
  edit(header[name]);
  const text = Buffer.from(JSON.stringify(header));
  const padded = Math.ceil(text.length / 8) * 8;
  const prefix = Buffer.alloc(8 + padded, 0x20);
  prefix.writeBigUInt64LE(BigInt(padded), 0);
  text.copy(prefix, 8);
  writeFileSync(file, Buffer.concat([prefix, bytes.subarray(8 + headerBytes)]));
  return dir;
}

describe('the checkpoint schema', () => {
  it('lists exactly the tensors the modules read from golden tiny-sparse (the MTP layer included)', () => {
    const dir = join(GOLDEN, 'tiny-sparse');
    using ck = openCheckpoint(dir);
    const cfg = parseConfig(ck.config);
    const weights = new CheckpointWeights(ck, 'cpu', cfg, dir);
    const model = new Transformer(weights, cfg, 'f32');
    try {
      expect(model.mtp).not.toBeNull();
      const schema = checkpointSchema(cfg);
      expect(schema.length).toBe(ck.names().length);
      expect(weights.unknown).toEqual([]);
      // Every schema tensor is read, but the MTP layer's own embedding (the reference shares the model's).
      const unread = schema.filter((t) => !weights.taken.has(t.name)).map((t) => t.name);
      expect(unread).toEqual([`model.layers.${cfg.nLayers}.embed_tokens.weight`]);
      expect([...weights.taken].every((n) => weights.schema.has(n))).toBe(true);
      // and each tensor read has the schema's shape
      for (const t of schema) expect({ name: t.name, shape: ck.info(t.name).shape }).toEqual({ name: t.name, shape: t.shape });
    } finally {
      model.dispose();
    }
  });

  it('a checkpoint stripped of its MTP layer loads without it, and nothing is reported unknown', () => {
    const dir = join(tmp, `ck-${counter++}`);
    cpSync(join(GOLDEN, 'tiny-sparse'), dir, { recursive: true });
    const indexPath = join(dir, 'model.safetensors.index.json');
    const index = JSON.parse(readFileSync(indexPath, 'utf8'));
    for (const name of Object.keys(index.weight_map)) if (name.startsWith('model.layers.4.')) delete index.weight_map[name];
    writeFileSync(indexPath, JSON.stringify(index));
    using ck = openCheckpoint(dir);
    const cfg = parseConfig(ck.config);
    expect(cfg.nMtpLayers).toBe(1);
    const weights = new CheckpointWeights(ck, 'cpu', cfg, dir);
    const model = new Transformer(weights, cfg, 'f32');
    try {
      expect(model.mtp).toBeNull();
      expect(weights.unknown).toEqual([]);
      expect(weights.schema.size).toBe(ck.names().length);
    } finally {
      model.dispose();
    }
  });

  it('a module reading a tensor the schema does not list is refused as a bug', () => {
    const dir = join(GOLDEN, 'tiny-sparse');
    using ck = openCheckpoint(dir);
    const weights = new CheckpointWeights(ck, 'cpu', parseConfig(ck.config), dir);
    expect(() => weights.tensor('model.layers.0.self_attn.q_proj.weight')).toThrow(
      "CheckpointWeights: 'model.layers.0.self_attn.q_proj.weight' is not in the checkpoint schema (lib/model/schema.ts); this is a bug in deepseek-native",
    );
  });

  it('a tensor of the wrong shape is an error at load naming it, its shape, the expected shape and the field', async () => {
    // Same bytes, another shape: only the shape check can notice.
    const kvA = 'model.layers.2.self_attn.kv_a_proj_with_mqa.weight'; // [kv_lora_rank + qk_rope_head_dim, hidden_size] = [160, 256]
    const swapped = withHeaderEdit(kvA, (e) => { e.shape = [256, 160]; });
    const err = await loadModel(swapped).catch((x) => x);
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toBe(`config.json: kv_lora_rank is 128 but ${kvA} has shape [256, 160], expected [160, 256] (dimension 0 should be 160 = kv_lora_rank + qk_rope_head_dim)`);

    const scale = 'model.layers.1.mlp.experts.5.down_proj.weight_scale_inv'; // [⌈256/128⌉, ⌈128/128⌉] = [2, 1]
    const reshaped = withHeaderEdit(scale, (e) => { e.shape = [2]; });
    await expect(loadModel(reshaped)).rejects.toThrow(
      `config.json and the checkpoint disagree: ${scale} has shape [2], expected [2, 1] = [⌈hidden_size / 128⌉, ⌈moe_intermediate_size / 128⌉]`,
    );
  });

  it('a config field the checkpoint disagrees with is named (q_lora_rank, which no op checks until it runs)', async () => {
    const dir = join(tmp, `ck-${counter++}`);
    cpSync(join(GOLDEN, 'tiny-sparse'), dir, { recursive: true });
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    cfg.q_lora_rank = 256;
    writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
    await expect(loadModel(dir)).rejects.toThrow(
      'config.json: q_lora_rank is 256 but model.layers.0.self_attn.q_a_proj.weight has shape [128, 256], expected [256, 256] (dimension 0 should be 256)',
    );
  });
});
