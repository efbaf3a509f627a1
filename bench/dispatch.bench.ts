/**
 * The fixed cost of an op (issue 12), eager against replayed in a device graph (lib/runtime/graph.ts):
 * - a tiny op (`scale` of 16 f32) 1000 times: µs an op queued one by one from JavaScript (the
 *   N-API call, the output's allocation, the queue and the stream's wake-up), µs an op replayed in
 *   one graph launch, and on the CPU the µs the stream spent inside the op (`profile`);
 * - small-M FP8 linears as a decode step runs them (M = 1, 1b-model shapes, a different weight each
 *   call, 256 MB of weights in all so that they stream from memory): GB/s of weight read, eager and
 *   replayed, against the read bandwidth measured in the same run, and µs a call in a graph.
 * Medians of 7 runs, eager and replayed interleaved. `npm run bench -- dispatch`.
 */
import { ops, synchronize, type Tensor, tensor } from '../lib/index.js';
import { DeviceGraph } from '../lib/runtime/graph.js';
import { native } from '../lib/runtime/native.js';
import type { BenchResult } from './harness.js';
import type { Roofline } from './roofline.js';

const RUNS = 7;

function median(a: number[]): number {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** E4M3 codes (no NaN codes): 64 KB of random ones, repeated. */
function e4m3Codes(n: number): Uint8Array {
  const tile = new Uint8Array(1 << 16);
  for (let i = 0; i < tile.length; ++i) {
    const c = (Math.random() * 256) | 0;
    tile[i] = (c & 0x7f) === 0x7f ? 0x3f : c;
  }
  const u = new Uint8Array(n);
  for (let i = 0; i < n; i += tile.length) u.set(tile.subarray(0, Math.min(tile.length, n - i)), i);
  return u;
}

/** Wall ms of `queue()` and a synchronize; with `opName`, also the stream's ms inside that op (CPU). */
async function timed(device: string, queue: () => void, opName?: string): Promise<{ wallMs: number; insideMs: number | null }> {
  await synchronize(device);
  native().profile(true, device);
  const t0 = performance.now();
  queue();
  await synchronize(device);
  const wallMs = performance.now() - t0;
  const ms = opName ? native().profile(true, device)[opName]?.ms : undefined;
  return { wallMs, insideMs: ms ?? null };
}

/** Times `record` queued eagerly and replayed as one graph, interleaved; returns ms medians. */
async function eagerAndReplayed<T>(device: string, record: () => T, release: (r: T) => void, opName: string) {
  const { graph, result } = DeviceGraph.capture(device, record, release);
  try {
    const eager: number[] = [], replayed: number[] = [], inside: number[] = [];
    for (let rep = 0; rep <= RUNS; ++rep) {
      const e = await timed(device, () => release(record()));
      const g = await timed(device, () => graph.launch(), opName);
      if (rep === 0) continue; // warm-up
      eager.push(e.wallMs);
      replayed.push(g.wallMs);
      if (g.insideMs !== null) inside.push(g.insideMs);
    }
    return { eagerMs: median(eager), replayedMs: median(replayed), insideMs: inside.length ? median(inside) : null };
  } finally {
    graph.dispose();
    release(result);
  }
}

export async function dispatchBenchmarks(roofline: Roofline, device: string): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  const row = (name: string, shape: string, median: number, unit: BenchResult['unit'], medianMs: number, roof: number | null = null) =>
    results.push({ name, shape, device, median, unit, medianMs, samples: RUNS, roofline: roof, ratio: roof ? median / roof : null });

  const calls = 1000;
  {
    using x = tensor(Float32Array.from({ length: 16 }, () => Math.random()), { device });
    const shape = `scale [16] f32 × ${calls}`;
    const t = await eagerAndReplayed(device, () => Array.from({ length: calls }, () => ops.scale(x, 2)), (ts) => ts.forEach((y) => y.dispose()), 'scale');
    row('tiny op queued from JS, eager', shape, (t.eagerMs * 1e3) / calls, 'µs', t.eagerMs);
    row('tiny op replayed in a graph', shape, (t.replayedMs * 1e3) / calls, 'µs', t.replayedMs);
    if (t.insideMs !== null) row('tiny op, time inside it', shape, (t.insideMs * 1e3) / calls, 'µs', t.insideMs);
  }

  const readGBps = device === 'cpu' ? roofline.cpuReadGBps : roofline.gpu?.device === device ? roofline.gpu.copyGBps : null;
  for (const [N, K] of [[384, 1024], [1536, 384], [1024, 1024]] as const) {
    // A decode step of the 1b model runs 64 FP8 linears of these shapes, reading each weight once:
    // at least 64 of them, and 256 MB in all, so that the weights stream from memory, not a cache.
    const bytes = N * K + Math.ceil(N / 128) * (K / 128) * 4;
    const count = Math.max(64, Math.ceil(256e6 / bytes));
    const weights: [Tensor, Tensor][] = Array.from({ length: count }, () => [
      tensor(e4m3Codes(N * K), { dtype: 'f8e4m3', shape: [N, K], device }),
      tensor(Float32Array.from({ length: Math.ceil(N / 128) * (K / 128) }, () => 1e-3 + Math.random() * 1e-3), { shape: [Math.ceil(N / 128), K / 128], device }),
    ]);
    using x = tensor(Float32Array.from({ length: K }, () => Math.random() - 0.5), { shape: [1, K], dtype: 'bf16', device });
    const { codes, scales } = ops.actQuant(x);
    try {
      const t = await eagerAndReplayed(device, () => weights.map(([w, s]) => ops.fp8Gemm(codes, scales, w, s, 'bf16')), (ys) => ys.forEach((y) => y.dispose()), 'fp8Gemm');
      const shape = `M 1, [${N}, ${K}] × ${count} weights`;
      row('fp8Gemm queued from JS, eager', shape, (count * bytes) / (t.eagerMs * 1e6), 'GB/s', t.eagerMs, readGBps);
      row('fp8Gemm replayed in a graph', shape, (count * bytes) / (t.replayedMs * 1e6), 'GB/s', t.replayedMs, readGBps);
      if (t.insideMs !== null) row('fp8Gemm in a graph, µs a call', shape, (t.insideMs * 1e3) / count, 'µs', t.insideMs);
    } finally {
      codes.dispose();
      scales.dispose();
      for (const [w, s] of weights) w.dispose(), s.dispose();
    }
  }
  return results;
}
