// The engine and model.generate/stream on the tiny golden checkpoint (token ids, no tokenizer):
// determinism, batch invariance, abort, preemption, bounded queue, flat memory.
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadModel, type Model } from '../../lib/model/model.js';
import * as ops from '../../lib/ops/index.js';
import { memoryStats, synchronize } from '../../lib/runtime/device.js';
import { tensor } from '../../lib/runtime/tensor.js';
import { Engine, QueueFullError } from '../../lib/serve/engine.js';
import { MissingTokenizerError } from '../../lib/serve/tokenizer.js';
import { GOLDEN } from '../golden-dir.js';

const DIR = join(GOLDEN, 'tiny-sparse');
let model: Model;
beforeAll(async () => {
  model = await loadModel(DIR, { maxSequences: 40, maxContext: 256 });
  model.serving({ batchInvariant: true });
});
afterAll(async () => {
  await model?.dispose();
  ops.setBatchInvariant(false);
});

/** Prompts of many lengths (3 … 62 tokens) over the 512-token vocabulary. */
const prompt = (i: number): number[] => Array.from({ length: 3 + ((i * 7) % 60) }, (_, j) => ((i * 31 + j * 17) % 500) + 2);

describe('sampleRows', () => {
  it('is argmax at temperature 0, applies penalties, reports log-probabilities', async () => {
    using logits = tensor(new Float32Array([1, 3, 2, 0, 0, 5, 4, 1]), { shape: [2, 4] });
    const r = ops.sampleRows(logits, [{ temperature: 0 }, { temperature: 0, frequencyPenalty: 2, history: new Map([[1, 1]]) }], 2);
    expect(Array.from(await r.ids.read<'i32'>())).toEqual([1, 2]);
    const lp = await r.logprobs!.read<'f32'>();
    const lse0 = Math.log(Math.exp(1) + Math.exp(3) + Math.exp(2) + 1);
    expect(lp[0]).toBeCloseTo(3 - lse0, 5);
    expect(lp[1]).toBeCloseTo(3 - lse0, 5); // top-1
    expect(Array.from(await r.topIds!.read<'i32'>())).toEqual([1, 2, 1, 2]);
    for (const t of [r.ids, r.logprobs!, r.topIds!]) t.dispose();
    expect(() => ops.sampleRows(logits, [{ temperature: -1 }, { temperature: 0 }])).toThrow(/temperature must be >= 0/);
    expect(() => ops.sampleRows(logits, [{ temperature: 1, history: new Map([[9, 1]]) }, { temperature: 0 }])).toThrow(/historyIds\[0\] is 9/);
  });

  it('minP keeps only ids close to the best; seeded draws repeat and depend on the step', async () => {
    using logits = tensor(new Float32Array([0, 10, 9.5, -5]), { shape: [1, 4] });
    const draws = new Set<number>();
    for (let step = 0; step < 40; ++step) {
      using ids = ops.sampleRows(logits, [{ temperature: 1, minP: 0.5, seed: 3, step }]).ids;
      draws.add((await ids.read<'i32'>())[0]);
    }
    expect([...draws].sort()).toEqual([1, 2]);
    const once = async (step: number): Promise<number> => {
      using ids = ops.sampleRows(logits, [{ temperature: 5, seed: 11, step }]).ids;
      return (await ids.read<'i32'>())[0];
    };
    expect(await once(7)).toBe(await once(7));
  });
});

