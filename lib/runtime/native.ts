/**
 * Loading the native addon. Two builds may be present: the cmake-js build with the CUDA backend
 * (`prebuilds/cuda/<platform>-<arch>/` when installed, `build-cuda/Release/` from source) and the
 * node-gyp CPU build (found by node-gyp-build in `prebuilds/<platform>-<arch>/` or `build/Release/`).
 * The CUDA build is preferred when a CUDA driver is present; `DEEPSEEK_NATIVE_BUILD=cpu|cuda`
 * forces one; `DEEPSEEK_NATIVE_BUILD=cuda-emu` loads the emulated-device build (`prebuilds/cuda-emu/`,
 * `build-cuda-emu/Release/`, see cuda/emu). When nothing loads, one error names every build tried and why it failed.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { AddonLoadError } from './errors.js';

/** The native tensor handle (see native/runtime/tensor.h). */
export interface NativeTensor {
  readonly dtype: string;
  readonly shape: number[];
  readonly device: string;
  readonly byteLength: number;
  readonly disposed: boolean;
  dispose(): void;
  read(asFloat32: boolean): Promise<ArrayBuffer>;
  write(data: ArrayBufferView): void;
  reshape(shape: number[]): NativeTensor;
  rows(start: number, count: number): NativeTensor;
}

export interface NativeDeviceInfo {
  name: string;
  kind: 'cpu' | 'cuda';
  description: string;
  memoryBytes: number;
  threads?: number;
  simd?: string;
  /** CUDA devices: compute capability "9.0". */
  computeCapability?: string;
  /** CUDA devices: streaming multiprocessors. */
  multiprocessors?: number;
  /** CUDA devices: the driver's CUDA version ("13.0") and the runtime this build links. */
  driverVersion?: string;
  runtimeVersion?: string;
  /** CUDA devices: false when this build has no code for the device's architecture. */
  supported?: boolean;
  /** CUDA devices: why this build cannot run on it. */
  unsupported?: string;
}

/** The CUDA side of the loaded build (absent in the CPU build). */
export interface NativeCudaStatus {
  driverVersion: string;
  runtimeVersion: string;
  deviceCount: number;
  /** 'ok', or why there is no device (no driver, a driver too old for this build's CUDA, no GPU). */
  status: string;
}

export interface NativeBuildInfo {
  backends: string[];
  cudaArchitectures: string;
  /** True in the cuda-emu build: CUDA kernels run on an emulated device. */
  cudaEmulated?: boolean;
  cuda?: NativeCudaStatus;
  simd: string;
  /** The x86 features the CPU kernels look for that this CPU has ('avx2', 'fma', 'f16c', 'avx512f',
   *  'avx512bw', 'avx512vl', 'avx512dq', 'avx512bf16', 'avx512vbmi'). */
  cpuFeatures: string[];
  threads: number;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type NativeOp = (...args: any[]) => any;

export interface NativeAddon {
  NativeTensor: new () => NativeTensor;
  createTensor(dtype: string, shape: number[], device: string, data?: ArrayBufferView | ArrayBuffer): NativeTensor;
  devices(): NativeDeviceInfo[];
  memoryStats(device: string): { inUseBytes: number; cachedBytes: number; peakBytes: number };
  releaseCache(device: string): void;
  synchronize(device: string): Promise<ArrayBuffer>;
  buildInfo(): NativeBuildInfo;
  probe(kind: 'readBandwidth' | 'fmaPeak' | 'cudaCopyBandwidth', bytes?: number, device?: string): Promise<ArrayBuffer>;
  /** Caps the CPU SIMD path (tests); returns the path now in use. */
  setSimdCap(level: 'scalar' | 'avx2' | 'avx512'): string;
  /** Since the start or the last reset. CPU: runs and stream time of each op, and how many times it
   *  was queued on its own (`queued`: 0 for runs inside a graph launch; the "graph" entry counts the
   *  launches, its ms the time between their ops); a CUDA device: launches of each op on its stream
   *  (no ms). */
  profile(reset?: boolean, device?: string): Record<string, { runs: number; ms?: number; queued?: number }>;
  /** Device graphs, CUDA or CPU (see lib/runtime/graph.ts). */
  graphBegin(device: string): void;
  graphEnd(device: string): number;
  graphLaunch(device: string, id: number): void;
  graphDispose(device: string, id: number): void;
  ops: Record<string, NativeOp>;
  /** Each kernel op and the device kinds it runs on in this build ('cpu', 'cuda'). */
  opDevices: Record<string, string[]>;
}

/** The package root: the nearest folder above this file whose package.json is ours. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if (JSON.parse(readFileSync(pkg, 'utf8')).name === 'deepseek-native') return dir;
      } catch {
        /* keep looking */
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new AddonLoadError('deepseek-native: cannot find the package root');
    dir = up;
  }
}

