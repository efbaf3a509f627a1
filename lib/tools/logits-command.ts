/**
 * `deepseek-native logits --model DIR --prompt 1,2,3 [--prompt …] [--then 7,8 …] [--device cpu|cuda]
 * [--activations bf16|f32] [--progress]`: all prompts as one batch, then one decode step per --then (one id per
 * prompt). Prints exactly one JSON object {"logits": [step][row][vocab]} to stdout.
 */
import { parseArgs } from 'node:util';

import { loadModel } from '../model/model.js';

function parseIds(flag: string, s: string): number[] {
  const ids = s.split(',').map((t) => t.trim());
  if (ids.some((t) => !/^\d+$/.test(t))) throw new Error(`${flag} '${s}': expected comma-separated non-negative integers`);
  return ids.map(Number);
}

export async function logitsCommand(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: 'string' },
      prompt: { type: 'string', multiple: true },
      then: { type: 'string', multiple: true },
      device: { type: 'string', default: 'cpu' },
      activations: { type: 'string', default: 'bf16' },
      progress: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (!values.model) throw new Error('logits: --model DIR is required');
  if (!values.prompt?.length) throw new Error('logits: at least one --prompt is required');
  if (values.activations !== 'bf16' && values.activations !== 'f32') throw new Error(`logits: --activations must be bf16 or f32, not '${values.activations}'`);
  const prompts = values.prompt.map((p) => parseIds('--prompt', p));
  const steps = (values.then ?? []).map((t) => parseIds('--then', t));
  for (const s of steps)
    if (s.length !== prompts.length) throw new Error(`logits: --then '${s.join(',')}' has ${s.length} id(s) but there are ${prompts.length} prompt(s)`);
  const showProgress = values.progress || process.stderr.isTTY;
  const longest = Math.max(...prompts.map((p) => p.length)) + steps.length;
  await using model = await loadModel(values.model, {
    device: values.device,
    activations: values.activations,
    maxSequences: prompts.length,
    maxContext: longest,
    // Progress goes to stderr (stdout carries only the JSON), on a terminal or with --progress.
    ...(showProgress
      ? {
          onProgress: (p) => {
            if (p.tensorsLoaded % 100 === 0 || p.tensorsLoaded === p.tensorsTotal)
              process.stderr.write(`\rloading: ${p.tensorsLoaded}/${p.tensorsTotal} tensors, ${(p.bytesLoaded / 1e9).toFixed(2)}/${(p.bytesTotal / 1e9).toFixed(2)} GB`);
          },
        }
      : {}),
  });
  if (showProgress) process.stderr.write(`\rloaded ${values.model}${' '.repeat(40)}\n`);
  const seqs = prompts.map(() => model.createSequence());
  const logits: number[][][] = [];
  const first = await model.forward(prompts.map((tokens, i) => ({ sequence: seqs[i], tokens })));
  logits.push(first.map((r) => Array.from(r)));
  for (const step of steps) {
    const out = await model.forward(step.map((id, i) => ({ sequence: seqs[i], tokens: [id] })));
    logits.push(out.map((r) => Array.from(r)));
  }
  process.stdout.write(JSON.stringify({ logits }) + '\n');
}
