/**
 * Parity with DeepSeek's reference implementation on the golden checkpoints (../shared/golden):
 * f32 activations match `logits_f32` to summation order; bf16 activations are at least as close to
 * `logits_bf16` as the reference's own f32 run is. Plus the consistency of the batch forms.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadModel, type Model } from '../../lib/index.js';
import { GOLDEN } from '../golden-dir.js';
import { median, relL2 } from '../helpers.js';


interface Run {
  prompts: number[][];
  then: number[][];
  logits_bf16: number[][][];
  logits_f32: number[][][];
}

/** Runs one golden run: the prompts as one batch, then one decode step per `then`. */
async function runGolden(model: Model, run: Run): Promise<Float32Array[][]> {
  const seqs = run.prompts.map(() => model.createSequence());
  try {
    const steps = [await model.forward(run.prompts.map((tokens, i) => ({ sequence: seqs[i], tokens })))];
    for (const ids of run.then) steps.push(await model.forward(ids.map((id, i) => ({ sequence: seqs[i], tokens: [id] }))));
    return steps;
  } finally {
    for (const s of seqs) s.dispose();
  }
}

for (const name of ['tiny-dense', 'tiny-sparse']) {
  const golden = JSON.parse(readFileSync(join(GOLDEN, `${name}.logits.json`), 'utf8')) as { runs: Run[] };

  describe(`${name}: f32 activations match the reference's f32 logits`, () => {
    let model: Model;
    beforeAll(async () => {
      model = await loadModel(join(GOLDEN, name), { activations: 'f32', maxSequences: 4, maxContext: 64 });
    });
    afterAll(async () => model?.dispose());

    it('median relative L2 < 1e-4 and ≥ 90 % below 1e-2, over all runs, steps and rows', async () => {
      const errs: number[] = [];
      for (const run of golden.runs) {
        const got = await runGolden(model, run);
        got.forEach((rows, s) => rows.forEach((row, r) => errs.push(relL2(row, run.logits_f32[s][r]))));
      }
      const below = errs.filter((e) => e < 1e-2).length / errs.length;
      console.log(`${name} f32: median rel L2 ${median(errs).toExponential(2)}, max ${Math.max(...errs).toExponential(2)}, ${(below * 100).toFixed(1)} % < 1e-2 (${errs.length} rows)`);
      expect(median(errs)).toBeLessThan(1e-4);
      expect(below).toBeGreaterThanOrEqual(0.9);
    });
  });

  describe(`${name}: bf16 activations are as close to the reference's bf16 logits as its own f32 run`, () => {
    let model: Model;
    beforeAll(async () => {
      model = await loadModel(join(GOLDEN, name), { maxSequences: 4, maxContext: 64 });
    });
    afterAll(async () => model?.dispose());

    it('per run: mean rel L2 to logits_bf16 ≤ that of logits_f32' + (name === 'tiny-dense' ? '; every row < 0.15' : ''), async () => {
      for (const [k, run] of golden.runs.entries()) {
        const got = await runGolden(model, run);
        const ours: number[] = [], refF32: number[] = [];
        got.forEach((rows, s) =>
          rows.forEach((row, r) => {
            ours.push(relL2(row, run.logits_bf16[s][r]));
            refF32.push(relL2(run.logits_f32[s][r], run.logits_bf16[s][r]));
          }),
        );
        const mean = (a: number[]) => a.reduce((p, q) => p + q, 0) / a.length;
        console.log(`${name} bf16 run ${k}: mean rel L2 ${mean(ours).toExponential(2)} (reference f32 vs bf16: ${mean(refF32).toFixed(4)}), max ${Math.max(...ours).toExponential(2)}`);
        expect(mean(ours)).toBeLessThanOrEqual(mean(refF32));
        // Stronger than the bar above: following the numerics contract op for op, our bf16 run is the
        // reference's bf16 run (1e-7 here: only the f32 LM head's summation order differs).
        expect(median(ours)).toBeLessThan(1e-3);
        if (name === 'tiny-dense') for (const e of ours) expect(e).toBeLessThan(0.15);
      }
    });
  });
}

