/**
 * The published DeepSeek-V3.2 config.json (test/fixtures, as shipped with the model) parses, and a
 * make-tiny checkpoint with its exact structure — every structural field the same, only the sizes
 * smaller — loads and runs across cache blocks, with the FP8 latent cache DeepSeek deploys.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadModel, type Model, parseConfig } from '../../lib/index.js';
import { KvCache } from '../../lib/model/kv-cache.js';
import { makeTinyCheckpoint } from '../../lib/tools/make-tiny/writer.js';

const real = JSON.parse(readFileSync(resolve(import.meta.dirname, '../fixtures/deepseek-v3.2.config.json'), 'utf8')) as Record<string, unknown>;

describe('the published DeepSeek-V3.2 config.json', () => {
  const cfg = parseConfig(real);
  it('parses with the fields of the model card', () => {
    expect(cfg.sparse).toBe(true);
    expect([cfg.nLayers, cfg.nDenseLayers, cfg.dim, cfg.nHeads, cfg.vocabSize]).toEqual([61, 3, 7168, 128, 129280]);
    expect([cfg.nRoutedExperts, cfg.nActivatedExperts, cfg.nExpertGroups, cfg.nLimitedGroups, cfg.nSharedExperts]).toEqual([256, 8, 8, 4, 1]);
    expect([cfg.qLoraRank, cfg.kvLoraRank, cfg.qkNopeHeadDim, cfg.qkRopeHeadDim, cfg.vHeadDim]).toEqual([1536, 512, 128, 64, 128]);
    expect([cfg.indexNHeads, cfg.indexHeadDim, cfg.indexTopk]).toEqual([64, 128, 2048]);
    expect(cfg.scaleFmt).toBe('ue8m0');
    expect(cfg.routeScale).toBe(2.5);
    expect(cfg.rope.factor).toBe(40);
    expect(cfg.rope.yarn).toBe(true);
    const mscale = 0.1 * Math.log(40) + 1;
    expect(cfg.softmaxScale).toBeCloseTo(192 ** -0.5 * mscale * mscale, 12);
  });

  it('KV cache: 656 bytes a layer for the FP8 latent (1152 as bf16), 132 for the indexer key', () => {
    expect(KvCache.latentRowBytes(cfg, 'bf16')).toBe(656);
    expect(KvCache.bytesPerToken(cfg, 'bf16')).toBe(61 * (656 + 128 + 4));
    // The same memory holds 1.75× the tokens of a bf16 latent cache (1152 bytes a layer).
    expect(1152 / KvCache.latentRowBytes(cfg, 'bf16')).toBeCloseTo(1.756, 3);
  });
});

describe('a make-tiny checkpoint with the structure of the published config', () => {
  let dir: string;
  let model: Model;
  // Sizes shrink; every structural choice (3 dense layers, 8 groups of which 4 are kept, 8 experts a
  // token, one shared expert, MLA widths 512/64/128/128, 128-dim indexer keys, YaRN ×40 over 4096,
  // ue8m0 scales, an MTP layer) stays as published.
  const dims = {
    vocab_size: 384, hidden_size: 256, intermediate_size: 256, moe_intermediate_size: 128, num_hidden_layers: 4,
    num_nextn_predict_layers: 1, num_attention_heads: 2, n_shared_experts: 1, n_routed_experts: 16,
    kv_lora_rank: 512, q_lora_rank: 128, qk_rope_head_dim: 64, v_head_dim: 128, qk_nope_head_dim: 128,
    n_group: 8, topk_group: 4, num_experts_per_tok: 8, first_k_dense_replace: 3,
    max_position_embeddings: 163840, original_max_position_embeddings: 4096,
    index_n_heads: 4, index_head_dim: 128, index_topk: 32,
  };
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dsn-v32-'));
    await makeTinyCheckpoint(dir, { dims, seed: 7 });
    model = await loadModel(dir, { maxSequences: 2, maxContext: 160 });
  });
  afterAll(async () => {
    await model?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('has the published structure', () => {
    const written = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    const sizes = new Set(['vocab_size', 'hidden_size', 'intermediate_size', 'moe_intermediate_size', 'num_hidden_layers', 'num_attention_heads',
      'num_key_value_heads', 'n_routed_experts', 'q_lora_rank', 'index_n_heads', 'index_topk']);
    const loose = new Set(['ep_size', 'transformers_version']); // bookkeeping fields make-tiny does not write
    for (const [k, v] of Object.entries(real)) if (!sizes.has(k) && !loose.has(k)) expect(written[k], k).toEqual(v);
    expect(model.kvCacheBytesPerToken).toBe(4 * (656 + 132));
  });

  it('runs a 130-token prompt (three cache blocks, DSA selecting 32 keys) and decodes', async () => {
    using seq = model.createSequence();
    const prompt = Array.from({ length: 130 }, (_, i) => (i * 37 + 11) % 384);
    const [a] = await model.forward([{ sequence: seq, tokens: prompt }]);
    const [b] = await model.forward([{ sequence: seq, tokens: [5] }]);
    for (const row of [a, b]) {
      expect(row.length).toBe(384);
      expect(row.every(Number.isFinite)).toBe(true);
    }
    expect(seq.length).toBe(131);
    expect(seq.blocks.length).toBe(3);
  });

  it('cacheBytes sizes the pool by memory: the FP8 latent fits 1.63× the blocks a bf16 latent would', async () => {
    // Memory for 10 blocks of a bf16-latent cache (1152 + 132 bytes a layer and token, 4 layers).
    const bf16PerToken = 4 * (1152 + 132);
    const bytes = 10 * 64 * bf16PerToken;
    await using m = await loadModel(dir, { maxSequences: 1, maxContext: 160, cacheBytes: bytes });
    expect(m.cacheBlocks).toBe(Math.floor(bytes / (64 * 4 * (656 + 132))));
    expect(m.cacheBlocks).toBe(16);
    expect(m.freeCacheBlocks).toBe(16);
    await expect(loadModel(dir, { cacheBytes: 1000 })).rejects.toThrow(/loadModel: expected at least one cache block \(201728 bytes\) for cacheBytes but received 1000/);
    await expect(loadModel(dir, { cacheBytes: -5 })).rejects.toThrow('loadModel: expected a positive integer for cacheBytes but received -5');
  });
});
