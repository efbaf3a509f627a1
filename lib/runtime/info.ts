/** What `deepseek-native info` prints: the package, the addon loaded and what it can do. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { loadAddon, packageRoot } from './native.js';
import { type DeviceInfo, opDevices } from './device.js';
import type { NativeCudaStatus } from './native.js';

export interface RuntimeInfo {
  version: string;
  addon: string;
  backends: string[];
  cudaArchitectures: string[];
  /** The CUDA driver and runtime versions and why there is no device, in the CUDA build. */
  cuda: NativeCudaStatus | null;
  devices: DeviceInfo[];
  /** The ops with a CUDA kernel in this build. */
  cudaOps: string[];
  /** The CPU SIMD path in use: 'avx512' (F/BW/VL/DQ), 'avx2' (AVX2 + FMA + F16C) or 'scalar'. */
  simd: string;
  /** The x86 features the CPU kernels look for that this CPU has; with 'avx512bf16' (and 'avx512vbmi'
   *  for the GEMM) the BF16 dot-product kernels run on the avx512 path. */
  cpuFeatures: string[];
  threads: number;
}

export function runtimeInfo(): RuntimeInfo {
  const { addon, file } = loadAddon();
  const version = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')).version as string;
  const build = addon.buildInfo();
  return {
    version,
    addon: file,
    backends: build.backends,
    cudaArchitectures: build.cudaArchitectures ? build.cudaArchitectures.split(',') : [],
    cuda: build.cuda ?? null,
    devices: addon.devices(),
    cudaOps: Object.entries(opDevices()).filter(([, d]) => d.includes('cuda')).map(([op]) => op),
    simd: build.simd,
    cpuFeatures: build.cpuFeatures,
    threads: build.threads,
  };
}
