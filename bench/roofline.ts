/**
 * The machine's roofline, measured in the same run as the benchmarks: CPU read bandwidth and f32
 * FMA peak on all intra-op threads; on a GPU, the datasheet HBM bandwidth and a measured
 * device-to-device copy bandwidth.
 */
import { devices } from '../lib/index.js';
import { native } from '../lib/runtime/native.js';

export interface Roofline {
  cpuReadGBps: number;
  cpuFmaGflops: number;
  gpu?: { device: string; name: string; datasheetGBps: number | null; datasheetFp8Tflops: number | null; copyGBps: number };
}

/** HBM bandwidth from NVIDIA's datasheets, GB/s. */
const DATASHEET_GBPS: [RegExp, number][] = [
  [/H200/, 4800],
  [/H100.*(SXM|HBM3)/, 3350],
  [/H100.*PCIe/, 2000],
  [/H100/, 3350],
  [/H800/, 3350],
  [/A100.*80GB/, 2039],
  [/A100/, 1555],
];

async function probe(kind: 'readBandwidth' | 'fmaPeak' | 'cudaCopyBandwidth', bytes?: number, device?: string): Promise<number> {
  return new Float64Array(await native().probe(kind, bytes, device))[0];
}

/** Dense FP8 tensor-core peak from NVIDIA's datasheets (without sparsity), TFLOP/s. */
const DATASHEET_FP8_TFLOPS: [RegExp, number][] = [
  [/H200/, 1979],
  [/H100.*PCIe/, 1513],
  [/H100/, 1979],
  [/H800/, 1979],
];

export async function measureRoofline(): Promise<Roofline> {
  const cpuReadGBps = await probe('readBandwidth', 512 << 20);
  const cpuFmaGflops = await probe('fmaPeak');
  const cuda = devices().find((d) => d.kind === 'cuda');
  if (!cuda) return { cpuReadGBps, cpuFmaGflops };
  const copyGBps = await probe('cudaCopyBandwidth', 1 << 30, cuda.name);
  const datasheetGBps = DATASHEET_GBPS.find(([re]) => re.test(cuda.description))?.[1] ?? null;
  const datasheetFp8Tflops = DATASHEET_FP8_TFLOPS.find(([re]) => re.test(cuda.description))?.[1] ?? null;
  return { cpuReadGBps, cpuFmaGflops, gpu: { device: cuda.name, name: cuda.description, datasheetGBps, datasheetFp8Tflops, copyGBps } };
}
