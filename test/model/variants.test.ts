/**
 * Model-level variants the golden checkpoints do not cover (issue 11) — deepseek_v3 (no DSA),
 * softmax scoring, scale_fmt null — as consistency tests: prompts of unequal lengths (one crossing a
 * 64-token block) prefilled in one batch give each prompt's logits alone, and the variant really
 * changes the function. Plus parseConfig's error branches, each by its message.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ConfigError, loadModel, ops, parseConfig } from '../../lib/index.js';
import { GOLDEN, tinySparseVariant } from '../golden-dir.js';
import { relL2, rng } from '../helpers.js';

const VOCAB = 512;
/** Batched against alone, in f32 activations, with batch-invariant GEMMs (ops.setBatchInvariant):
 *  a row's products no longer depend on how many rows share them, so the two are the same
 *  function in the same order: bit-identical in practice, 1e-6 to be safe. Without invariance a
 *  7-token prompt alone runs the few-rows kernels and batched the blocked ones, and one FP8 rounding
 *  flip that order causes can move a row by 1e-2 and more (seed 1225347432: deepseek_v3, prompt 0). */
const SAME_ROW = 1e-6;

const dir = mkdtempSync(join(tmpdir(), 'dsn-variants-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const variant = (name: string, edit: (cfg: Record<string, any>) => void): string => tinySparseVariant(dir, name, edit);

const VARIANTS: [string, (cfg: Record<string, any>) => void][] = [
  ['deepseek_v3 (no DSA)', (c) => { c.model_type = 'deepseek_v3'; }],
  ['softmax scoring', (c) => { c.scoring_func = 'softmax'; }],
  ['scale_fmt null', (c) => { c.quantization_config.scale_fmt = null; }],
];

describe('model variants: batched = alone, and the variant changes the function', () => {
  const r = rng();
  const lengths = [r.int(2, 9), r.int(10, 40), r.int(65, 100)];  // the last one crosses a block
  const prompts = lengths.map((n) => Array.from({ length: n }, () => r.int(0, VOCAB - 1)));
  let base: Float32Array[];
  beforeAll(() => ops.setBatchInvariant(true));
  afterAll(() => ops.setBatchInvariant(false));
  beforeAll(async () => {
    const model = await loadModel(join(GOLDEN, 'tiny-sparse'), { activations: 'f32', maxSequences: 3, maxContext: 128 });
    try {
      base = await model.logits(prompts.map((tokens) => ({ tokens })));
    } finally {
      await model.dispose();
    }
  });

  for (const [name, edit] of VARIANTS) {
    it(`${name}: prompts of ${lengths.join(', ')} tokens in one batch (seed ${r.seed})`, async () => {
      const unknown: string[] = [];
      const model = await loadModel(variant(name.split(' ')[0] + name.length, edit), {
        activations: 'f32',
        maxSequences: 3,
        maxContext: 128,
        onUnknownTensors: (names) => unknown.push(...names),
      });
      try {
        if (name.startsWith('deepseek_v3')) expect(unknown.length > 0 && unknown.every((n) => n.includes('.indexer.'))).toBe(true);
        else expect(unknown).toEqual([]);
        const batched = await model.logits(prompts.map((tokens) => ({ tokens })));
        for (let i = 0; i < prompts.length; ++i) {
          const [alone] = await model.logits([{ tokens: prompts[i] }]);
          expect(batched[i].length).toBe(VOCAB);
          expect({ prompt: i, relL2: relL2(batched[i], alone) < SAME_ROW }).toEqual({ prompt: i, relL2: true });
          // The variant is not a no-op: its logits differ from tiny-sparse's (without DSA, only
          // where a prompt has more keys than index_topk, 8).
          if (!name.startsWith('deepseek_v3') || prompts[i].length > 8) expect({ prompt: i, differs: relL2(alone, base[i]) > 1e-3 }).toEqual({ prompt: i, differs: true });
        }
      } finally {
        await model.dispose();
      }
    });
  }
});

describe('parseConfig error branches', () => {
  const good = JSON.parse(readFileSync(join(GOLDEN, 'tiny-sparse', 'config.json'), 'utf8'));
  const cases: [string, (c: Record<string, any>) => void, string][] = [
    ['not an object', () => undefined, 'config.json: expected a JSON object'],
    ['model_type', (c) => { c.model_type = 'llama'; }, `config.json: model_type is "llama"; allowed: 'deepseek_v32' or 'deepseek_v3'`],
    ['hidden_size', (c) => { c.hidden_size = 0; }, 'config.json: hidden_size is 0; allowed: an integer >= 1'],
    ['first_k_dense_replace', (c) => { c.first_k_dense_replace = 5; }, 'config.json: first_k_dense_replace is 5; allowed: an integer <= num_hidden_layers (4)'],
    ['num_experts_per_tok', (c) => { c.num_experts_per_tok = 17; }, 'config.json: num_experts_per_tok is 17; allowed: an integer <= n_routed_experts (16)'],
    ['n_group', (c) => { c.n_group = 3; }, 'config.json: n_group is 3; allowed: a divisor of n_routed_experts (16)'],
    ['topk_group too few', (c) => { c.topk_group = 1; c.num_experts_per_tok = 5; }, 'config.json: topk_group is 1; allowed: enough groups to hold num_experts_per_tok (5) experts'],
    ['scoring_func', (c) => { c.scoring_func = 'relu'; }, `config.json: scoring_func is "relu"; allowed: 'sigmoid' or 'softmax'`],
    ['hidden_act', (c) => { c.hidden_act = 'gelu'; }, `config.json: hidden_act is "gelu"; allowed: 'silu'`],
    ['moe_layer_freq', (c) => { c.moe_layer_freq = 2; }, 'config.json: moe_layer_freq is 2; allowed: 1'],
    ['qk_rope_head_dim', (c) => { c.qk_rope_head_dim = 33; }, 'config.json: qk_rope_head_dim is 33; allowed: an even integer'],
    ['rope_theta', (c) => { c.rope_theta = -1; }, 'config.json: rope_theta is -1; allowed: a number > 0'],
    ['norm_topk_prob', (c) => { c.norm_topk_prob = 'yes'; }, 'config.json: norm_topk_prob is "yes"; allowed: true or false'],
    ['tie_word_embeddings', (c) => { c.tie_word_embeddings = true; }, 'config.json: tie_word_embeddings is true; allowed: false (DeepSeek checkpoints have their own lm_head)'],
    ['quantization_config', (c) => { delete c.quantization_config; }, 'config.json: quantization_config is undefined; allowed: an fp8 quantization config'],
    ['quant_method', (c) => { c.quantization_config.quant_method = 'awq'; }, `config.json: quantization_config.quant_method is "awq"; allowed: 'fp8'`],
    ['fmt', (c) => { c.quantization_config.fmt = 'e5m2'; }, `config.json: quantization_config.fmt is "e5m2"; allowed: 'e4m3'`],
    ['weight_block_size', (c) => { c.quantization_config.weight_block_size = [64, 64]; }, 'config.json: quantization_config.weight_block_size is [64,64]; allowed: [128, 128]'],
    ['scale_fmt', (c) => { c.quantization_config.scale_fmt = 'e8m0'; }, `config.json: quantization_config.scale_fmt is "e8m0"; allowed: 'ue8m0' or null`],
    ['activation_scheme', (c) => { c.quantization_config.activation_scheme = 'static'; }, `config.json: quantization_config.activation_scheme is "static"; allowed: 'dynamic'`],
    ['hidden_size multiple of 128', (c) => { c.hidden_size = 200; }, 'config.json: hidden_size is 200; allowed: a multiple of 128 (FP8 activations are quantised per 128 values)'],
    ['v_head_dim', (c) => { c.v_head_dim = 48; }, 'config.json: v_head_dim is 48; allowed: a value with num_attention_heads × v_head_dim a multiple of 128'],
    ['rope_scaling.type', (c) => { c.rope_scaling.type = 'linear'; }, `config.json: rope_scaling.type is "linear"; allowed: 'yarn'`],
    ['rope_scaling.factor', (c) => { c.rope_scaling.factor = 0; }, 'config.json: rope_scaling.factor is 0; allowed: a number > 0'],
  ];
  for (const [name, edit, message] of cases) {
    it(name, () => {
      const c = structuredClone(good);
      edit(c);
      const arg = name === 'not an object' ? [c] : c;
      expect(() => parseConfig(arg)).toThrow(ConfigError);
      expect(() => parseConfig(arg)).toThrow(message);
    });
  }
  it('accepts the golden config', () => {
    expect(parseConfig(good).sparse).toBe(true);
  });
});