describe('generate / stream', () => {
  it('greedy is deterministic; seeded sampling is reproducible and depends on the seed', async () => {
    const a = await model.generate({ prompt: prompt(1), maxTokens: 12, temperature: 0 });
    const b = await model.generate({ prompt: prompt(1), maxTokens: 12, temperature: 0 });
    expect(a.tokens).toEqual(b.tokens);
    expect(a.tokens.length).toBe(12);
    expect(a.finishReason).toBe('length');
    expect(a.usage).toEqual({ promptTokens: prompt(1).length, completionTokens: 12, totalTokens: prompt(1).length + 12 });
    const s = (seed: number) => model.generate({ prompt: prompt(2), maxTokens: 12, temperature: 1.5, topK: 50, seed });
    const [s1, s2, s3] = [await s(5), await s(5), await s(6)];
    expect(s1.tokens).toEqual(s2.tokens);
    expect(s1.tokens).not.toEqual(s3.tokens);
  });

  it('stops at a stop id, streams chunks that add up to the result, reports logprobs', async () => {
    const full = await model.generate({ prompt: prompt(3), maxTokens: 10, temperature: 0, ignoreEos: true });
    expect(full.tokens.length).toBe(10);
    const stopId = full.tokens[4];
    const cut = await model.generate({ prompt: prompt(3), maxTokens: 10, temperature: 0, ignoreEos: true, stop: [stopId] });
    expect(cut.finishReason).toBe('stop');
    expect(cut.tokens).toEqual(full.tokens.slice(0, full.tokens.indexOf(stopId)));
    const chunks = [];
    for await (const c of model.stream({ prompt: prompt(3), maxTokens: 10, temperature: 0, ignoreEos: true, logprobs: 3 })) chunks.push(c);
    expect(chunks.flatMap((c) => c.tokens)).toEqual(full.tokens);
    expect(chunks.at(-1)!.finishReason).toBe('length');
    const lps = chunks.flatMap((c) => c.logprobs ?? []);
    expect(lps.length).toBe(10);
    for (const lp of lps) {
      expect(lp.logprob).toBeLessThanOrEqual(0);
      expect(lp.top!.length).toBe(3);
      expect(lp.top![0].id).toBe(lp.id); // greedy picks the most likely
    }
  });

  it('a request is the same alone and among 32 concurrent ones (batch invariance)', async () => {
    const N = 32;
    const together = await Promise.all(Array.from({ length: N }, (_, i) => model.generate({ prompt: prompt(i), maxTokens: 8, temperature: 0 })));
    for (let i = 0; i < N; ++i) {
      const alone = await model.generate({ prompt: prompt(i), maxTokens: 8, temperature: 0 });
      expect(together[i].tokens, `request ${i}`).toEqual(alone.tokens);
    }
    expect(model.freeCacheBlocks).toBe(model.totalCacheBlocks);
  });

  it('AbortSignal and leaving the loop end a request and give every block back', async () => {
    const free = model.freeCacheBlocks;
    const ac = new AbortController();
    let n = 0;
    let last;
    for await (const c of model.stream({ prompt: prompt(9), maxTokens: 200, temperature: 0, signal: ac.signal })) {
      last = c;
      if (++n === 3) ac.abort();
    }
    expect(last!.finishReason).toBe('abort');
    expect(model.freeCacheBlocks).toBe(free);
    for await (const _ of model.stream({ prompt: prompt(10), maxTokens: 200, temperature: 0 })) break;
    await new Promise((r) => setTimeout(r, 50));
    expect(model.freeCacheBlocks).toBe(free);
    const pre = new AbortController();
    pre.abort();
    expect((await model.generate({ prompt: prompt(4), signal: pre.signal })).finishReason).toBe('abort');
  });

  it('text calls without tokenizer files say what is missing; bad fields name themselves', async () => {
    await expect(model.generate({ prompt: 'hello' })).rejects.toThrow(MissingTokenizerError);
    await expect(model.generate({ prompt: 'hello' })).rejects.toThrow(/has no tokenizer.json/);
    await expect(model.generate({ prompt: [1, 2], temperature: -1 })).rejects.toThrow(/temperature must be a number in \[0, 100\]/);
    await expect(model.generate({ prompt: [1, 999] })).rejects.toThrow(/prompt\[1\] is 999/);
    await expect(model.generate({ prompt: [1, 2], maxTokens: 0 })).rejects.toThrow(/maxTokens must be an integer/);
    await expect(model.generate({ prompt: new Array(300).fill(3) })).rejects.toThrow(/300 tokens but the context limit is 256/);
  });

  it('1000 short requests in a row leave blocks and native memory where they started', async () => {
    await model.generate({ prompt: [5], maxTokens: 1, temperature: 0 });
    // A read resolves from inside its stream task, and the task drops the storage it holds just
    // after: synchronize (queued behind it) settles once that has happened, so the count is exact.
    await synchronize();
    const before = memoryStats().inUseBytes;
    for (let i = 0; i < 1000; ++i) await model.generate({ prompt: [5 + (i % 100)], maxTokens: 1, temperature: 0 });
    await synchronize();
    expect(model.freeCacheBlocks).toBe(model.totalCacheBlocks);
    // Flat: nothing accumulates (a few hundred bytes of the first requests' scratch may go back).
    expect(memoryStats().inUseBytes).toBeLessThanOrEqual(before);
  });
});

describe('Engine scheduling', () => {
  it('preempts the newest request when the cache runs out, and every request still completes', async () => {
    // 2 sequences × 128 tokens = 4 blocks: three 60-token prompts growing by 100 tokens cannot all fit.
    await using small = await loadModel(DIR, { maxSequences: 2, maxContext: 128 });
    const engine = new Engine(small, { maxBatchTokens: 256 });
    const results = await Promise.all(
      [0, 1, 2].map((i) =>
        engine.submit({ prompt: prompt(i * 9 + 8).slice(0, 60), maxTokens: 60, sampling: { temperature: 0, topP: 1, topK: 0, minP: 0, presencePenalty: 0, frequencyPenalty: 0, repetitionPenalty: 1, seed: 0 }, onToken: () => false }),
      ),
    );
    expect(results.map((r) => r.finishReason)).toEqual(['length', 'length', 'length']);
    expect(results.map((r) => r.completionTokens)).toEqual([60, 60, 60]);
    expect(engine.preemptions).toBeGreaterThan(0);
    expect(small.freeCacheBlocks).toBe(small.totalCacheBlocks);
    // Prompts longer than a prefill chunk (chunks of 32 at fixed offsets) mixed with decode.
    const chunked = new Engine(small, { maxBatchTokens: 48, prefillChunk: 32 });
    const long = await Promise.all(
      [0, 1, 2].map((i) =>
        chunked.submit({ prompt: Array.from({ length: 90 }, (_, j) => ((i + 1) * 37 + j * 11) % 500 + 2), maxTokens: 20, sampling: { temperature: 0, topP: 1, topK: 0, minP: 0, presencePenalty: 0, frequencyPenalty: 0, repetitionPenalty: 1, seed: 0 }, onToken: () => false }),
      ),
    );
    expect(long.map((r) => r.completionTokens)).toEqual([20, 20, 20]);
    expect(small.freeCacheBlocks).toBe(small.totalCacheBlocks);
  });

  it('refuses requests past a full queue with a clear error', async () => {
    const engine = new Engine(model, { maxQueue: 2, maxRunning: 1 });
    const sampling = { temperature: 0, topP: 1, topK: 0, minP: 0, presencePenalty: 0, frequencyPenalty: 0, repetitionPenalty: 1, seed: 0 };
    const req = () => engine.submit({ prompt: [3, 4], maxTokens: 4, sampling, onToken: () => false });
    const ok = [req(), req(), req()];
    await expect(req()).rejects.toThrow(QueueFullError);
    await expect(req()).rejects.toThrow(/request queue is full \(2 waiting\)/);
    expect((await Promise.all(ok)).every((r) => r.completionTokens === 4)).toBe(true);
    await engine.close();
  });
});