/** True when an NVIDIA driver is installed (the CUDA build can then find a GPU). */
export function cudaDriverPresent(): boolean {
  if (existsSync('/proc/driver/nvidia/version')) return true;
  return ['/usr/lib/x86_64-linux-gnu/libcuda.so.1', '/usr/lib64/libcuda.so.1', '/usr/local/cuda/compat/libcuda.so.1'].some(
    (p) => existsSync(p),
  );
}

let loaded: { addon: NativeAddon; file: string } | undefined;

/** Loads the addon once; throws AddonLoadError naming each build tried and why it failed. */
export function loadAddon(): { addon: NativeAddon; file: string } {
  if (loaded) return loaded;
  const root = packageRoot();
  const require = createRequire(import.meta.url);
  const tried: string[] = [];
  const platform = `${process.platform}-${process.arch}`;
  const force = process.env.DEEPSEEK_NATIVE_BUILD;
  /** The first of `files` that exists and loads; each one that does not is noted in `tried`. */
  const loadFirst = (files: string[]): { addon: NativeAddon; file: string } | undefined => {
    for (const file of files) {
      if (!existsSync(file)) {
        tried.push(`${file}: not present`);
        continue;
      }
      try {
        return { addon: require(file) as NativeAddon, file };
      } catch (e) {
        tried.push(`${file}: ${(e as Error).message.split('\n')[0]}`);
      }
    }
    return undefined;
  };
  if (force === 'cuda-emu') {
    // The CUDA backend against the emulated device (cuda/emu): CUDA kernels run on CPU fibers.
    loaded = loadFirst([join(root, 'prebuilds', 'cuda-emu', platform, 'deepseek_native.node'), join(root, 'build-cuda-emu', 'Release', 'deepseek_native.node')]);
    if (loaded) return loaded;
    throw new AddonLoadError(
      [`Could not load the deepseek-native cuda-emu build (DEEPSEEK_NATIVE_BUILD=cuda-emu).`, 'Tried:', ...tried.map((t) => `  - ${t}`), 'Possible solutions:', '  - Build it (needs g++ and cmake): npm run build:cuda-emu'].join('\n'),
    );
  }
  const wantCuda = force === 'cuda' || (force !== 'cpu' && cudaDriverPresent());

  if (wantCuda) {
    loaded = loadFirst([join(root, 'prebuilds', 'cuda', platform, 'deepseek_native.node'), join(root, 'build-cuda', 'Release', 'deepseek_native.node')]);
    if (loaded) return loaded;
  } else {
    tried.push(`CUDA build: skipped (${force === 'cpu' ? 'DEEPSEEK_NATIVE_BUILD=cpu' : 'no CUDA driver found'})`);
  }
  if (force !== 'cuda') {
    try {
      const nodeGypBuild = require('node-gyp-build') as { (dir: string): unknown; resolve(dir: string): string };
      const file = nodeGypBuild.resolve(root);
      loaded = { addon: require(file) as NativeAddon, file };
      return loaded;
    } catch (e) {
      tried.push(`CPU build (node-gyp-build in ${join(root, 'prebuilds', platform)} and ${join(root, 'build', 'Release')}): ${(e as Error).message.split('\n')[0]}`);
    }
  }
  throw new AddonLoadError(
    [
      `Could not load the deepseek-native addon for ${platform} (Node ${process.version}).`,
      'Tried:',
      ...tried.map((t) => `  - ${t}`),
      'Possible solutions:',
      '  - Install a published release, which carries prebuilt linux-x64 binaries: npm install deepseek-native',
      '  - Build from source (needs a C++17 compiler): npm run build',
      '  - For the CUDA backend (needs nvcc and cmake): npm run build:cuda',
      '  - Unset DEEPSEEK_NATIVE_BUILD, or set it to cpu or cuda to pick a build',
    ].join('\n'),
  );
}

/** The loaded addon. */
export function native(): NativeAddon {
  return loadAddon().addon;
}
