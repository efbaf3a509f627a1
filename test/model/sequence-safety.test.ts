/**
 * Issue 11: what a hostile caller can do to a model and its sequences without corrupting them —
 * token arrays changed after the call, truncate/dispose with work queued, a block given back twice,
 * configs that disagree with the tensors — and the surface no other suite reached: allPositions,
 * truncate, the load options, rollback of a step that cannot run, concurrent forward calls.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CacheFullError, ConfigError, DisposedError, loadModel, MissingTensorsError, type Model, type Sequence, tensor } from '../../lib/index.js';
import { native } from '../../lib/runtime/native.js';
import { BlockPool } from '../../lib/model/kv-cache.js';
import { GOLDEN, tinySparseVariant } from '../golden-dir.js';
import { relL2, rng } from '../helpers.js';

const VOCAB = 512;
const tokens = (r: ReturnType<typeof rng>, n: number) => Array.from({ length: n }, () => r.int(0, VOCAB - 1));
const same = (a: Float32Array, b: Float32Array) => a.length === b.length && a.every((v, i) => Object.is(v, b[i]));

describe('sequences under misuse (tiny-sparse)', () => {
  const r = rng();
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(join(GOLDEN, 'tiny-sparse'), { maxSequences: 4, maxContext: 192 });
  });
  afterAll(async () => model?.dispose());

  /** Logits of `toks` prefilled alone on a fresh sequence. */
  const alone = async (toks: number[]) => (await model.logits([{ tokens: toks }]))[0];

  it(`copies the tokens when called: changing the array afterwards changes nothing (seed ${r.seed})`, async () => {
    const toks = tokens(r, r.int(2, 20));
    const want = await alone(toks);
    using seq = model.createSequence();
    const arg = [...toks];
    const pending = model.forward([{ sequence: seq, tokens: arg }]);
    arg.fill(0);
    arg.push(5);
    const [got] = await pending;
    expect(seq.length).toBe(toks.length);
    expect(same(got, want)).toBe(true);
  });

  it('truncate() with a step queued fails clearly and changes nothing', async () => {
    using seq = model.createSequence();
    const toks = tokens(r, 70);
    const pending = model.forward([{ sequence: seq, tokens: toks }]);
    expect(seq.busy).toBe(true);
    expect(() => seq.truncate(0)).toThrow(`sequence ${seq.id}: cannot truncate while a forward step that uses it is queued or running; await that forward() first`);
    await pending;
    expect(seq.busy).toBe(false);
    expect(seq.length).toBe(70);
    expect(seq.blocks.length).toBe(2);
  });

  it('dispose() of a sequence whose step is queued fails that step and gives its blocks back once', async () => {
    const free = model.freeCacheBlocks;
    using a = model.createSequence();
    const b = model.createSequence();
    const first = model.forward([{ sequence: a, tokens: tokens(r, 100) }]);
    const second = model.forward([{ sequence: b, tokens: tokens(r, 100) }]);  // queued behind `first`
    b.dispose();
    await first;
    await expect(second).rejects.toThrow(DisposedError);
    expect(model.freeCacheBlocks).toBe(free - 2);
    a.dispose();
    expect(model.freeCacheBlocks).toBe(free);
  });

  it(`dispose() while the step runs: the blocks go back after it, and later sequences decode right (seed ${r.seed})`, async () => {
    const free = model.freeCacheBlocks;
    const toks = tokens(r, 130);
    const victim = model.createSequence();
    const running = model.forward([{ sequence: victim, tokens: toks }]);
    await new Promise((res) => setImmediate(res));  // the step has reserved its blocks and queued its ops
    victim.dispose();
    expect(model.freeCacheBlocks).toBeLessThan(free);  // still held by the running step
    await running.catch(() => undefined);
    expect(model.freeCacheBlocks).toBe(free);
    // Two new sequences now take those blocks; each must compute as if alone.
    const p = tokens(r, 90), q = tokens(r, 40);
    using s1 = model.createSequence();
    using s2 = model.createSequence();
    const [g1, g2] = await model.forward([{ sequence: s1, tokens: p }, { sequence: s2, tokens: q }]);
    expect(new Set([...s1.blocks, ...s2.blocks]).size).toBe(s1.blocks.length + s2.blocks.length);
    // Against the same batch on fresh sequences (in bf16 a batch's shape can move a row by a
    // rounding flip, so "alone" is not the reference here; the same shape is, bit for bit).
    const [w1, w2] = await model.logits([{ tokens: p }, { tokens: q }]);
    expect(same(g1, w1)).toBe(true);
    expect(same(g2, w2)).toBe(true);
  });

  it(`truncate() then re-feeding the dropped tokens computes what that chunking computes (seed ${r.seed})`, async () => {
    // tiny-dense in f32: the two runs differ only in how long the first prefill was, which changes
    // nothing there. (Not tiny-sparse: its DSA top-8 breaks ties among equal scores as torch.topk
    // does, which depends on the row's length, so a longer prefill may choose other keys for earlier
    // rows — the reference does the same.)
    const f32 = await loadModel(join(GOLDEN, 'tiny-dense'), { activations: 'f32', maxSequences: 2, maxContext: 128 });
    try {
      const toks = tokens(r, 80);
      const keep = r.int(1, 79);
      // The same two steps on a fresh sequence: prefill toks[0, keep), then toks[keep, 80).
      using ref = f32.createSequence();
      await f32.forward([{ sequence: ref, tokens: toks.slice(0, keep) }]);
      const [want] = await f32.forward([{ sequence: ref, tokens: toks.slice(keep) }]);
      using seq = f32.createSequence();
      await f32.forward([{ sequence: seq, tokens: toks }]);
      expect(seq.blocks.length).toBe(2);
      seq.truncate(keep);
      expect(seq.length).toBe(keep);
      expect(seq.blocks.length).toBe(Math.ceil(keep / 64));
      expect(f32.freeCacheBlocks).toBe(4 - 2 - Math.ceil(keep / 64));
      const [got] = await f32.forward([{ sequence: seq, tokens: toks.slice(keep) }]);
      expect(seq.length).toBe(80);
      expect({ keep, relL2: relL2(got, want) < 1e-5 }).toEqual({ keep, relL2: true });
      expect(() => seq.truncate(81)).toThrow(RangeError);
      expect(() => seq.truncate(1.5)).toThrow(RangeError);
    } finally {
      await f32.dispose();
    }
  });

  it(`forward({ allPositions }) returns every position: its last row as without it, row i as the prefill of i + 1 tokens (seed ${r.seed})`, async () => {
    const toks = tokens(r, r.int(3, 12));
    using a = model.createSequence();
    using b = model.createSequence();
    const [all] = await model.forward([{ sequence: a, tokens: toks }], { allPositions: true });
    const [last] = await model.forward([{ sequence: b, tokens: toks }]);
    expect(all.length).toBe(toks.length * VOCAB);
    // The LM head then runs over more rows (another GEMM blocking): f32 summation order only.
    expect(relL2(all.subarray((toks.length - 1) * VOCAB), last)).toBeLessThan(1e-5);
    // Row i is the prefill of i + 1 tokens: on tiny-dense in f32, where that holds to summation
    // order (tiny-sparse's top-8 breaks ties by the row's length, as torch.topk does, and bf16 can
    // flip a rounding with the batch's shape). A prompt of one token runs the decode form instead,
    // so rows from 1 on are compared.
    const dense = await loadModel(join(GOLDEN, 'tiny-dense'), { activations: 'f32', maxSequences: 2, maxContext: 64 });
    try {
      using d = dense.createSequence();
      const [rows] = await dense.forward([{ sequence: d, tokens: toks }], { allPositions: true });
      for (let i = 1; i < toks.length; ++i) {
        const [want] = await dense.logits([{ tokens: toks.slice(0, i + 1) }]);
        expect({ row: i, ok: relL2(rows.subarray(i * VOCAB, (i + 1) * VOCAB), want) < 1e-5 }).toEqual({ row: i, ok: true });
      }
    } finally {
      await dense.dispose();
    }
  });

  it('concurrent forward calls run in call order, each as if alone', async () => {
    const ps = [tokens(r, 5), tokens(r, 9), tokens(r, 3)];
    const seqs = ps.map(() => model.createSequence());
    try {
      const results = await Promise.all(ps.map((p, i) => model.forward([{ sequence: seqs[i], tokens: p }])));
      for (let i = 0; i < ps.length; ++i) expect(same(results[i][0], await alone(ps[i]))).toBe(true);
    } finally {
      for (const s of seqs) s.dispose();
    }
  });

  it(`a step that fails on the stream leaves its sequences as they were (seed ${r.seed})`, async () => {
    const free = model.freeCacheBlocks;
    using seq = model.createSequence();
    const first = tokens(r, r.int(1, 60)), second = tokens(r, r.int(10, 60));
    await model.forward([{ sequence: seq, tokens: first }]);
    const blocks = [...seq.blocks];
    // An error raised on the CPU stream before the step's ops: the step's read rejects with it.
    using x = tensor(new Float32Array(1));
    native().ops.debugRaise(x.handle(), 'planted failure');
    await expect(model.forward([{ sequence: seq, tokens: second }])).rejects.toThrow('debugRaise: planted failure');
    expect(seq.length).toBe(first.length);
    expect(seq.blocks).toEqual(blocks);
    expect(model.freeCacheBlocks).toBe(free - blocks.length);
    // The sequence then computes what a sequence that never saw the failure computes.
    const [got] = await model.forward([{ sequence: seq, tokens: second }]);
    using ref = model.createSequence();
    await model.forward([{ sequence: ref, tokens: first }]);
    const [want] = await model.forward([{ sequence: ref, tokens: second }]);
    expect(same(got, want)).toBe(true);
  });

  it('a step that cannot run rolls every item back (CacheFullError by type)', async () => {
    const free = model.freeCacheBlocks;
    const holders: Sequence[] = [];
    try {
      // Leave two free blocks, then ask for one block and for three in one batch.
      while (model.freeCacheBlocks > 2) {
        const h = model.createSequence();
        holders.push(h);
        await model.forward([{ sequence: h, tokens: tokens(r, Math.min(64 * (model.freeCacheBlocks - 2), 192)) }]);
      }
      using x = model.createSequence();
      using y = model.createSequence();
      const err = await model.forward([{ sequence: x, tokens: tokens(r, 10) }, { sequence: y, tokens: tokens(r, 150) }]).catch((e) => e);
      expect(err).toBeInstanceOf(CacheFullError);
      expect(x.length).toBe(0);
      expect(x.blocks.length).toBe(0);
      expect(model.freeCacheBlocks).toBe(2);
    } finally {
      for (const h of holders) h.dispose();
    }
    expect(model.freeCacheBlocks).toBe(free);
  });
});

