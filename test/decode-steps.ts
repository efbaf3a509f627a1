/**
 * Decode steps run two ways side by side: a model with decode graphs and one without, on
 * tiny-sparse (DSA: the indexer and topK inside the graph), two sequences of 57 and 12 prompt
 * tokens, then 10 decode steps of random tokens, so the longer sequence passes 64 keys and the step
 * moves from the 64-key graph to the 128-key one. Shared by the CPU and the CUDA graph tests.
 */
import { join } from 'node:path';

import { loadModel, type Model } from '../lib/index.js';
import { native } from '../lib/runtime/native.js';
import { GOLDEN } from './golden-dir.js';
import { rng } from './helpers.js';

export interface DecodeStepPair {
  step: number;
  /** Logits of the graphed and the eager step, one row per sequence. */
  graphed: Float32Array[];
  eager: Float32Array[];
  /** The device's profile over the graphed step (reset before it). */
  profile: Record<string, { runs: number; ms?: number; queued?: number }>;
  /** True when this graphed step captured a graph (the first step, and the move to 128 keys). */
  captured: boolean;
}

/** Runs the steps and hands each pair to `check`; returns both models' decodeGraphStats. */
export async function decodeGraphedAndEager(
  device: string,
  activations: 'f32' | 'bf16',
  check: (pair: DecodeStepPair) => void,
): Promise<{ graphed: Model['decodeGraphStats']; eager: Model['decodeGraphStats'] }> {
  const dir = join(GOLDEN, 'tiny-sparse');
  const opts = { device, activations, maxSequences: 2, maxContext: 256 };
  await using graphed = await loadModel(dir, { ...opts, decodeGraphs: true });
  await using eager = await loadModel(dir, { ...opts, decodeGraphs: false });
  const r = rng();
  console.log(`seed ${r.seed}`);
  const V = graphed.config.vocabSize;
  const prompts = [Array.from({ length: 57 }, () => r.int(0, V)), Array.from({ length: 12 }, () => r.int(0, V))];
  const gs = prompts.map(() => graphed.createSequence());
  const es = prompts.map(() => eager.createSequence());
  await graphed.forward(prompts.map((tokens, i) => ({ sequence: gs[i], tokens })));
  await eager.forward(prompts.map((tokens, i) => ({ sequence: es[i], tokens })));
  for (let step = 0; step < 10; ++step) {
    const tokens = prompts.map(() => r.int(0, V));
    native().profile(true, device);
    const g = await graphed.forward(gs.map((sequence, i) => ({ sequence, tokens: [tokens[i]] })));
    const profile = native().profile(true, device);
    const e = await eager.forward(es.map((sequence, i) => ({ sequence, tokens: [tokens[i]] })));
    check({ step, graphed: g, eager: e, profile, captured: step === 0 || gs[0].length === 65 });
  }
  return { graphed: graphed.decodeGraphStats, eager: eager.decodeGraphStats };
}
