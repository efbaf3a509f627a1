/** The Model's contract around forward: bad input, cache limits, lifecycle, and the logits CLI. */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { DisposedError, devices, loadModel, type Model } from '../../lib/index.js';
import { GOLDEN } from '../golden-dir.js';
import { relL2 } from '../helpers.js';

const CLI = resolve(import.meta.dirname, '../../dist/lib/cli.js');

describe('Model on tiny-sparse', () => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(join(GOLDEN, 'tiny-sparse'), { maxSequences: 2, maxContext: 128 });
  });
  afterAll(async () => model?.dispose());

  it('rejects bad batches before changing anything', async () => {
    using seq = model.createSequence();
    await expect(model.forward([{ sequence: seq, tokens: [1, 512] }])).rejects.toThrow('Model.forward: batch[0].tokens[1] is 512: token ids must be integers in [0, 512)');
    await expect(model.forward([{ sequence: seq, tokens: [] }])).rejects.toThrow('tokens is empty');
    await expect(model.forward([])).rejects.toThrow(TypeError);
    await expect(model.forward([{ sequence: seq, tokens: [1] }, { sequence: seq, tokens: [2] }])).rejects.toThrow('appears twice');
    expect(seq.length).toBe(0);
    await model.forward([{ sequence: seq, tokens: [1, 2, 3] }]);
    expect(seq.length).toBe(3);
  });

  it('stops at the context limit and when the cache pool is exhausted, taking nothing', async () => {
    using a = model.createSequence();
    await expect(model.forward([{ sequence: a, tokens: new Array(129).fill(1) }])).rejects.toThrow('would pass the context limit of 128');
    expect(a.length).toBe(0);
    const free = model.freeCacheBlocks;
    using b = model.createSequence();
    using c = model.createSequence();
    await model.forward([{ sequence: b, tokens: new Array(128).fill(2) }]);
    await model.forward([{ sequence: c, tokens: new Array(64).fill(3) }]);
    using d = model.createSequence();
    await expect(model.forward([{ sequence: d, tokens: new Array(65).fill(4) }])).rejects.toThrow('KV cache is full');
    expect(d.length).toBe(0);
    b.dispose();
    c.dispose();
    expect(model.freeCacheBlocks).toBe(free);
  });

  it('a disposed sequence cannot be used', async () => {
    const s = model.createSequence();
    s.dispose();
    await expect(model.forward([{ sequence: s, tokens: [1] }])).rejects.toThrow(DisposedError);
  });
});

describe('loadModel errors', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'dsn-model-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses a device this process does not have, naming the ones it has', async () => {
    const names = devices().map((d) => d.name).join(', ');
    await expect(loadModel(join(GOLDEN, 'tiny-dense'), { device: 'cuda:7' })).rejects.toThrow(`expected one of this process's devices (${names}) for device`);
    await expect(loadModel(join(GOLDEN, 'tiny-dense'), { device: 'gpu' })).rejects.toThrow(`(${names})`);
  });

  it('names a missing folder', async () => {
    await expect(loadModel(join(dir, 'nope'))).rejects.toThrow(/is not a folder/);
  });

  it('names an inconsistent config field', async () => {
    const m = join(dir, 'bad-config');
    cpSync(join(GOLDEN, 'tiny-dense'), m, { recursive: true });
    const cfg = JSON.parse(readFileSync(join(m, 'config.json'), 'utf8'));
    cfg.topk_group = 9;
    writeFileSync(join(m, 'config.json'), JSON.stringify(cfg));
    await expect(loadModel(m)).rejects.toThrow('config.json: topk_group is 9; allowed: an integer <= n_group (1)');
  });

  it('lists missing tensors', async () => {
    const m = join(dir, 'missing');
    cpSync(join(GOLDEN, 'tiny-dense'), m, { recursive: true });
    const idx = JSON.parse(readFileSync(join(m, 'model.safetensors.index.json'), 'utf8'));
    delete idx.weight_map['model.layers.1.self_attn.o_proj.weight'];
    delete idx.weight_map['model.norm.weight'];
    writeFileSync(join(m, 'model.safetensors.index.json'), JSON.stringify(idx));
    await expect(loadModel(m)).rejects.toThrow(/lacks 2 tensor\(s\) the config needs:\n  model\.norm\.weight\n  model\.layers\.1\.self_attn\.o_proj\.weight/);
  });

  it('a model can be disposed twice; then every use throws', async () => {
    const model = await loadModel(join(GOLDEN, 'tiny-dense'), { maxSequences: 1, maxContext: 64 });
    await model.dispose();
    await model.dispose();
    expect(() => model.createSequence()).toThrow(DisposedError);
  });
});

describe('deepseek-native logits', () => {
  it('prints {"logits": [step][row][vocab]} matching the golden f32 logits', () => {
    const golden = JSON.parse(readFileSync(join(GOLDEN, 'tiny-sparse.v32.logits.json'), 'utf8'));
    const run = golden.runs[2];
    const args = ['logits', '--model', join(GOLDEN, 'tiny-sparse'), '--activations', 'f32'];
    for (const p of run.prompts) args.push('--prompt', p.join(','));
    for (const t of run.then.slice(0, 2)) args.push('--then', t.join(','));
    const out = JSON.parse(execFileSync(process.execPath, [CLI, ...args], { encoding: 'utf8' }));
    expect(out.logits.length).toBe(3);
    expect(out.logits[0].length).toBe(run.prompts.length);
    for (let s = 0; s < 3; ++s)
      for (let r = 0; r < run.prompts.length; ++r) {
        const ref = run.logits_f32[s][r] as number[];
        const got = out.logits[s][r] as number[];
        expect(got.length).toBe(512);
        expect(relL2(got, ref)).toBeLessThan(1e-3);
      }
  });

  it('prompts may differ in length', () => {
    const out = JSON.parse(execFileSync(process.execPath, [CLI, 'logits', '--model', join(GOLDEN, 'tiny-dense'), '--prompt', '1,2,3', '--prompt', '4,5', '--then', '6,7'], { encoding: 'utf8' }));
    expect(out.logits.length).toBe(2);
    expect(out.logits[1].length).toBe(2);
  });

  it('bad input goes to stderr with a non-zero exit', () => {
    const r = spawnSync(process.execPath, [CLI, 'logits', '--model', join(GOLDEN, 'tiny-dense'), '--prompt', '1,2,x'], { encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain("--prompt '1,2,x': expected comma-separated non-negative integers");
    const r2 = spawnSync(process.execPath, [CLI, 'logits', '--model', join(GOLDEN, 'tiny-dense'), '--prompt', '1,2,999'], { encoding: 'utf8' });
    expect(r2.status).not.toBe(0);
    expect(r2.stderr).toContain('token ids must be integers in [0, 512)');
  });
});
