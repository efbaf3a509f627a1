/**
 * CUDA graphs on the emulated cuda:0 (lib/runtime/graph.ts, lib/model/decode-graph.ts): the capture
 * records and a launch replays; what the capture allocated stays the graph's; a capture refuses host
 * traffic and leaves the device usable; Tensor.write is stream-ordered; and the model's decode steps,
 * replayed as graphs, give the logits of the eager steps on tiny-sparse (DSA: the indexer and topK
 * inside the graph) across a capacity change, with one graph launch per step.
 */
import { describe, expect, it } from 'vitest';

import { ops, tensor } from '../../lib/index.js';
import { DecodeGraphs } from '../../lib/model/decode-graph.js';
import { BlockPool, type KvCache, Sequence } from '../../lib/model/kv-cache.js';
import type { Rope } from '../../lib/model/rope.js';
import type { Transformer } from '../../lib/model/transformer.js';
import { DeviceGraph } from '../../lib/runtime/graph.js';
import { native } from '../../lib/runtime/native.js';
import { decodeGraphedAndEager } from '../decode-steps.js';
import { relL2, rng } from '../helpers.js';

const DEV = 'cuda:0';

describe('DeviceGraph on cuda:0', () => {
  it('records without running, then each launch replays on the inputs written since', async () => {
    const r = rng();
    console.log(`seed ${r.seed}`);
    const n = 1000;
    const a = r.floats(n);
    const b = r.floats(n);
    using x = tensor(a, { device: DEV });
    const cap = DeviceGraph.capture(DEV, () => {
      using y = ops.scale(x, 2); //  a temporary of the capture: its block stays the graph's
      return ops.scale(y, 3);
    }, (t) => t.dispose());
    using z = cap.result;
    using graph = cap.graph;
    // Tensors made after the capture get blocks of their own, never the capture's temporary.
    const others = Array.from({ length: 8 }, (_, i) => tensor(Float32Array.from(b, (v) => v + i), { device: DEV }));
    graph.launch();
    const first = (await z.read()) as Float32Array;
    for (let i = 0; i < n; ++i) expect(first[i]).toBe(Math.fround(Math.fround(a[i] * 2) * 3));
    x.write(b);
    graph.launch();
    const second = (await z.read()) as Float32Array;
    for (let i = 0; i < n; ++i) expect(second[i]).toBe(Math.fround(Math.fround(b[i] * 2) * 3));
    for (const [i, t] of others.entries()) {
      const got = (await t.read()) as Float32Array;
      for (let j = 0; j < n; j += 97) expect(got[j]).toBe(Math.fround(b[j] + i));
      t.dispose();
    }
  });

  it('a host copy inside a capture fails it with a clear error, and the device still works', async () => {
    using x = tensor([1, 2, 3], { device: DEV });
    let released = 0;
    expect(() =>
      DeviceGraph.capture(DEV, () => tensor([4, 5, 6], { device: DEV }), (t) => {
        released += 1;
        t.dispose();
      }),
    ).toThrow(/cuda:0 is capturing a graph; a captured step may only queue kernels/);
    expect(released).toBe(0); // record threw: there was no result to release
    using y = ops.scale(x, 2);
    expect(Array.from((await y.read()) as Float32Array)).toEqual([2, 4, 6]);
    // And a new capture can begin.
    const { graph, result } = DeviceGraph.capture(DEV, () => ops.scale(x, 5), (t) => t.dispose());
    graph.launch();
    expect(Array.from((await result.read()) as Float32Array)).toEqual([5, 10, 15]);
    graph.dispose();
    result.dispose();
    expect(() => graph.launch()).toThrow(/disposed/);
  });

  it('an unknown graph id is an error naming the device', () => {
    expect(() => native().graphLaunch('cuda:0', 123456)).toThrow(/no graph 123456 on cuda:0/);
    expect(() => native().graphLaunch('cuda:7', 1)).toThrow(RangeError);
  });
});

describe('DecodeGraphs when a capture fails', () => {
  for (const device of ['cpu', DEV])
    it(`turns graphs off with a warning, queues nothing, and lets the caller run the step eagerly (${device})`, async () => {
      // A forward that cannot be captured (it copies from the host): what a driver refusing some call
      // inside the capture would look like.
      let calls = 0;
      const transformer = { forward: () => (calls++, tensor([1, 2, 3], { device })) } as unknown as Transformer;
      const graphs = new DecodeGraphs(transformer, {} as KvCache, {} as Rope, device, 128);
      const pool = new BlockPool(4);
      const seq = new Sequence(pool, 128);
      seq.reserve(1);
      const warnings: string[] = [];
      const onWarning = (w: Error) => warnings.push(w.message);
      process.on('warning', onWarning);
      try {
        expect(graphs.step([{ sequence: seq, tokens: [7] }])).toBeNull();
        await new Promise((r) => setImmediate(r));
        expect(graphs.disabled).toContain(`${device} is capturing a graph`);
        expect(warnings.some((w) => w.includes('decode steps run eagerly from now on'))).toBe(true);
        expect(graphs.step([{ sequence: seq, tokens: [7] }])).toBeNull(); // off for good: no second capture
        expect(calls).toBe(1);
        expect(graphs.size).toBe(0);
        using x = tensor([1, 2], { device }); // the device is not left capturing
        using y = ops.scale(x, 3);
        expect(Array.from((await y.read()) as Float32Array)).toEqual([3, 6]);
      } finally {
        process.off('warning', onWarning);
        seq.dispose();
      }
    });
});

describe('Tensor.write', () => {
  for (const device of ['cpu', DEV])
    it(`is stream-ordered on ${device}: ops queued before it read the old values`, async () => {
      using x = tensor([1, 2, 3, 4], { device });
      using before = ops.scale(x, 10);
      x.write(Float32Array.from([5, 6, 7, 8]));
      using after = ops.scale(x, 10);
      expect(Array.from((await before.read()) as Float32Array)).toEqual([10, 20, 30, 40]);
      expect(Array.from((await after.read()) as Float32Array)).toEqual([50, 60, 70, 80]);
      expect(() => x.write(Float32Array.from([1, 2]))).toThrow(/has 8 bytes but this f32 tensor of shape \[4\] holds 16 bytes/);
      using h = tensor([1, 2], { dtype: 'bf16', device });
      expect(() => h.write(Float32Array.from([1, 2]))).toThrow(/raw bf16 bits/);
    });
});

describe('decode steps as CUDA graphs (tiny-sparse, f32)', () => {
  it('replayed steps give the eager steps\' logits, one graph launch a step, across a capacity change', async () => {
    let worst = 0;
    const stats = await decodeGraphedAndEager(DEV, 'f32', ({ graphed, eager, profile, captured }) => {
      for (let i = 0; i < 2; ++i) worst = Math.max(worst, relL2(graphed[i], eager[i]));
      if (captured) return;
      // A replay: the five input writes, one graph launch, the logits read; no op launched alone.
      expect(profile.graph?.runs).toBe(1);
      expect(profile.tensor?.runs).toBe(5);
      expect(profile.read?.runs).toBe(1);
      expect(Object.keys(profile).sort()).toEqual(['graph', 'read', 'tensor']);
    });
    console.log(`graph vs eager decode logits: worst rel L2 ${worst.toExponential(2)}; stats ${JSON.stringify(stats.graphed)}`);
    expect(worst).toBeLessThan(1e-5);
    expect(stats).toEqual({ graphed: { graphs: 2, captures: 2, replays: 10 }, eager: { graphs: 0, captures: 0, replays: 0 } });
  }, 600_000);
});
