/**
 * The attention family on the CPU: mlaDecode over the paged latent cache and indexerScores over the
 * paged FP8 key cache (GB/s of cache bytes read, against read bandwidth; and the same runs as
 * GFLOP/s against the f32 FMA peak, since both are compute-bound on CPUs), topK, mlaPrefill.
 */
import { ops, synchronize, type Tensor, tensor } from '../lib/index.js';
import type { BenchCase } from './harness.js';

function normals(n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; ++i) a[i] = (Math.random() + Math.random() + Math.random() - 1.5) * 2 * scale;
  return a;
}

/** Block tables for `seqs` sequences of `keys` tokens each, in shuffled blocks of one cache. */
function pagedLayout(seqs: number, keys: number): { numBlocks: number; table: Int32Array; maxBlocks: number } {
  const maxBlocks = Math.ceil(keys / 64), numBlocks = seqs * maxBlocks;
  const perm = Array.from({ length: numBlocks }, (_, i) => i);
  for (let i = numBlocks - 1; i > 0; --i) {
    const j = Math.floor(Math.random() * (i + 1));
    [perm[i], perm[j]] = [perm[j], perm[i]];
  }
  return { numBlocks, table: Int32Array.from(perm), maxBlocks };
}

/**
 * Two views of one op: bytes of cache read (against cpuRead) and flops (against cpuFma). The
 * inputs are freed once both cases are done with them (either may be filtered out first).
 */
function twoFigures(base: Omit<BenchCase, 'unit' | 'work' | 'roofline' | 'name'>, name: string, bytes: number, flops: number): BenchCase[] {
  let users = 2;
  const release = () => {
    if (--users === 0) base.dispose?.();
  };
  return [
    { ...base, name, unit: 'GB/s', work: bytes, roofline: 'cpuRead', dispose: release },
    { ...base, name: `${name} (compute)`, unit: 'GFLOP/s', work: flops, roofline: 'cpuFma', dispose: release },
  ];
}

function decodeCases(seqs: number, dtype: 'bf16' | 'f32'): BenchCase[] {
  const [H, C, Dr, keys] = [128, 512, 64, 4096];
  const W = C + Dr, T = seqs;
  const { numBlocks, table, maxBlocks } = pagedLayout(seqs, keys);
  const owned: Tensor[] = [
    tensor(normals(T * H * C), { shape: [T, H, C], dtype }),
    tensor(normals(T * H * Dr), { shape: [T, H, Dr], dtype }),
    tensor(normals(numBlocks * 64 * W), { shape: [numBlocks, 64, W], dtype }),
    tensor(table, { shape: [seqs, maxBlocks] }),
    tensor(Int32Array.from({ length: T }, (_, t) => t)),
    tensor(new Int32Array(T).fill(keys - 1)),
  ];
  const [ql, qpe, cache, tableT, seqIdx, qPos] = owned;
  const base = {
    shape: `[T=${T}, H=${H}, C=${C}+${Dr}] × ${keys} keys`,
    device: 'cpu',
    run: async () => {
      ops.mlaDecode(ql, qpe, cache, tableT, seqIdx, qPos, { scale: 1 / Math.sqrt(192) }).dispose();
      await synchronize('cpu');
    },
    dispose: () => owned.forEach((t) => t.dispose()),
  };
  const bytes = T * keys * W * (dtype === 'bf16' ? 2 : 4);
  const flops = 2 * T * H * keys * (W + C);
  return twoFigures(base, `mlaDecode ${dtype} ${seqs === 1 ? 'T=1' : `${seqs} sequences`}`, bytes, flops);
}

function indexerCases(T: number): BenchCase[] {
  const [H, D, keys] = [64, 128, 16384];
  const { numBlocks, table, maxBlocks } = pagedLayout(1, keys);
  const owned: Tensor[] = [
    tensor(normals(T * H * D, 4), { shape: [T, H, D], dtype: 'f8e4m3' }),
    tensor(normals(T * H, 0.1), { shape: [T, H] }),
    tensor(normals(numBlocks * 64 * D, 4), { shape: [numBlocks, 64, D], dtype: 'f8e4m3' }),
    tensor(normals(numBlocks * 64, 0.01), { shape: [numBlocks, 64] }),
    tensor(table, { shape: [1, maxBlocks] }),
    tensor(new Int32Array(T)),
    tensor(Int32Array.from({ length: T }, (_, t) => keys - T + t)),
  ];
  const [q, w, k, ks, tableT, seqIdx, qPos] = owned;
  const base = {
    shape: `[T=${T}, Hi=${H}, Di=${D}] × ${keys} keys`,
    device: 'cpu',
    run: async () => {
      ops.indexerScores(q, w, k, ks, tableT, seqIdx, qPos, keys).dispose();
      await synchronize('cpu');
    },
    dispose: () => owned.forEach((t) => t.dispose()),
  };
  return twoFigures(base, `indexerScores T=${T}`, keys * (D + 4), 2 * T * H * keys * D);
}

function topKCase(): BenchCase {
  const [T, S, k] = [4, 16384, 2048];
  const scores = tensor(normals(T * S), { shape: [T, S] });
  return {
    name: 'topK',
    shape: `[${T}, ${S}] k=${k}`,
    device: 'cpu',
    unit: 'GB/s',
    work: T * S * 4,
    roofline: 'cpuRead',
    run: async () => {
      ops.topK(scores, k).dispose();
      await synchronize('cpu');
    },
    dispose: () => scores.dispose(),
  };
}

function prefillCase(): BenchCase {
  const [T, H, Dn, Dr, Dv] = [512, 16, 128, 64, 128];
  const owned: Tensor[] = [
    tensor(normals(T * H * (Dn + Dr)), { shape: [T, H, Dn + Dr], dtype: 'bf16' }),
    tensor(normals(T * H * (Dn + Dv)), { shape: [T, H, Dn + Dv], dtype: 'bf16' }),
    tensor(normals(T * Dr), { shape: [T, Dr], dtype: 'bf16' }),
    tensor(Int32Array.from({ length: T }, (_, t) => t)),
  ];
  const [q, kv, kPe, qPos] = owned;
  return {
    name: 'mlaPrefill bf16 causal',
    shape: `[T=S=${T}, H=${H}, ${Dn}+${Dr} / ${Dv}]`,
    device: 'cpu',
    unit: 'GFLOP/s',
    // Causal: about half the (query, key) pairs.
    work: 2 * H * ((T * (T + 1)) / 2) * (Dn + Dr + Dv),
    roofline: 'cpuFma',
    run: async () => {
      ops.mlaPrefill(q, kv, kPe, qPos, { scale: 1 / Math.sqrt(Dn + Dr), vHeadDim: Dv }).dispose();
      await synchronize('cpu');
    },
    dispose: () => owned.forEach((t) => t.dispose()),
  };
}

/** The CPU-only attention ops; nothing on other devices yet. */
export function attentionCases(device: string): BenchCase[] {
  if (device !== 'cpu') return [];
  return [
    ...decodeCases(1, 'bf16'),
    ...decodeCases(8, 'bf16'),
    ...decodeCases(1, 'f32'),
    ...indexerCases(1),
    ...indexerCases(4),
    topKCase(),
    prefillCase(),
  ];
}
