/**
 * The MoE layer's kernels at DeepSeek-V3 prefill size (T = 4096 tokens, E = 256 experts, k = 8,
 * D = 7168, I = 2048), bf16 activations: memory-bound, reported as GB/s (bytes read + written)
 * against read bandwidth. Inputs are made on first run, so filtered-out cases cost nothing.
 */
import { ops, synchronize, type Tensor, tensor } from '../lib/index.js';
import type { BenchCase } from './harness.js';

const [T, E, K, D, I] = [4096, 256, 8, 7168, 2048];

/** bf16 bits of N(0, 1) values, a random 64 Ki pattern tiled over n elements. */
function bf16Data(n: number): Uint16Array {
  const pattern = new Float32Array(65536).map(() => Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random()));
  const bits = new Uint16Array(pattern.buffer).filter((_, i) => i % 2 === 1);  // high halves: truncated bf16
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i += bits.length) out.set(bits.subarray(0, Math.min(bits.length, n - i)), i);
  return out;
}

/** Router-like ids: 8 distinct experts per token, skewed like real routing. */
function routedIds(): Int32Array {
  const ids = new Int32Array(T * K);
  for (let t = 0; t < T; ++t) {
    const seen = new Set<number>();
    for (let j = 0; j < K; ++j) {
      let e;
      do e = Math.floor(E * Math.random() ** 1.5);
      while (seen.has(e));
      seen.add(e);
      ids[t * K + j] = e;
    }
  }
  return ids;
}

/** A case whose inputs are built by `setup` on its first run and freed by dispose(). */
function lazyCase(c: Omit<BenchCase, 'run' | 'dispose'>, setup: () => { run: () => Tensor[]; inputs: Tensor[] }): BenchCase {
  let state: ReturnType<typeof setup> | undefined;
  return {
    ...c,
    run: async () => {
      state ??= setup();
      for (const t of state.run()) t.dispose();
      await synchronize(c.device);
    },
    dispose: () => {
      for (const t of state?.inputs ?? []) t.dispose();
      state = undefined;
    },
  };
}

export function moeCases(device: string): BenchCase[] {
  if (device !== 'cpu') return [];  // CPU kernels only so far
  const base = { device, unit: 'GB/s' as const, roofline: 'cpuRead' as const };
  return [
    lazyCase({ ...base, name: 'moeRoute sigmoid+bias, 8 groups', shape: `[${T}, ${E}] top ${K}`, work: T * E * 4 + E * 4 + T * K * 8 }, () => {
      const logits = tensor(new Float32Array(T * E).map(() => Math.random() * 4 - 2), { shape: [T, E] });
      const bias = tensor(new Float32Array(E).map(() => Math.random() * 0.1));
      const opts = { topk: K, nGroups: 8, topkGroups: 4, scoreFunc: 'sigmoid', routeScale: 2.5, normalize: true } as const;
      return {
        inputs: [logits, bias],
        run: () => {
          const { ids, weights } = ops.moeRoute(logits, bias, opts);
          return [ids, weights];
        },
      };
    }),
    lazyCase(
      // Dispatch reads the ids and writes 3 small tables; the gather reads and writes T·k rows.
      { ...base, name: 'moeDispatch+gatherRows bf16', shape: `[${T}, ${D}] k ${K}`, work: T * K * 4 * 3 + (E + 1) * 4 + 2 * T * K * D * 2 },
      () => {
        const ids = tensor(routedIds(), { shape: [T, K] });
        const x = tensor(bf16Data(T * D), { shape: [T, D], dtype: 'bf16' });
        return {
          inputs: [ids, x],
          run: () => {
            const d = ops.moeDispatch(ids, E);
            const rows = ops.gatherRows(x, d.tokenOfRow);
            return [d.tokenOfRow, d.rowOfSlot, d.offsets, rows];
          },
        };
      },
    ),
    lazyCase({ ...base, name: 'swiglu bf16', shape: `[${T * K}, ${2 * I}]`, work: T * K * 2 * I * 2 + T * K * I * 2 }, () => {
      const gateUp = tensor(bf16Data(T * K * 2 * I), { shape: [T * K, 2 * I], dtype: 'bf16' });
      return { inputs: [gateUp], run: () => [ops.swiglu(gateUp)] };
    }),
    lazyCase(
      { ...base, name: 'moeCombine bf16 + shared', shape: `[${T * K}, ${D}] -> [${T}, ${D}]`, work: T * K * D * 2 + T * D * 2 * 2 + T * K * 12 },
      () => {
        const ids = routedIds();
        const idsT = tensor(ids, { shape: [T, K] });
        const d = ops.moeDispatch(idsT, E);
        d.tokenOfRow.dispose();
        d.offsets.dispose();
        const weights = tensor(new Float32Array(T * K).map(() => Math.random() / K), { shape: [T, K] });
        const expertOut = tensor(bf16Data(T * K * D), { shape: [T * K, D], dtype: 'bf16' });
        const shared = tensor(bf16Data(T * D), { shape: [T, D], dtype: 'bf16' });
        return {
          inputs: [idsT, d.rowOfSlot, weights, expertOut, shared],
          run: () => [ops.moeCombine(expertOut, d.rowOfSlot, weights, idsT, shared, 'bf16')],
        };
      },
    ),
  ];
}
