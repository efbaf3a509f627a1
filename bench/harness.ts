/**
 * The benchmark harness: each case runs under tinybench; its median time gives the figure
 * (GB/s or GFLOP/s), divided by the roofline measured in the same run to give the ratio.
 */
import { Bench } from 'tinybench';

import type { Roofline } from './roofline.js';

export type Unit = 'GB/s' | 'GFLOP/s' | 'TFLOP/s' | 'tokens/s' | 'MB' | 'ms' | 'launches';

export interface BenchCase {
  /** e.g. "rmsNorm bf16" */
  name: string;
  /** e.g. "[4096, 7168]" */
  shape: string;
  device: string;
  unit: Unit;
  /** Work per run in the unit's numerator: bytes (GB/s), flops (GFLOP/s, TFLOP/s) or tokens. */
  work: number;
  /** Which roofline the figure is compared with. */
  roofline: 'cpuRead' | 'cpuFma' | 'gpuCopy' | 'gpuFp8Peak' | 'none';
  /** One run: queue the op(s) and wait for them. */
  run(): Promise<void>;
  /** Frees what setup made. */
  dispose?(): void;
}

export interface BenchResult {
  name: string;
  shape: string;
  device: string;
  /** Median of the runs, in `unit`. */
  median: number;
  unit: Unit;
  medianMs: number;
  samples: number;
  /** The roofline figure the ratio is taken against, in `unit`. */
  roofline: number | null;
  ratio: number | null;
}

function rooflineOf(c: BenchCase, r: Roofline): number | null {
  switch (c.roofline) {
    case 'cpuRead': return r.cpuReadGBps;
    case 'cpuFma': return r.cpuFmaGflops;
    case 'gpuCopy': return r.gpu?.copyGBps ?? null;
    case 'gpuFp8Peak': return r.gpu?.datasheetFp8Tflops ?? null;
    default: return null;
  }
}

export async function runCases(cases: BenchCase[], roofline: Roofline, timeMs = 600): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  for (const c of cases) {
    const bench = new Bench({ time: timeMs, warmupTime: 100, warmupIterations: 2, iterations: 5 });
    bench.add(c.name, () => c.run());
    await bench.run();
    const lat = bench.tasks[0].result?.latency;
    c.dispose?.();
    if (!lat?.p50) throw new Error(`benchmark ${c.name} ${c.shape} produced no samples`);
    const seconds = lat.p50 / 1e3;
    const scale = c.unit === 'tokens/s' ? 1 : c.unit === 'TFLOP/s' ? 1e12 : 1e9;
    const median = c.work / seconds / scale;
    const roof = rooflineOf(c, roofline);
    results.push({
      name: c.name,
      shape: c.shape,
      device: c.device,
      median,
      unit: c.unit,
      medianMs: lat.p50,
      samples: lat.samples.length,
      roofline: roof,
      ratio: roof ? median / roof : null,
    });
  }
  return results;
}

export function formatTable(results: BenchResult[]): string {
  const rows = results.map((r) => [
    r.name,
    r.shape,
    r.device,
    `${r.median.toFixed(r.median < 10 ? 2 : 1)} ${r.unit}`,
    `${r.medianMs.toFixed(3)} ms`,
    r.roofline ? `${r.roofline.toFixed(1)}` : '-',
    r.ratio !== null ? `${(r.ratio * 100).toFixed(1)} %` : '-',
  ]);
  const head = ['benchmark', 'shape', 'device', 'median', 'time (median)', 'roofline', 'ratio'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ');
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}
