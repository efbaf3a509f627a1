/**
 * The benchmark harness: each case runs under tinybench; its median time gives the figure
 * (GB/s or GFLOP/s), divided by the roofline measured in the same run to give the ratio.
 */
import { Bench } from 'tinybench';

import type { Roofline } from './roofline.js';

export type Unit = 'GB/s' | 'GFLOP/s' | 'TFLOP/s' | 'tokens/s' | 'MB' | 'ms' | 'launches' | '%' | 'µs';

export type RooflineKind = 'cpuRead' | 'cpuFma' | 'gpuCopy' | 'gpuDatasheetRead' | 'gpuFp8Peak' | 'none';

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
  roofline: RooflineKind;
  /** A second roofline to print the figure against (e.g. the datasheet beside the measured copy). */
  alsoAgainst?: RooflineKind;
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
  /** The case's alsoAgainst roofline (in `unit`) and the figure's ratio to it, when it has one. */
  roofline2?: number | null;
  ratio2?: number | null;
}

function rooflineOf(kind: RooflineKind, r: Roofline): number | null {
  switch (kind) {
    case 'cpuRead': return r.cpuReadGBps;
    case 'cpuFma': return r.cpuFmaGflops;
    case 'gpuCopy': return r.gpu?.copyGBps ?? null;
    case 'gpuDatasheetRead': return r.gpu?.datasheetGBps ?? null;
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
    const roof = rooflineOf(c.roofline, roofline);
    const roof2 = c.alsoAgainst ? rooflineOf(c.alsoAgainst, roofline) : undefined;
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
      ...(roof2 !== undefined ? { roofline2: roof2, ratio2: roof2 ? median / roof2 : null } : {}),
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
    (r.roofline ? `${r.roofline.toFixed(1)}` : '-') + (r.roofline2 ? ` / ${r.roofline2.toFixed(1)}` : ''),
    (r.ratio !== null ? `${(r.ratio * 100).toFixed(1)} %` : '-') + (r.ratio2 ? ` / ${(r.ratio2 * 100).toFixed(1)} %` : ''),
  ]);
  const head = ['benchmark', 'shape', 'device', 'median', 'time (median)', 'roofline', 'ratio'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ');
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}
