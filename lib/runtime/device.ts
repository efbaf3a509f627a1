/** Devices, their caching allocators and streams. */
import { invalidArgument } from './errors.js';
import { type NativeDeviceInfo, native } from './native.js';

export type DeviceInfo = NativeDeviceInfo;

export interface MemoryStats {
  /** Bytes in live tensors (rounded up to allocation granules). */
  inUseBytes: number;
  /** Bytes freed by tensors and kept for reuse. */
  cachedBytes: number;
  /** Largest inUseBytes since start or the last releaseCache(). */
  peakBytes: number;
}

/** Every device this process can use: the CPU, then each CUDA GPU when the CUDA build is loaded. */
export function devices(): DeviceInfo[] {
  return native().devices();
}

/**
 * Where each op runs in the loaded build: `{ rmsNorm: ['cpu', 'cuda'], gemm: ['cpu'], … }`. The one
 * list that tests, benchmarks, the device check and `loadModel` read.
 */
export function opDevices(): Readonly<Record<string, readonly string[]>> {
  return native().opDevices;
}

/** The ops of `names` that have no kernel for a device kind ('cpu' or 'cuda') in the loaded build. */
export function opsMissingOn(kind: string, names: readonly string[]): string[] {
  const list = opDevices();
  return names.filter((n) => !(list[n] ?? []).includes(kind));
}

function deviceArg(where: string, device: string): string {
  if (typeof device !== 'string') throw invalidArgument(where, 'device', "'cpu' or 'cuda:N'", device);
  return device;
}

export function memoryStats(device = 'cpu'): MemoryStats {
  return native().memoryStats(deviceArg('memoryStats', device));
}

/** Frees the device's cached blocks back to the system (live tensors are untouched). */
export function releaseCache(device = 'cpu'): void {
  native().releaseCache(deviceArg('releaseCache', device));
}

/** Resolves once all work queued on the device's stream has run; rejects with the first error. */
export async function synchronize(device = 'cpu'): Promise<void> {
  await native().synchronize(deviceArg('synchronize', device));
}
