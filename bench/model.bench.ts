/**
 * End-to-end speed on a synthetic DeepSeek-V3.2-shaped model of about 1 B parameters (make-tiny's
 * '1b' preset, written once to bench/.cache/): load time per GB, prefill and decode tokens/s at
 * batch 1 and 8, and for decode the memory roofline: the bytes one step must read (active FP8 and
 * BF16 weights + KV cache), divided by the read bandwidth measured in the same run. Also the first
 * forward after a load against the second, and the process's resident memory split into anonymous
 * pages (caches, activations, and any copy of the weights) and file-backed ones (the checkpoint's
 * mapped pages, shared with the page cache) after the load and after the first forward. Decode
 * runs each batch as device graphs (the default) and eagerly, interleaved, with the host time and
 * the tasks queued per step, and on the CPU the fraction of a step spent inside ops; on a GPU also
 * at batch 64.
 * DSN_BENCH_1B_DIR: where the checkpoint is kept (default bench/.cache/tiny-1b).
 */
import { existsSync, mkdirSync, readFileSync, statSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

import { loadModel, type Model, type ModelConfig, ops, releaseCache, synchronize } from '../lib/index.js';
import { KvCache, type Sequence } from '../lib/model/kv-cache.js';
import { makeTinyCheckpoint } from '../lib/tools/make-tiny/writer.js';
import { native, packageRoot } from '../lib/runtime/native.js';
import type { BenchResult } from './harness.js';
import type { Roofline } from './roofline.js';

const PROMPT = 128;
const DECODE_STEPS = 12;

function median(a: number[]): number {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Bytes one decode step of `batch` sequences of `context` tokens reads (bf16 activations). */
export function decodeBytesPerStep(c: ModelConfig, batch: number, context: number): number {
  const fp8 = (n: number, k: number) => n * k + Math.ceil(n / 128) * Math.ceil(k / 128) * 4;
  const H = c.nHeads;
  let attn = fp8(c.qLoraRank, c.dim) + fp8(H * c.qkHeadDim, c.qLoraRank) + fp8(c.kvLoraRank + c.qkRopeHeadDim, c.dim) + fp8(c.dim, H * c.vHeadDim);
  attn += H * (c.qkNopeHeadDim + c.vHeadDim) * c.kvLoraRank * 2; // absorbed W_UK, W_UVᵀ (bf16)
  if (c.sparse) attn += fp8(c.indexNHeads * c.indexHeadDim, c.qLoraRank) + fp8(c.indexHeadDim, c.dim) + c.indexNHeads * c.dim * 2;
  const expert = (inter: number) => fp8(2 * inter, c.dim) + fp8(c.dim, inter);
  const distinct = c.nRoutedExperts * (1 - (1 - c.nActivatedExperts / c.nRoutedExperts) ** batch);
  const moe = c.nRoutedExperts * c.dim * 2 + c.nSharedExperts * expert(c.moeInterDim) + distinct * expert(c.moeInterDim);
  const dense = expert(c.interDim);
  const weights = c.nLayers * attn + c.nDenseLayers * dense + (c.nLayers - c.nDenseLayers) * moe + c.vocabSize * c.dim * 2;
  const keys = Math.min(context, c.sparse ? c.indexTopk : context);
  let cache = c.nLayers * batch * keys * KvCache.latentRowBytes(c, 'bf16'); // the FP8 latent rows (656 bytes for V3.2)
  if (c.sparse && context > c.indexTopk) cache += c.nLayers * batch * context * (c.indexHeadDim + 4);
  return weights + cache;
}

/** The '1b' checkpoint's folder, written once (DSN_BENCH_1B_DIR or bench/.cache/tiny-1b). */
export async function ensureCheckpoint(): Promise<string> {
  const dir = process.env.DSN_BENCH_1B_DIR || join(packageRoot(), 'bench', '.cache', 'tiny-1b');
  if (!existsSync(join(dir, 'model.safetensors.index.json'))) {
    mkdirSync(dir, { recursive: true });
    console.log(`writing the '1b' synthetic checkpoint to ${dir} (once)…`);
    await makeTinyCheckpoint(dir, { preset: '1b', seed: 1 });
  }
  return dir;
}

/** Resident memory of this process (/proc/self/status RssAnon and RssFile) in MB, or null off Linux. */
function residentMB(): { anon: number; file: number } | null {
  let status: string;
  try {
    status = readFileSync('/proc/self/status', 'utf8');
  } catch {
    return null;
  }
  const kB = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { anon: kB('RssAnon') / 1024, file: kB('RssFile') / 1024 };
}

/** One prefill of PROMPT tokens on a fresh sequence, in seconds. */
async function oneForwardSeconds(model: Model, salt: number): Promise<number> {
  const seq = model.createSequence();
  try {
    const t0 = performance.now();
    await model.forward([{ sequence: seq, tokens: Array.from({ length: PROMPT }, (_, j) => (j * 11 + salt) % 1000) }]);
    return (performance.now() - t0) / 1e3;
  } finally {
    seq.dispose();
  }
}

async function prefillTokensPerSecond(model: Model, batch: number): Promise<number[]> {
  const times: number[] = [];
  for (let rep = 0; rep < 3; ++rep) {
    const seqs = Array.from({ length: batch }, () => model.createSequence());
    const t0 = performance.now();
    await model.forward(seqs.map((sequence, i) => ({ sequence, tokens: Array.from({ length: PROMPT }, (_, j) => (j * 7 + i * 13 + rep) % 1000) })));
    times.push((performance.now() - t0) / 1e3);
    for (const s of seqs) s.dispose();
  }
  return times;
}

/** `batch` fresh sequences, each prefilled with PROMPT tokens (`salt` varies the tokens). */
async function prefilledSequences(model: Model, batch: number, salt: number): Promise<Sequence[]> {
  const seqs = Array.from({ length: batch }, () => model.createSequence());
  await model.forward(seqs.map((sequence, i) => ({ sequence, tokens: Array.from({ length: PROMPT }, (_, j) => (j * salt + i) % 1000) })));
  return seqs;
}

async function decodeStepSeconds(model: Model, batch: number): Promise<number[]> {
  const seqs = await prefilledSequences(model, batch, 5);
  const times: number[] = [];
  for (let step = 0; step < DECODE_STEPS; ++step) {
    const t0 = performance.now();
    await model.forward(seqs.map((sequence, i) => ({ sequence, tokens: [(step * 31 + i) % 1000] })));
    times.push((performance.now() - t0) / 1e3);
  }
  for (const s of seqs) s.dispose();
  return times;
}

/**
 * A decode step as the serving loop runs it (`forwardWith`, argmax on the device, only the ids read
 * back): the host time until every op of the step is queued (the step's launch overhead; the device
 * runs behind it), and the tasks queued on the device's stream (`profile`: kernel launches or CPU
 * ops, or one graph launch, the writes of the step's indices, and the one read at the end). On the
 * CPU also the step's wall time and the stream's time inside ops (`profile`'s ms of every op but the
 * "graph" entry, the time between a launch's ops, and synchronize): the median over steps of the
 * fraction of the step spent in kernels. The first step is left out: with decode graphs it is the capture.
 */
async function decodeStepHostCost(model: Model, batch: number): Promise<{ hostMs: number; launches: number; stepMs: number; kernelMs: number | null; inKernels: number }> {
  const seqs = await prefilledSequences(model, batch, 3);
  const host: number[] = [], launches: number[] = [], step: number[] = [], kernel: number[] = [];
  for (let i = 0; i <= DECODE_STEPS; ++i) {
    // The last step's read settles its promise from inside its stream task, before the task's time
    // is counted: synchronize first, so that no time of the step before lands in this one's profile.
    await synchronize(model.device);
    native().profile(true, model.device);
    const t0 = performance.now();
    let queuedMs = 0;
    await model.forwardWith(seqs.map((sequence, j) => ({ sequence, tokens: [(i * 17 + j) % 1000] })), async (logits) => {
      queuedMs = performance.now() - t0;
      using ids = ops.argmax(logits);
      return ids.read();
    });
    const stepMs = performance.now() - t0;
    const profile = Object.entries(native().profile(true, model.device));
    if (i === 0) continue;
    host.push(queuedMs);
    launches.push(profile.reduce((n, [, e]) => n + (e.queued ?? e.runs), 0));
    step.push(stepMs);
    kernel.push(profile.reduce((n, [op, e]) => n + (op === 'graph' || op === 'synchronize' ? 0 : e.ms ?? NaN), 0));
  }
  for (const s of seqs) s.dispose();
  const kernelMs = median(kernel);
  return { hostMs: median(host), launches: median(launches), stepMs: median(step), kernelMs: Number.isNaN(kernelMs) ? null : kernelMs, inKernels: median(kernel.map((k, i) => k / step[i])) };
}

export async function modelBenchmarks(roofline: Roofline, device: string): Promise<BenchResult[]> {
  const dir = await ensureCheckpoint();
  const bytes = readdirSync(dir).filter((f) => f.endsWith('.safetensors')).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
  const results: BenchResult[] = [];
  const shape = `1b synthetic (${(bytes / 1e9).toFixed(2)} GB), prompt ${PROMPT}`;
  // The first load of this process: memory after it and after the first forward, first vs second
  // forward (the first pays the page faults of the weights it reads, and any work the load queued).
  // The pool's cached blocks from the benchmarks before go back first, so the figures are the model's.
  await synchronize(device);
  releaseCache(device);
  const beforeLoad = residentMB();
  const t0 = performance.now();
  let model: Model | undefined = await loadModel(dir, { device, maxSequences: device === 'cpu' ? 8 : 64, maxContext: 256 });
  const loadTimes = [(performance.now() - t0) / 1e3];
  const afterLoad = residentMB();
  const first = await oneForwardSeconds(model, 1);
  const afterFirst = residentMB();
  const second = await oneForwardSeconds(model, 2);
  console.log(`first forward ${(first * 1e3).toFixed(0)} ms, second ${(second * 1e3).toFixed(0)} ms (prefill ${PROMPT}, batch 1)`);
  for (const [when, mem] of [['before load', beforeLoad], ['after load', afterLoad], ['after 1st forward', afterFirst]] as const) {
    if (!mem) continue;
    console.log(`RSS ${when}: anonymous ${mem.anon.toFixed(0)} MB, file-backed ${mem.file.toFixed(0)} MB`);
    for (const [kind, mb] of [['anonymous', mem.anon], ['file-backed', mem.file]] as const)
      results.push({ name: `RSS ${kind} ${when}`, shape, device, median: mb, unit: 'MB', medianMs: 0, samples: 1, roofline: null, ratio: null });
  }
  for (const [which, s] of [['first', first], ['second', second]] as const)
    results.push({ name: `${which} forward after load`, shape, device, median: PROMPT / s, unit: 'tokens/s', medianMs: s * 1e3, samples: 1, roofline: null, ratio: null });
  for (let rep = 1; rep < 3; ++rep) {
    await model?.dispose();
    const t1 = performance.now();
    model = await loadModel(dir, { device, maxSequences: device === 'cpu' ? 8 : 64, maxContext: 256 });
    loadTimes.push((performance.now() - t1) / 1e3);
  }
  const m = model!;
  // The KV cache as deployed: FP8 latent rows. Same memory, more tokens than a bf16 latent cache.
  const bf16Row = m.config.kvLoraRank + m.config.qkRopeHeadDim;
  const bf16PerToken = m.config.nLayers * (bf16Row * 2 + (m.config.sparse ? m.config.indexHeadDim + 4 : 0));
  console.log(`KV cache: ${m.kvCacheBytesPerToken} bytes a token (FP8 latent, ${KvCache.latentRowBytes(m.config, 'bf16')} a layer; ` +
    `a bf16 latent would take ${bf16PerToken}): ${(bf16PerToken / m.kvCacheBytesPerToken).toFixed(2)}× the tokens in the same memory; ` +
    `pool ${m.cacheBlocks} blocks of 64 tokens`);
  const loadS = median(loadTimes);
  results.push({ name: 'model load', shape, device, median: bytes / 1e9 / loadS, unit: 'GB/s', medianMs: loadS * 1e3, samples: 3, roofline: roofline.cpuReadGBps, ratio: bytes / 1e9 / loadS / roofline.cpuReadGBps });
  // Decode's memory roofline: the CPU's measured read bandwidth, or on a GPU its measured copy bandwidth.
  const readGBps = device === 'cpu' ? roofline.cpuReadGBps : roofline.gpu?.device === device ? roofline.gpu.copyGBps : null;
  // Decode steps run as device graphs (the default) and, for comparison, eagerly (a second model
  // with decodeGraphs: false); on a GPU batch 64 as well, which the CPU would take minutes over.
  const gpu = device !== 'cpu';
  const graphs = gpu ? ' (CUDA graphs)' : ' (CPU graphs)';
  const eager = await loadModel(dir, { device, maxSequences: gpu ? 64 : 8, maxContext: 256, decodeGraphs: false });
  try {
    for (const batch of gpu ? [1, 8, 64] : [1, 8]) {
      const pre = median(await prefillTokensPerSecond(m, batch));
      results.push({ name: `prefill batch ${batch}`, shape, device, median: (batch * PROMPT) / pre, unit: 'tokens/s', medianMs: pre * 1e3, samples: 3, roofline: null, ratio: null });
      const stepBytes = decodeBytesPerStep(m.config, batch, PROMPT + DECODE_STEPS / 2);
      const rooflineTokens = readGBps ? (readGBps * 1e9) / stepBytes * batch : null;
      // Interleaved (graphs, eager, graphs, eager) so that a change in the machine's speed hits both.
      const times = new Map<Model, number[]>([[m, []], [eager, []]]);
      for (let rep = 0; rep < 2; ++rep)
        for (const model of [m, eager]) times.get(model)!.push(...(await decodeStepSeconds(model, batch)));
      for (const [model, how] of [[m, graphs], [eager, ' (eager)']] as const) {
        const step = median(times.get(model)!);
        results.push({ name: `decode batch ${batch}${how}`, shape, device, median: batch / step, unit: 'tokens/s', medianMs: step * 1e3, samples: 2 * DECODE_STEPS, roofline: rooflineTokens, ratio: rooflineTokens ? batch / step / rooflineTokens : null });
        const { hostMs, launches, stepMs, kernelMs, inKernels } = await decodeStepHostCost(model, batch);
        const inside = kernelMs === null ? '' : `, ${kernelMs.toFixed(2)} of ${stepMs.toFixed(2)} ms a step inside ops (${(100 * inKernels).toFixed(1)} %)`;
        console.log(`decode batch ${batch}${how} on ${device}: ${launches} tasks queued a step, ${hostMs.toFixed(2)} ms of host time a step${inside} (medians of ${DECODE_STEPS})`);
        results.push({ name: `decode batch ${batch}${how} host time`, shape, device, median: hostMs, unit: 'ms', medianMs: hostMs, samples: DECODE_STEPS, roofline: null, ratio: null });
        results.push({ name: `decode batch ${batch}${how} ops queued a step`, shape, device, median: launches, unit: 'launches', medianMs: 0, samples: DECODE_STEPS, roofline: null, ratio: null });
        if (kernelMs !== null)
          results.push({ name: `decode batch ${batch}${how} time inside ops`, shape, device, median: 100 * inKernels, unit: '%', medianMs: stepMs, samples: DECODE_STEPS, roofline: null, ratio: null });
      }
    }
  } finally {
    await eager.dispose();
  }
  await m.dispose();
  return results;
}