describe('BlockPool', () => {
  it('never takes a block back twice, nor one it never gave', () => {
    const pool = new BlockPool(4);
    const a = pool.take(2, 'test');
    pool.give(a);
    expect(() => pool.give(a)).toThrow('BlockPool: block');
    expect(() => pool.give([7])).toThrow('was never taken');
    const b = pool.take(3, 'test');
    expect(() => pool.give([b[0], b[0]])).toThrow('given back twice');
    expect(pool.freeBlocks).toBe(1);
    pool.give(b);
    expect(pool.freeBlocks).toBe(4);
    expect(() => pool.take(5, 'test')).toThrow(CacheFullError);
  });
});

describe('configs that disagree with the checkpoint', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'dsn-cfg-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** A copy of tiny-sparse with its config changed by `edit`. */
  const variant = (name: string, edit: (cfg: Record<string, any>) => void): string => tinySparseVariant(dir, name, edit);

  it('vocab_size that is not the embedding rows is an error naming field, value and shape', async () => {
    const m = variant('vocab', (c) => { c.vocab_size = 500; });
    const err = await loadModel(m).catch((e) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toBe('config.json: vocab_size is 500 but model.embed_tokens.weight has shape [512, 256], expected [500, 256] (dimension 0 should be 500)');
  });

  it('num_attention_heads that disagrees with the projections is an error naming it', async () => {
    const m = variant('heads', (c) => { c.num_attention_heads = 8; });
    await expect(loadModel(m)).rejects.toThrow('config.json: num_attention_heads is 8 but model.layers.0.self_attn.q_b_proj.weight has shape [384, 128], expected [768, 128] (dimension 0 should be 768 = num_attention_heads × (qk_nope_head_dim + qk_rope_head_dim))');
  });

  it('num_hidden_layers: 1e9 is bounded by the checkpoint before anything is built', async () => {
    const m = variant('layers', (c) => { c.num_hidden_layers = 1e9; });
    const t0 = performance.now();
    await expect(loadModel(m)).rejects.toThrow('config.json: num_hidden_layers is 1000000000 but the checkpoint holds 5 layer(s) (model.layers.0 … model.layers.4)');
    expect(performance.now() - t0).toBeLessThan(5000);
    const e = variant('experts', (c) => { c.n_routed_experts = 1 << 30; c.n_group = 1; c.topk_group = 1; });
    await expect(loadModel(e)).rejects.toThrow('config.json: n_routed_experts is 1073741824 but the checkpoint holds 16 routed expert(s) per layer');
  });

  it('a missing tensor is a MissingTensorsError', async () => {
    const m = variant('missing', () => undefined);
    const idx = JSON.parse(readFileSync(join(m, 'model.safetensors.index.json'), 'utf8'));
    delete idx.weight_map['model.layers.2.mlp.experts.3.up_proj.weight'];
    writeFileSync(join(m, 'model.safetensors.index.json'), JSON.stringify(idx));
    const err = await loadModel(m).catch((x) => x);
    expect(err).toBeInstanceOf(MissingTensorsError);
    expect(err.message).toContain('model.layers.2.mlp.experts.3.up_proj.weight');
  });
});

