/**
 * CPU graphs (native/runtime/device.cc CpuBackend capture, lib/runtime/graph.ts, lib/model/decode-graph.ts):
 * a capture records the ops the JavaScript thread queues instead of running them; a launch queues ONE
 * stream task that runs them in order on the inputs written since; a capture refuses host copies,
 * writes, reads, synchronize and graph launches, and a failed capture leaves the stream usable;
 * disposing a graph gives its storages back; a failing op inside a launch is reported like an eager
 * one; and the model's decode steps replayed as graphs give the eager steps' logits bit for bit
 * across a capacity change, with one graph task a step.
 */
import { resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';

import { memoryStats, ops, synchronize, tensor } from '../../lib/index.js';
import { DeviceGraph } from '../../lib/runtime/graph.js';
import { native } from '../../lib/runtime/native.js';
import { decodeGraphedAndEager } from '../decode-steps.js';
import { rng } from '../helpers.js';

const DEV = 'cpu';

/** Profile entries with any runs, as { op: [runs, queued] }. */
function counts(reset = true): Record<string, [number, number]> {
  const out: Record<string, [number, number]> = {};
  for (const [op, e] of Object.entries(native().profile(reset, DEV))) out[op] = [e.runs, e.queued ?? -1];
  return out;
}

describe('DeviceGraph on the cpu', () => {
  it('records without running, then each launch (one stream task) replays on the inputs written since', async () => {
    const r = rng();
    console.log(`seed ${r.seed}`);
    const n = 4099;
    const a = r.floats(n);
    const b = r.floats(n);
    using x = tensor(a);
    await synchronize();
    counts();
    const cap = DeviceGraph.capture(DEV, () => {
      using y = ops.scale(x, 2); // a temporary of the capture: the recorded ops hold its storage
      return ops.add(y, x);
    }, (t) => t.dispose());
    using z = cap.result;
    using graph = cap.graph;
    await synchronize();
    expect(counts()).toEqual({ synchronize: [1, 1] }); // nothing ran, nothing was queued
    // Tensors made after the capture get storage of their own, never the capture's temporary.
    const others = Array.from({ length: 8 }, (_, i) => tensor(Float32Array.from(b, (v) => v + i)));
    graph.launch();
    const first = (await z.read()) as Float32Array;
    for (let i = 0; i < n; ++i) expect(first[i]).toBe(Math.fround(Math.fround(a[i] * 2) + a[i]));
    x.write(b);
    graph.launch();
    const second = (await z.read()) as Float32Array;
    for (let i = 0; i < n; ++i) expect(second[i]).toBe(Math.fround(Math.fround(b[i] * 2) + b[i]));
    expect(counts()).toEqual({ graph: [2, 2], scale: [2, 0], add: [2, 0], write: [1, 1], read: [2, 2] });
    for (const [i, t] of others.entries()) {
      const got = (await t.read()) as Float32Array;
      for (let j = 0; j < n; j += 97) expect(got[j]).toBe(Math.fround(b[j] + i));
      t.dispose();
    }
  });

  it('refuses host copies, writes, reads, synchronize and launches while capturing; the capture fails and the stream still works', async () => {
    using x = tensor([1, 2, 3]);
    const { graph: other, result: otherOut } = DeviceGraph.capture(DEV, () => ops.scale(x, 7), (t) => t.dispose());
    // Calls that throw, and calls that return a promise (reads, synchronize) which rejects at once.
    const refusals: [string, () => unknown, string][] = [
      ['a host copy', () => tensor([4, 5, 6]), 'tensor: a copy from the host'],
      ['Tensor.write', () => x.write(Float32Array.from([7, 8, 9])), 'Tensor.write'],
      ['a read', () => {
        using y = ops.scale(x, 1); // disposed here, not left to the garbage collector
        return y.read();
      }, 'read'],
      ['synchronize', () => synchronize(DEV), 'synchronize'],
      ['a graph launch', () => other.launch(), 'graph launch'],
    ];
    const because = 'cpu is capturing a graph; a captured step may only queue kernels (no host copies, reads or synchronize)';
    for (const [what, call, prefix] of refusals) {
      native().graphBegin(DEV);
      ops.scale(x, 3).dispose(); // queued before the refusal: recorded, then dropped, never run
      let refused = '';
      try {
        await call();
      } catch (e) {
        refused = (e as Error).message;
      }
      expect(refused, what).toBe(`${prefix}: ${because}`);
      // The refused call fails the capture as a whole, even when the caller went on.
      expect(() => native().graphEnd(DEV), what).toThrow(`graph: the capture on cpu failed: ${prefix}: ${because}`);
      // The stream runs what is queued now, eagerly.
      using y = ops.scale(x, 2);
      expect(Array.from((await y.read()) as Float32Array), what).toEqual([2, 4, 6]);
    }
    // Through DeviceGraph: record's error is rethrown, and there was no result to release.
    let released = 0;
    expect(() => DeviceGraph.capture(DEV, () => tensor([4, 5, 6]), () => (released += 1))).toThrow(`tensor: a copy from the host: ${because}`);
    expect(released).toBe(0);
    counts();
    await synchronize();
    expect(counts()).toEqual({ synchronize: [1, 1] }); // no recorded op ran
    expect(() => native().graphEnd(DEV)).toThrow(/^graph: cpu is not capturing a graph/);
    native().graphBegin(DEV);
    try {
      expect(() => native().graphBegin(DEV)).toThrow(/^graph: cpu is already capturing a graph/);
    } finally {
      native().graphDispose(DEV, native().graphEnd(DEV)); // an empty graph
    }
    // The graph made before the refusals still replays.
    other.launch();
    expect(Array.from((await otherOut.read()) as Float32Array)).toEqual([7, 14, 21]);
    other.dispose();
    otherOut.dispose();
    expect(() => other.launch()).toThrow(/disposed/);
    expect(() => native().graphLaunch(DEV, 123456)).toThrow(/^graph: no graph 123456 on cpu \(disposed\?\)/);
  });

  it('an op that fails inside a launch is reported at the next sync, named, and later ops still run', async () => {
    using x = tensor([1, 2, 3]);
    const { graph, result } = DeviceGraph.capture(DEV, () => {
      native().ops.debugRaise(x.handle(), 'planted in a graph');
      return ops.scale(x, 4);
    }, (t) => t.dispose());
    using g = graph;
    using y = result;
    g.launch();
    await expect(y.read()).rejects.toThrow('debugRaise: planted in a graph');
    expect(Array.from((await y.read()) as Float32Array)).toEqual([4, 8, 12]); // the error went to one sync
    g.launch();
    await expect(synchronize()).rejects.toThrow('debugRaise: planted in a graph');
    await synchronize();
  });

  it('disposing a graph gives back what its recorded ops hold, after the launches already queued', async () => {
    const n = 1 << 20; // 4 MB tensors: far above the allocator's granules
    const r = rng();
    const a = r.floats(64);
    using x = tensor(Float32Array.from({ length: n }, (_, i) => a[i % 64]));
    await synchronize();
    const before = memoryStats(DEV).inUseBytes;
    const { graph, result } = DeviceGraph.capture(DEV, () => {
      using t1 = ops.scale(x, 2);
      using t2 = ops.scale(t1, 3);
      return ops.add(t2, x);
    }, (t) => t.dispose());
    // The two temporaries and the result stay in use while the graph holds them.
    expect(memoryStats(DEV).inUseBytes - before).toBeGreaterThanOrEqual(3 * 4 * n);
    result.dispose();
    expect(memoryStats(DEV).inUseBytes - before).toBeGreaterThanOrEqual(3 * 4 * n);
    graph.launch();
    graph.dispose(); // the queued launch still runs on live storage
    graph.dispose(); // safe twice
    await synchronize();
    expect(memoryStats(DEV).inUseBytes).toBe(before);
  });
});

describe('a capture and other threads', () => {
  it('records only the capturing thread\'s ops: a worker_thread computing and reading meanwhile is neither recorded nor refused', async () => {
    // The worker scales a tensor and reads it back in a loop until told to stop, counting its checks.
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      (async () => {
        const { tensor, ops } = await import(workerData.lib);
        let stop = false, checks = 0;
        parentPort.on('message', () => (stop = true));
        const x = tensor(Float32Array.from({ length: 4096 }, (_, i) => i));
        parentPort.postMessage({ started: true });
        while (!stop) {
          const y = ops.scale(x, 3);
          const v = await y.read();
          y.dispose();
          for (let i = 0; i < v.length; i += 511) if (v[i] !== 3 * i) throw new Error('wrong value at ' + i);
          checks += 1;
        }
        parentPort.postMessage({ checks });
      })().catch((e) => parentPort.postMessage({ error: e.message }));`;
    const worker = new Worker(code, { eval: true, workerData: { lib: resolve(import.meta.dirname, '../../dist/lib/index.js') } });
    try {
      const messages: Record<string, unknown>[] = [];
      const next = () => new Promise<Record<string, unknown>>((ok) => worker.once('message', ok));
      messages.push(await next()); // started
      using x = tensor([1, 2, 3]);
      const before = performance.now();
      let recorded = 0;
      // A capture that lasts 300 ms while the worker runs: the JavaScript thread records without
      // pause, so the worker's ops are queued by its own thread all along.
      const { graph, result } = DeviceGraph.capture(DEV, () => {
        let t = ops.scale(x, 1);
        while (performance.now() - before < 300) {
          const u = ops.add(t, x);
          t.dispose();
          t = u;
          recorded += 1;
        }
        return t;
      }, (t) => t.dispose());
      using g = graph;
      using out = result;
      const done = next();
      worker.postMessage('stop');
      messages.push(await done);
      expect(messages[1]).toEqual({ checks: expect.any(Number) });
      console.log(`the worker checked ${messages[1].checks} results while ${recorded} adds were recorded`);
      expect(messages[1].checks as number).toBeGreaterThan(0);
      g.launch();
      expect(Array.from((await out.read()) as Float32Array)).toEqual([1, 2, 3].map((v) => v * (recorded + 1)));
    } finally {
      await worker.terminate();
    }
  });
});

describe('memory of a CPU graph', () => {
  it('a temporary disposed during the capture lends its storage to a later one of its size; one still held never does', async () => {
    const r = rng();
    console.log(`seed ${r.seed}`);
    const n = 1 << 20; // 4 MB tensors: far above the allocator's granules
    const a = r.floats(n);
    using x = tensor(a);
    await synchronize();
    const before = memoryStats(DEV).inUseBytes;
    const { graph, result } = DeviceGraph.capture(DEV, () => {
      const held = ops.scale(x, 3); // returned: never lent, though chains of its size run after it
      let t = ops.scale(x, 2);
      for (let i = 0; i < 6; ++i) {
        const next = ops.add(t, x); // t is still held here, the one before it is dead
        t.dispose();
        t = next;
      }
      return [t, held];
    }, (ts) => ts.forEach((t) => t.dispose()));
    using g = graph;
    const [chain, held] = result;
    using _chain = chain;
    using _held = held;
    // Three blocks: the two the chain alternates between, and `held`; not eight.
    expect(memoryStats(DEV).inUseBytes - before).toBe(3 * 4 * n);
    const check = async (v: Float32Array) => {
      g.launch();
      const [gotChain, gotHeld] = (await Promise.all([chain.read(), held.read()])) as Float32Array[];
      let wrong = 0;
      for (let i = 0; i < n; ++i) {
        let want = Math.fround(v[i] * 2);
        for (let k = 0; k < 6; ++k) want = Math.fround(want + v[i]);
        if (gotChain[i] !== want || gotHeld[i] !== Math.fround(v[i] * 3)) wrong += 1;
      }
      expect(wrong).toBe(0);
    };
    await check(a);
    const b = r.floats(n);
    x.write(b);
    await check(b);
  });
});

describe('decode steps as CPU graphs (tiny-sparse)', () => {
  for (const activations of ['f32', 'bf16'] as const)
    it(`replayed steps give the eager steps' logits bit for bit, one graph task a step, across a capacity change (${activations})`, async () => {
      const stats = await decodeGraphedAndEager(DEV, activations, ({ step, graphed, eager, profile, captured }) => {
        for (let i = 0; i < 2; ++i) expect(graphed[i], `step ${step} row ${i}`).toEqual(eager[i]);
        if (captured) return;
        // A replay: the five input writes, one graph task, the logits read; no op queued alone.
        const queued = Object.entries(profile).filter(([, e]) => (e.queued ?? 0) > 0).map(([op, e]) => [op, e.queued]);
        expect(Object.fromEntries(queued), `step ${step}`).toEqual({ write: 5, graph: 1, read: 1 });
        expect(Object.values(profile).reduce((n, e) => n + e.runs, 0)).toBeGreaterThan(100); // the step's ops ran inside it
      });
      expect(stats).toEqual({ graphed: { graphs: 2, captures: 2, replays: 10 }, eager: { graphs: 0, captures: 0, replays: 0 } });
    }, 600_000);
});