describe('tiny-sparse: the batch forms agree (f32 activations)', () => {
  let model: Model;
  const prompt = [5, 17, 33, 2, 9, 100, 200, 300, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52];
  beforeAll(async () => {
    model = await loadModel(join(GOLDEN, 'tiny-sparse'), { activations: 'f32', maxSequences: 4, maxContext: 64 });
  });
  afterAll(async () => model?.dispose());

  it('chunked prefill matches one-shot prefill', async () => {
    const [full] = await model.logits([{ tokens: prompt }]);
    using seq = model.createSequence();
    await model.forward([{ sequence: seq, tokens: prompt.slice(0, 7) }]);
    await model.forward([{ sequence: seq, tokens: prompt.slice(7, 15) }]);
    const [last] = await model.forward([{ sequence: seq, tokens: prompt.slice(15) }]);
    expect(relL2(last, full)).toBeLessThan(1e-5);
  });

  it('sequences of different lengths in one batch give what each gives alone', async () => {
    const a = prompt.slice(0, 9), b = prompt.slice(3, 20), c = [77];
    const together = await model.logits([{ tokens: a }, { tokens: b }, { tokens: c }]);
    const alone = [(await model.logits([{ tokens: a }]))[0], (await model.logits([{ tokens: b }]))[0], (await model.logits([{ tokens: c }]))[0]];
    for (let i = 0; i < 3; ++i) expect(relL2(together[i], alone[i])).toBeLessThan(1e-5);
  });

  it('a batch mixing decode and prefill gives what each gives alone', async () => {
    using s1 = model.createSequence();
    using s2 = model.createSequence();
    await model.forward([{ sequence: s1, tokens: prompt.slice(0, 10) }]);
    const [mixedDecode, mixedPrefill] = await model.forward([
      { sequence: s1, tokens: [prompt[10]] },
      { sequence: s2, tokens: prompt.slice(0, 6) },
    ]);
    using r1 = model.createSequence();
    await model.forward([{ sequence: r1, tokens: prompt.slice(0, 10) }]);
    const [aloneDecode] = await model.forward([{ sequence: r1, tokens: [prompt[10]] }]);
    const [alonePrefill] = await model.logits([{ tokens: prompt.slice(0, 6) }]);
    expect(relL2(mixedDecode, aloneDecode)).toBeLessThan(1e-5);
    expect(relL2(mixedPrefill, alonePrefill)).toBeLessThan(1e-5);
  });
});

describe('tiny-dense: prefill and decode forms agree (f32 activations)', () => {
  let model: Model;
  const prompt = [11, 22, 33, 44, 55, 66, 77, 88, 99, 110, 121, 132, 143, 154, 165, 176];
  beforeAll(async () => {
    model = await loadModel(join(GOLDEN, 'tiny-dense'), { activations: 'f32', maxSequences: 2, maxContext: 64 });
  });
  afterAll(async () => model?.dispose());

  it('prefill of n tokens ≈ prefill of k then n − k decode steps', async () => {
    const [full] = await model.logits([{ tokens: prompt }]);
    using seq = model.createSequence();
    const k = 9;
    let last = (await model.forward([{ sequence: seq, tokens: prompt.slice(0, k) }]))[0];
    for (const id of prompt.slice(k)) last = (await model.forward([{ sequence: seq, tokens: [id] }]))[0];
    const err = relL2(last, full);
    console.log(`prefill vs prefill+decode: rel L2 ${err.toExponential(2)}`);
    // The two MLA forms quantise at different places (prefill runs kv_b as an FP8 linear on the
    // quantised latents — 1×128 E4M3, a few % per value — while decode multiplies by its dequantised
    // weight), so they agree to FP8 precision, as the reference's own two forms do (its step-0 and
    // step-k logits, which we match to 1e-6, come from these two forms). tiny-dense has no discrete
    // choice (experts, DSA keys) to amplify the difference; a bug in either form gives ≥ 0.3.
    expect(err).toBeLessThan(0.15);
  });
});
