/**
 * `npm start`: what this build can do, on a built-in example (no download). Writes a small random
 * DeepSeek-V3.2 checkpoint with make-tiny (seeded, cached in the OS temp folder), loads it, prefills
 * a prompt and decodes greedily, printing timings; then runs a fused residual RMSNorm op.
 */
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { makeTinyCheckpoint } from './model/make-tiny.js';
import { loadModel } from './model/model.js';
import { addRmsNorm } from './ops/index.js';
import { runtimeInfo } from './runtime/info.js';
import { tensor } from './runtime/tensor.js';

function argmax(a: Float32Array): number {
  let best = 0;
  for (let i = 1; i < a.length; ++i) if (a[i] > a[best]) best = i;
  return best;
}

export async function demo(args: string[]): Promise<void> {
  const info = runtimeInfo();
  console.log(JSON.stringify(info, null, 2));

  const dir = args[0] ?? join(tmpdir(), 'deepseek-native-demo-tiny');
  if (!existsSync(join(dir, 'model.safetensors.index.json'))) {
    console.log(`\nwriting a random DeepSeek-V3.2-shaped checkpoint (make-tiny, preset 'tiny') to ${dir}`);
    await makeTinyCheckpoint(dir, { preset: 'tiny', seed: 7 });
  }
  let t0 = performance.now();
  await using model = await loadModel(dir, { maxSequences: 1, maxContext: 128 });
  const c = model.config;
  console.log(
    `\nloaded ${dir} in ${(performance.now() - t0).toFixed(0)} ms: ${c.nLayers} layers, dim ${c.dim}, ` +
      `${c.nRoutedExperts} experts (top ${c.nActivatedExperts}), DSA top-${c.indexTopk}, vocab ${c.vocabSize}, on ${model.device}`,
  );
  using seq = model.createSequence();
  const prompt = [0, 17, 42, 99, 7, 256, 300, 12, 5, 77, 81, 150, 3, 200, 9, 64];
  t0 = performance.now();
  let [logits] = await model.forward([{ sequence: seq, tokens: prompt }]);
  const prefillMs = performance.now() - t0;
  const generated: number[] = [];
  t0 = performance.now();
  for (let i = 0; i < 24; ++i) {
    const next = argmax(logits);
    generated.push(next);
    [logits] = await model.forward([{ sequence: seq, tokens: [next] }]);
  }
  const decodeMs = performance.now() - t0;
  console.log(`prompt   ${prompt.join(' ')}`);
  console.log(`greedy   ${generated.join(' ')}  (random weights: the tokens mean nothing)`);
  console.log(`prefill  ${prompt.length} tokens in ${prefillMs.toFixed(1)} ms; decode ${((generated.length / decodeMs) * 1e3).toFixed(1)} tokens/s`);

  const [rows, dim] = [64, 7168];
  const data = new Float32Array(rows * dim).map(() => Math.random() * 2 - 1);
  using x = tensor(data, { shape: [rows, dim], dtype: 'bf16' });
  using residual = tensor(data.map((v) => v * 0.5), { shape: [rows, dim], dtype: 'bf16' });
  using weight = tensor(new Float32Array(dim).fill(1));
  t0 = performance.now();
  const { out, residual: sum } = addRmsNorm(x, residual, weight, 1e-6);
  sum.dispose();
  using o = out;
  const values = await o.toFloat32Array();
  let ss = 0;
  for (let i = 0; i < dim; ++i) ss += values[i] * values[i];
  console.log(`addRmsNorm [${rows}, ${dim}] bf16: ${(performance.now() - t0).toFixed(2)} ms, row 0 rms ${Math.sqrt(ss / dim).toFixed(4)} (1 expected)`);
}
