/**
 * The model on the emulated cuda:0, beyond the golden parity of test/model/golden.test.ts: an eager
 * decode step's host synchronisation and launches, and `deepseek-native logits --device cuda:0`
 * on the emulated cuda:0 (this project runs with
 * DEEPSEEK_NATIVE_BUILD=cuda-emu, which the CLI child inherits): the whole model on the device from
 * the command line, against the golden f32 logits of tiny-dense (no DSA, so no topK tie rule in play:
 * see test/model/golden.test.ts).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

import { loadModel, ops } from '../../lib/index.js';
import { native } from '../../lib/runtime/native.js';
import { GOLDEN } from '../golden-dir.js';
import { relL2 } from '../helpers.js';

const CLI = resolve(import.meta.dirname, '../../dist/lib/cli.js');

describe('deepseek-native logits --device cuda:0', () => {
  it('prints the golden f32 logits of tiny-dense, prefill and two decode steps', () => {
    const golden = JSON.parse(readFileSync(join(GOLDEN, 'tiny-dense.v32.logits.json'), 'utf8'));
    const run = golden.runs[2];
    const args = ['logits', '--model', join(GOLDEN, 'tiny-dense'), '--device', 'cuda:0', '--activations', 'f32'];
    for (const p of run.prompts) args.push('--prompt', p.join(','));
    for (const t of run.then.slice(0, 2)) args.push('--then', t.join(','));
    const out = JSON.parse(execFileSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, DEEPSEEK_NATIVE_BUILD: 'cuda-emu' } }));
    expect(out.logits.length).toBe(3);
    for (let s = 0; s < 3; ++s)
      for (let r = 0; r < run.prompts.length; ++r) {
        const got = out.logits[s][r] as number[];
        expect(got.length).toBe(512);
        const err = relL2(got, run.logits_f32[s][r] as number[]);
        console.log(`step ${s} row ${r}: rel L2 ${err.toExponential(2)}`);
        expect(err).toBeLessThan(1e-4);
      }
  }, 300_000);

  it('a device the process does not have is a clear error on stderr', () => {
    const r = spawnSync(process.execPath, [CLI, 'logits', '--model', join(GOLDEN, 'tiny-dense'), '--device', 'cuda:3', '--prompt', '1,2'], {
      encoding: 'utf8',
      env: { ...process.env, DEEPSEEK_NATIVE_BUILD: 'cuda-emu' },
    });
    expect(r.status).not.toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain("expected one of this process's devices (cpu, cuda:0) for device");
  });
});

describe('an eager decode step on cuda:0 (decodeGraphs: false; test/cuda-emu/decode-graph.test.ts has the replayed one)', () => {
  it('queues one sync point (the ids read at its end) and the same launches every step', async () => {
    await using model = await loadModel(join(GOLDEN, 'tiny-dense'), { device: 'cuda:0', maxSequences: 2, maxContext: 64, decodeGraphs: false });
    const seqs = [model.createSequence(), model.createSequence()];
    await model.forward(seqs.map((sequence, i) => ({ sequence, tokens: [3, 1, 4, 1, 5, 9 + i] })));
    const counts: number[] = [];
    for (let step = 0; step < 3; ++step) {
      native().profile(true, 'cuda:0');
      const ids = await model.forwardWith(seqs.map((sequence, i) => ({ sequence, tokens: [20 + step + i] })), async (logits) => {
        using t = ops.argmax(logits);
        return (await t.read()) as Int32Array;
      });
      const prof = native().profile(true, 'cuda:0');
      expect(ids.length).toBe(2);
      expect(prof.read?.runs).toBe(1);          // no read or synchronize inside the step
      expect(prof.synchronize).toBeUndefined();
      expect(prof.mlaDecode?.runs).toBe(model.config.nLayers);
      counts.push(Object.values(prof).reduce((n, e) => n + e.runs, 0));
    }
    expect(new Set(counts).size).toBe(1);
    for (const s of seqs) s.dispose();
  }, 300_000);
});
