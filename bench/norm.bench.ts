/** cast and rmsNorm: memory-bound, reported as GB/s (bytes read + written) against read bandwidth. */
import { ops, synchronize, tensor, type DType } from '../lib/index.js';
import type { BenchCase } from './harness.js';

const BYTES: Record<string, number> = { f32: 4, bf16: 2, f16: 2, f8e4m3: 1 };

function randomData(n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; ++i) a[i] = Math.random() * 2 - 1;
  return a;
}

export function normCases(device: string): BenchCase[] {
  const cases: BenchCase[] = [];
  const rooflineKind = device === 'cpu' ? 'cpuRead' : 'gpuCopy';
  const [rows, dim] = [4096, 7168];
  for (const [from, to] of [['f32', 'bf16'], ['bf16', 'f32']] as [DType, DType][]) {
    const x = tensor(randomData(rows * dim), { shape: [rows, dim], dtype: from, device });
    cases.push({
      name: `cast ${from}->${to}`,
      shape: `[${rows}, ${dim}]`,
      device,
      unit: 'GB/s',
      work: rows * dim * (BYTES[from] + BYTES[to]),
      roofline: rooflineKind,
      run: async () => {
        const y = ops.cast(x, to);
        y.dispose();
        await synchronize(device);
      },
      dispose: () => x.dispose(),
    });
  }
  for (const dtype of ['bf16', 'f32'] as DType[]) {
    const x = tensor(randomData(rows * dim), { shape: [rows, dim], dtype, device });
    const w = tensor(randomData(dim), { dtype: 'bf16', device });
    cases.push({
      name: `rmsNorm ${dtype}`,
      shape: `[${rows}, ${dim}]`,
      device,
      unit: 'GB/s',
      work: rows * dim * BYTES[dtype] * 2,
      roofline: rooflineKind,
      run: async () => {
        const y = ops.rmsNorm(x, w, 1e-6);
        y.dispose();
        await synchronize(device);
      },
      dispose: () => {
        x.dispose();
        w.dispose();
      },
    });
  }
  return cases;
}
