/**
 * `npm run bench [-- FILTER]`: runs the microbenchmarks whose name contains FILTER on every device
 * (`serve`: the OpenAI-compatible server under 1, 8 and 32 streaming clients, only when named),
 * prints a table with the roofline measured in this run and the ratio, and writes
 * bench/results/latest.json: [{name, shape, device, median, unit, roofline, ratio, …}].
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { devices } from '../lib/index.js';
import { packageRoot } from '../lib/runtime/native.js';
import { attentionCases } from './attention.bench.js';
import { type BenchCase, formatTable, runCases } from './harness.js';
import { gemmCases } from './gemm.bench.js';
import { moeCases } from './moe.bench.js';
import { normCases } from './norm.bench.js';
import { modelBenchmarks } from './model.bench.js';
import { measureRoofline } from './roofline.js';
import { formatServeTable, serveBenchmarks } from './serve.bench.js';

type CaseFactory = (device: string) => BenchCase[];
const FAMILIES: CaseFactory[] = [normCases, gemmCases, attentionCases, moeCases];

async function main(): Promise<void> {
  const filter = process.argv[2] ?? '';
  const roofline = await measureRoofline();
  console.log(
    `roofline: CPU read ${roofline.cpuReadGBps.toFixed(1)} GB/s, CPU f32 FMA ${roofline.cpuFmaGflops.toFixed(1)} GFLOP/s` +
      (roofline.gpu
        ? `; ${roofline.gpu.name}: datasheet ${roofline.gpu.datasheetGBps ?? '?'} GB/s, measured copy ${roofline.gpu.copyGBps.toFixed(0)} GB/s`
        : '; no GPU'),
  );
  const deviceNames = devices().map((d) => d.name).filter((d) => d === 'cpu' || d === 'cuda:0');
  const results = [];
  for (const device of deviceNames) {
    // Only cast and rmsNorm have CUDA kernels so far; every family runs on the CPU.
    for (const family of device === 'cpu' ? FAMILIES : [normCases]) {
      const cases = family(device).filter((c) => {
        const keep = `${c.name} ${c.shape}`.includes(filter);
        if (!keep) c.dispose?.();
        return keep;
      });
      results.push(...(await runCases(cases, roofline)));
    }
  }
  // End to end (the model's ops run on the CPU backend for now).
  if (!filter || /model|prefill|decode|load/.test(filter)) results.push(...(await modelBenchmarks(roofline, 'cpu')));
  // The server under concurrent streaming clients: only when asked for (`npm run bench -- serve`).
  let serveTable = '';
  if (/serve/.test(filter)) {
    const serve = await serveBenchmarks(roofline, 'cpu');
    results.push(...serve.results);
    serveTable = formatServeTable(serve.rows);
  }
  console.log(formatTable(results));
  if (serveTable) console.log(`\n${serveTable}`);
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
