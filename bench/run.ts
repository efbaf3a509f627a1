/**
 * `npm run bench [-- FILTER]`: runs the microbenchmarks whose name contains FILTER on every device
 * (`serve`: the OpenAI-compatible server under 1, 8 and 32 streaming clients, only when named;
 * `peers`: llama.cpp on the same synthetic model, C and node-llama-cpp, side by side with ours, only
 * when named: see bench/peers.bench.ts; `dispatch`: the fixed cost of an op, eager and replayed in a
 * device graph, see bench/dispatch.bench.ts),
 * prints a table with the roofline measured in this run and the ratio, and writes
 * bench/results/latest.json: [{name, shape, device, median, unit, roofline, ratio, …}].
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { devices, opDevices } from '../lib/index.js';
import { MODEL_OPS } from '../lib/model/model.js';
import { opsMissingOn } from '../lib/runtime/device.js';
import { native, packageRoot } from '../lib/runtime/native.js';
import { attentionCases } from './attention.bench.js';
import { dispatchBenchmarks } from './dispatch.bench.js';
import { type BenchCase, formatTable, runCases } from './harness.js';
import { gemmCases } from './gemm.bench.js';
import { moeCases } from './moe.bench.js';
import { normCases } from './norm.bench.js';
import { modelBenchmarks } from './model.bench.js';
import { measureRoofline } from './roofline.js';
import { peersBenchmarks } from './peers.bench.js';
import { formatServeTable, serveBenchmarks } from './serve.bench.js';

type CaseFactory = (device: string) => BenchCase[];
/** Each family and the ops its cases run: on a GPU a family runs when all of them have a CUDA
 *  kernel in the loaded build (the addon's opDevices list). */
const FAMILIES: { ops: string[]; cases: CaseFactory }[] = [
  { ops: ['cast', 'rmsNorm'], cases: normCases },
  { ops: ['fp8Gemm', 'groupedFp8Gemm', 'gemm', 'actQuant'], cases: gemmCases },
  { ops: ['mlaPrefill', 'mlaDecode', 'topK', 'indexerScores'], cases: attentionCases },
  { ops: ['moeRoute', 'moeDispatch', 'gatherRows', 'swiglu', 'moeCombine'], cases: moeCases },
];

async function main(): Promise<void> {
  const filter = process.argv[2] ?? '';
  const roofline = await measureRoofline();
  console.log(
    `roofline: CPU read ${roofline.cpuReadGBps.toFixed(1)} GB/s, CPU f32 FMA ${roofline.cpuFmaGflops.toFixed(1)} GFLOP/s` +
      (roofline.gpu
        ? `; ${roofline.gpu.name}: datasheet ${roofline.gpu.datasheetGBps ?? '?'} GB/s and ${roofline.gpu.datasheetFp8Tflops ?? '?'} dense FP8 TFLOP/s, measured copy ${roofline.gpu.copyGBps.toFixed(0)} GB/s`
        : '; no GPU'),
  );
  // BENCH_DEVICES=cuda:0 (the device check) limits the run to those devices.
  const only = process.env.BENCH_DEVICES?.split(',');
  const deviceNames = devices()
    .filter((d) => d.supported !== false)
    .map((d) => d.name)
    .filter((d) => (d === 'cpu' || d === 'cuda:0') && (!only || only.includes(d)));
  const kernels = opDevices();
  const results = [];
  for (const device of deviceNames) {
    const kind = device === 'cpu' ? 'cpu' : 'cuda';
    for (const family of FAMILIES) {
      if (!family.ops.every((op) => (kernels[op] ?? []).includes(kind))) continue;
      const cases = family.cases(device).filter((c) => {
        const keep = `${c.name} ${c.shape}`.includes(filter);
        if (!keep) c.dispose?.();
        return keep;
      });
      results.push(...(await runCases(cases, roofline)));
    }
  }
  // The fixed cost of an op, eager and in a graph (the emulated cuda:0 runs kernels as CPU fibers:
  // no timing there).
  if (filter ? /dispatch/.test(filter) : !only)
    for (const device of deviceNames)
      if (device === 'cpu' || !native().buildInfo().cudaEmulated) results.push(...(await dispatchBenchmarks(roofline, device)));
  // End to end, on each device whose backend runs every op of the model (the emulated cuda:0 runs
  // kernels as CPU fibers: no timing there).
  // The device check (BENCH_DEVICES set) asks for them in a step of their own (`run.js model`).
  if (filter ? /model|prefill|decode|load/.test(filter) : !only)
    for (const device of deviceNames) {
      if (device !== 'cpu' && native().buildInfo().cudaEmulated) {
        console.log(`model benchmarks: skipped on ${device} (the emulated device of the cuda-emu build)`);
        continue;
      }
      const missing = opsMissingOn(device === 'cpu' ? 'cpu' : 'cuda', MODEL_OPS);
      if (missing.length) console.log(`model benchmarks: skipped on ${device} (no kernel for ${missing.join(', ')})`);
      else results.push(...(await modelBenchmarks(roofline, device)));
    }
  // The server under concurrent streaming clients: only when asked for (`npm run bench -- serve`).
  let serveTable = '';
  if (/serve/.test(filter)) {
    const serve = await serveBenchmarks(roofline, 'cpu');
    results.push(...serve.results);
    serveTable = formatServeTable(serve.rows);
  }
  // llama.cpp side by side with ours: only when asked for (`npm run bench -- peers`).
  let peersTable = '';
  if (/peers/.test(filter)) {
    const peers = await peersBenchmarks(roofline);
    results.push(...peers.results);
    peersTable = peers.table;
  }
  console.log(formatTable(results));
  if (serveTable) console.log(`\n${serveTable}`);
  if (peersTable) console.log(`\n${peersTable}`);
  const dir = join(packageRoot(), 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'latest.json'), JSON.stringify(results, null, 2) + '\n');
  writeFileSync(join(dir, 'roofline.json'), JSON.stringify(roofline, null, 2) + '\n');
  console.log(`\nwrote ${join(dir, 'latest.json')}`);
}

main().catch((e: Error) => {
  console.error(e);
  process.exitCode = 1;
});