describe('load options', () => {
  it('reports progress up to every tensor, and unknown tensors to onUnknownTensors', async () => {
    const seen: number[] = [];
    let total = 0, bytes = 0, bytesTotal = 0;
    const unknown: string[][] = [];
    const model = await loadModel(join(GOLDEN, 'tiny-sparse'), {
      maxSequences: 1,
      maxContext: 64,
      onProgress: (p) => {
        seen.push(p.tensorsLoaded);
        total = p.tensorsTotal;
        bytes = p.bytesLoaded;
        bytesTotal = p.bytesTotal;
      },
      onUnknownTensors: (names) => unknown.push(names),
    });
    await model.dispose();
    expect(seen.length).toBeGreaterThan(100);
    expect(seen.every((v, i) => v === i + 1)).toBe(true);
    expect(total).toBe(536);
    expect(bytes).toBeGreaterThan(0);
    expect(bytes).toBeLessThanOrEqual(bytesTotal);
    expect(unknown).toEqual([]);  // the MTP layer is known, not reported
  });

  it('refuses bad activations, maxSequences and maxContext, naming them', async () => {
    const dir = join(GOLDEN, 'tiny-sparse');
    // @ts-expect-error not an activation dtype
    await expect(loadModel(dir, { activations: 'f16' })).rejects.toThrow("loadModel: expected 'bf16' or 'f32' for activations but received 'f16' of type string");
    await expect(loadModel(dir, { maxSequences: 0 })).rejects.toThrow('loadModel: expected a positive integer for maxSequences but received 0 of type number');
    await expect(loadModel(dir, { maxSequences: 1.5 })).rejects.toThrow(RangeError);
    await expect(loadModel(dir, { maxContext: 257 })).rejects.toThrow('loadModel: expected a positive integer <= max_position_embeddings (256) for maxContext but received 257 of type number');
    await expect(loadModel(dir, { maxContext: -1 })).rejects.toThrow(RangeError);
  });
});
