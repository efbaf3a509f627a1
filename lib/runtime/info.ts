/** What `deepseek-native info` prints: the package, the addon loaded and what it can do. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { loadAddon, packageRoot } from './native.js';
import type { DeviceInfo } from './device.js';

export interface RuntimeInfo {
  version: string;
  addon: string;
  backends: string[];
  cudaArchitectures: string[];
  devices: DeviceInfo[];
  simd: string;
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
    devices: addon.devices(),
    simd: build.simd,
    threads: build.threads,
  };
}
