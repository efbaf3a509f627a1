/**
 * FP8 GEMM benchmarks on DeepSeek-V3.2 weight shapes:
 * - fp8Gemm prefill (M = 256): GFLOP/s = 2·M·N·K / s against the f32 FMA peak, beside the OpenBLAS
 *   sgemm peer (bench/peers/sgemm.c) on the same shapes in f32;
 * - fp8Gemm decode (M = 1…8): GB/s of FP8 weight bytes against the read bandwidth;
 * - groupedFp8Gemm with 256 experts and top-8 routing at T = 64 and T = 4096 tokens, beside fp8Gemm on
 *   one expert's weight with the same rows per expert (the same work per weight byte);
 * - gemm with a bf16 weight at M = 1…8 (the LM head, x bf16 or f32): GB/s of weight bytes against the
 *   read bandwidth.
 * On a CUDA device: fp8Gemm on DeepGEMM's published dense shapes (M = 4096), TFLOP/s against the
 * datasheet's dense FP8 peak (H200: 1979); the run's header prints the measured copy bandwidth. And
 * the decode kernel (swapAB) on the same N × K at M = 1, 8, 64: GB/s of FP8 weight against the
 * measured copy bandwidth and the datasheet's HBM bandwidth (H200: 4800), both in the row.
 * Skipped, with a message, on the emulated device (no GPU: the figures would mean nothing).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface, type Interface } from 'node:readline';

import { devices, ops, synchronize, tensor, type Tensor } from '../lib/index.js';
import { native, packageRoot } from '../lib/runtime/native.js';
import type { BenchCase } from './harness.js';

/** FP8 weights N×K of the model: fused q_a + kv_a projection (1536 + 576 = 2112 × 7168), a 4096-row
 *  slice of q_b (24576 × 1536), the shared expert's down projection (7168 × 2048), an expert's gate
 *  or up projection (2048 × 7168) and the two stacked (4096 × 7168). */
const WEIGHTS: [number, number][] = [
  [2112, 7168],
  [4096, 1536],
  [7168, 2048],
  [2048, 7168],
  [4096, 7168],
];
const PREFILL_M = 256;
const DECODE_M = [1, 2, 4, 8];
/** Grouped GEMM: 256 experts, top-8; the expert weight is the routed down projection with N shrunk
 *  from 7168 to 1024 (K = moe_intermediate_size 2048) to keep memory (512 MB) and run time sane. */
const EXPERTS = 256, TOP_K = 8, EXPERT_N = 1024, EXPERT_K = 2048;

/** Fast deterministic bytes: E4M3 codes without the NaN codes. */
function randomCodes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; ++i) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    let c = s & 0xff;
    if ((c & 0x7f) === 0x7f) c ^= 1;
    out[i] = c;
  }
  return out;
}

function randomScales(n: number): Float32Array {
  return Float32Array.from({ length: n }, () => 1e-3 * (1 + Math.random()));
}

interface Fp8Operand {
  codes: Tensor;
  scales: Tensor;
}

function fp8Activation(rows: number, K: number, seed: number): Fp8Operand {
  return {
    codes: tensor(randomCodes(rows * K, seed), { shape: [rows, K], dtype: 'f8e4m3' }),
    scales: tensor(randomScales(rows * (K / 128)), { shape: [rows, K / 128] }),
  };
}

function fp8Weight(lead: number[], N: number, K: number, seed: number): Fp8Operand {
  const count = lead.reduce((a, b) => a * b, 1);
  return {
    codes: tensor(randomCodes(count * N * K, seed), { shape: [...lead, N, K], dtype: 'f8e4m3' }),
    scales: tensor(randomScales(count * Math.ceil(N / 128) * (K / 128)), { shape: [...lead, Math.ceil(N / 128), K / 128] }),
  };
}

/** A case whose tensors are made on first use (inside the warm-up), so filtered-out cases cost nothing. */
function lazyCase(
  base: Omit<BenchCase, 'run' | 'dispose'>,
  setup: () => { run: () => void; dispose: () => void },
): BenchCase {
  let state: ReturnType<typeof setup> | undefined;
  return {
    ...base,
    run: async () => {
      state ??= setup();
      state.run();
      await synchronize(base.device);
    },
    dispose: () => state?.dispose(),
  };
}

/** Decode cases cycle through copies of the weight totalling ≥ 96 MB, so W comes from memory (not
 *  from the 32 MB L3) as it does when a model's layers run one after another. */
const STREAM_BYTES = 96 << 20;

function fp8GemmCase(device: string, M: number, N: number, K: number, decode: boolean, label = 'fp8Gemm'): BenchCase {
  return lazyCase(
    {
      name: `${label} M=${M}${decode ? ' (GB/s of FP8 weight)' : ''}`,
      shape: `[${M}, ${K}] · [${N}, ${K}]ᵀ`,
      device,
      unit: decode ? 'GB/s' : 'GFLOP/s',
      work: decode ? N * K : 2 * M * N * K,
      roofline: decode ? 'cpuRead' : 'cpuFma',
    },
    () => {
      const a = fp8Activation(M, K, 7 + M);
      const copies = decode ? Math.max(1, Math.ceil(STREAM_BYTES / (N * K))) : 1;
      const ws = Array.from({ length: copies }, (_, i) => fp8Weight([], N, K, 11 + N + i));
      let next = 0;
      return {
        run: () => {
          const w = ws[next];
          next = (next + 1) % copies;
          ops.fp8Gemm(a.codes, a.scales, w.codes, w.scales, 'bf16').dispose();
        },
        dispose: () => [a.codes, a.scales, ...ws.flatMap((w) => [w.codes, w.scales])].forEach((t) => t.dispose()),
      };
    },
  );
}

// ---- the OpenBLAS sgemm peer, driven over a pipe ----

let peerBinary: string | null | undefined;

/** Compiles bench/peers/sgemm.c against OpenBLAS once; null (and a printed reason) when unavailable. */
function peerPath(): string | null {
  if (peerBinary !== undefined) return peerBinary;
  const src = join(packageRoot(), 'bench', 'peers', 'sgemm.c');
  const out = join(mkdtempSync(join(tmpdir(), 'dsn-peer-')), 'sgemm');
  try {
    if (!existsSync(src)) throw new Error(`${src} is missing`);
    execFileSync('cc', ['-O2', src, '-o', out, '-lopenblas'], { stdio: 'pipe' });
    peerBinary = out;
  } catch (e) {
    const why = (e as { stderr?: Buffer }).stderr?.toString().split('\n')[0] || (e as Error).message;
    console.log(`OpenBLAS sgemm: peer unavailable (${why}); apt-get install -y libopenblas-dev to enable it`);
    peerBinary = null;
  }
  return peerBinary;
}

class PeerProcess {
  readonly #child: ChildProcess;
  readonly #lines: Interface;
  readonly #waiting: { resolve: (line: string) => void; reject: (e: Error) => void }[] = [];

  constructor(bin: string, args: string[]) {
    this.#child = spawn(bin, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    this.#lines = createInterface({ input: this.#child.stdout! });
    this.#lines.on('line', (line) => this.#waiting.shift()?.resolve(line));
    this.#child.on('exit', (code) => {
      for (const w of this.#waiting.splice(0)) w.reject(new Error(`sgemm peer exited with ${code}`));
    });
  }

  #next(): Promise<string> {
    return new Promise((resolve, reject) => this.#waiting.push({ resolve, reject }));
  }

  ready(): Promise<string> {
    return this.#next();
  }

  async run(): Promise<void> {
    const done = this.#next();
    this.#child.stdin!.write('run\n');
    await done;
  }

  dispose(): void {
    this.#child.removeAllListeners('exit');
    this.#child.stdin!.end();
    this.#child.kill();
  }
}

function peerCase(device: string, M: number, N: number, K: number): BenchCase | null {
  const bin = peerPath();
  if (!bin) return null;
  const threads = native().buildInfo().threads;
  let peer: PeerProcess | undefined;
  return {
    name: `OpenBLAS sgemm peer M=${M}`,
    shape: `[${M}, ${K}] · [${N}, ${K}]ᵀ`,
    device,
    unit: 'GFLOP/s',
    work: 2 * M * N * K,
    roofline: 'cpuFma',
    run: async () => {
      if (!peer) {
        peer = new PeerProcess(bin, [String(M), String(N), String(K), String(threads)]);
        await peer.ready();
      }
      await peer.run();
    },
    dispose: () => peer?.dispose(),
  };
}

// ---- grouped GEMM: random top-8 routing ----

/** Rows per expert for T tokens each choosing TOP_K distinct experts uniformly. */
function routeCounts(T: number): Int32Array {
  const counts = new Int32Array(EXPERTS);
  const chosen = new Set<number>();
  for (let t = 0; t < T; ++t) {
    chosen.clear();
    while (chosen.size < TOP_K) chosen.add(Math.floor(Math.random() * EXPERTS));
    for (const e of chosen) counts[e] += 1;
  }
  return counts;
}

/**
 * The grouped GEMM for T tokens, and fp8Gemm on the same total work: at T = 4096 one weight of the
 * expert shape with all R rows (the same FLOPs); at T = 64 (decode-like, ~2 rows an expert) M = 2
 * against one weight as large as the experts hit (the same weight bytes and rows per weight row).
 */
function groupedCases(device: string, T: number): BenchCase[] {
  const R = T * TOP_K;
  const counts = routeCounts(T);
  const hit = counts.reduce((n, c) => n + (c > 0 ? 1 : 0), 0);
  const decode = R / EXPERTS < 16;
  const grouped = lazyCase(
    {
      name: `groupedFp8Gemm E=${EXPERTS} top-${TOP_K} T=${T}${decode ? ` (GB/s of the ${hit} experts' FP8 weights)` : ''}`,
      shape: `[${R}, ${EXPERT_K}] · [${EXPERTS}, ${EXPERT_N}, ${EXPERT_K}]ᵀ`,
      device,
      unit: decode ? 'GB/s' : 'GFLOP/s',
      work: decode ? hit * EXPERT_N * EXPERT_K : 2 * R * EXPERT_N * EXPERT_K,
      roofline: decode ? 'cpuRead' : 'cpuFma',
    },
    () => {
      const a = fp8Activation(R, EXPERT_K, 5);
      const w = fp8Weight([EXPERTS], EXPERT_N, EXPERT_K, 3);
      const offsets = new Int32Array(EXPERTS + 1);
      for (let e = 0; e < EXPERTS; ++e) offsets[e + 1] = offsets[e] + counts[e];
      const off = tensor(offsets, { shape: [EXPERTS + 1] });
      return {
        run: () => ops.groupedFp8Gemm(a.codes, a.scales, w.codes, w.scales, off, 'bf16').dispose(),
        dispose: () => [a.codes, a.scales, w.codes, w.scales, off].forEach((t) => t.dispose()),
      };
    },
  );
  const dense = decode
    ? fp8GemmCase(device, 2, hit * EXPERT_N, EXPERT_K, true, `fp8Gemm, same work as T=${T}:`)
    : fp8GemmCase(device, R, EXPERT_N, EXPERT_K, false, `fp8Gemm, same work as T=${T}:`);
  return [grouped, dense];
}

/** The LM head of the 1B synthetic model and of DeepSeek-V3.2 (a 16384-row slice of 129280 × 7168). */
const BF16_WEIGHTS: [number, number][] = [
  [32000, 1024],
  [16384, 7168],
];

/** Fast deterministic bf16 bits of values in about ±1 (no NaN / inf). */
function randomBf16(n: number, seed: number): Uint16Array {
  const out = new Uint16Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; ++i) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = (s & 0x807f) | 0x3c00 | ((s >>> 8) & 0x0380);  // exponent 120…127, any sign / mantissa
  }
  return out;
}

/** gemm, bf16 weight, few rows (decode): GB/s of bf16 weight bytes, W cycled through ≥ 96 MB. */
function bf16GemmCase(device: string, M: number, N: number, K: number, xDtype: 'bf16' | 'f32'): BenchCase {
  return lazyCase(
    {
      name: `gemm bf16 W, x ${xDtype} M=${M} (GB/s of bf16 weight)`,
      shape: `[${M}, ${K}] · [${N}, ${K}]ᵀ`,
      device,
      unit: 'GB/s',
      work: 2 * N * K,
      roofline: 'cpuRead',
    },
    () => {
      const xBits = randomBf16(M * K, 3 + M);
      const x =
        xDtype === 'bf16'
          ? tensor(xBits, { shape: [M, K], dtype: 'bf16' })
          : tensor(Float32Array.from(xBits, (b) => new Float32Array(new Uint32Array([b << 16]).buffer)[0]), { shape: [M, K] });
      const copies = Math.max(1, Math.ceil(STREAM_BYTES / (2 * N * K)));
      const ws = Array.from({ length: copies }, (_, i) => tensor(randomBf16(N * K, 17 + i), { shape: [N, K], dtype: 'bf16' }));
      let next = 0;
      return {
        run: () => {
          const w = ws[next];
          next = (next + 1) % copies;
          ops.gemm(x, w, 'f32').dispose();
        },
        dispose: () => [x, ...ws].forEach((t) => t.dispose()),
      };
    },
  );
}

/** DeepGEMM's dense benchmark shapes (N × K of DeepSeek's layers), run at M = 4096. */
const DEEPGEMM_M = 4096;
const DEEPGEMM_NK: [number, number][] = [
  [2112, 7168],
  [24576, 1536],
  [32768, 512],
  [7168, 16384],
  [4096, 7168],
  [7168, 2048],
];

/** fp8Gemm on a CUDA device, operands made there (bf16 out), TFLOP/s against the dense FP8 peak. */
function cudaFp8GemmCase(device: string, M: number, N: number, K: number): BenchCase {
  const path = native().ops.fp8GemmPath(M, N, K) as string;
  return lazyCase(
    { name: `fp8Gemm (${path}) M=${M}`, shape: `[${M}, ${K}] · [${N}, ${K}]ᵀ`, device, unit: 'TFLOP/s', work: 2 * M * N * K, roofline: 'gpuFp8Peak' },
    () => {
      const a = tensor(randomCodes(M * K, 7), { shape: [M, K], dtype: 'f8e4m3', device });
      const sa = tensor(randomScales(M * (K / 128)), { shape: [M, K / 128], device });
      const w = tensor(randomCodes(N * K, 11), { shape: [N, K], dtype: 'f8e4m3', device });
      const sw = tensor(randomScales(Math.ceil(N / 128) * (K / 128)), { shape: [Math.ceil(N / 128), K / 128], device });
      return {
        run: () => ops.fp8Gemm(a, sa, w, sw, 'bf16').dispose(),
        dispose: () => [a, sa, w, sw].forEach((t) => t.dispose()),
      };
    },
  );
}

/** The decode GEMM on a CUDA device: GB/s of FP8 weight bytes (N·K per product; W streams once)
 *  against the measured copy bandwidth and the datasheet's. A run queues ≥ 1 GiB of products over
 *  rotated weight copies (≥ 96 MB: L2, 50 MB on an H100/H200, never holds the next product's W), then
 *  synchronises once, so the sync's latency is spread; a product of a few µs may still be bound by
 *  the host's launch rate (no CUDA graph yet), which the figure then shows. */
function cudaFp8DecodeCase(device: string, M: number, N: number, K: number): BenchCase {
  const path = native().ops.fp8GemmPath(M, N, K) as string, splits = native().ops.fp8GemmSplits(M, N, K) as number;
  return lazyCase(
    {
      name: `fp8Gemm (${path}${splits > 1 ? `, K in ${splits} splits` : ''}) M=${M} (GB/s of FP8 weight)`,
      shape: `[${M}, ${K}] · [${N}, ${K}]ᵀ`,
      device,
      unit: 'GB/s',
      work: gpuDecodeProducts(N, K) * N * K,
      roofline: 'gpuCopy',
      alsoAgainst: 'gpuDatasheetRead',
    },
    () => {
      const a = tensor(randomCodes(M * K, 7), { shape: [M, K], dtype: 'f8e4m3', device });
      const sa = tensor(randomScales(M * (K / 128)), { shape: [M, K / 128], device });
      // The copies hold the same bytes (made once per N x K: the timing does not depend on them).
      const copies = Math.max(2, Math.ceil(STREAM_BYTES / (N * K)));
      const codes = decodeWeightCodes(N, K), scales = randomScales(Math.ceil(N / 128) * (K / 128));
      const ws = Array.from({ length: copies }, () => ({
        codes: tensor(codes, { shape: [N, K], dtype: 'f8e4m3', device }),
        scales: tensor(scales, { shape: [Math.ceil(N / 128), K / 128], device }),
      }));
      let next = 0;
      return {
        run: () => {
          for (let i = 0; i < gpuDecodeProducts(N, K); ++i) {
            const w = ws[next];
            next = (next + 1) % copies;
            ops.fp8Gemm(a, sa, w.codes, w.scales, 'bf16').dispose();
          }
        },
        dispose: () => [a, sa, ...ws.flatMap((w) => [w.codes, w.scales])].forEach((t) => t.dispose()),
      };
    },
  );
}
const CUDA_DECODE_M = [1, 8, 64];
const decodeCodes = new Map<string, Uint8Array>();
/** Random weight codes for N x K, made once per shape (the M = 1, 8, 64 rows share them). */
function decodeWeightCodes(N: number, K: number): Uint8Array {
  const key = `${N}x${K}`;
  let c = decodeCodes.get(key);
  if (!c) decodeCodes.set(key, (c = randomCodes(N * K, 11)));
  return c;
}
/** Products per timed run of cudaFp8DecodeCase: ≥ 1 GiB of weight. */
const gpuDecodeProducts = (N: number, K: number) => Math.ceil((1 << 30) / (N * K));

function cudaGemmCases(device: string): BenchCase[] {
  const info = devices().find((d) => d.name === device);
  if (!info || /emulated/.test(info.description)) {
    console.log(`fp8Gemm on ${device}: skipped (the emulated device, no GPU: its timings would mean nothing)`);
    return [];
  }
  return [
    ...DEEPGEMM_NK.map(([N, K]) => cudaFp8GemmCase(device, DEEPGEMM_M, N, K)),
    ...DEEPGEMM_NK.flatMap(([N, K]) => CUDA_DECODE_M.map((M) => cudaFp8DecodeCase(device, M, N, K))),
  ];
}

export function gemmCases(device: string): BenchCase[] {
  if (device !== 'cpu') return cudaGemmCases(device);
  const cases: BenchCase[] = [];
  for (const [N, K] of WEIGHTS) {
    cases.push(fp8GemmCase(device, PREFILL_M, N, K, false));
    const peer = peerCase(device, PREFILL_M, N, K);
    if (peer) cases.push(peer);
  }
  for (const [N, K] of WEIGHTS) for (const M of DECODE_M) cases.push(fp8GemmCase(device, M, N, K, true));
  for (const T of [64, 4096]) cases.push(...groupedCases(device, T));
  for (const [N, K] of BF16_WEIGHTS)
    for (const x of ['bf16', 'f32'] as const) for (const M of DECODE_M) cases.push(bf16GemmCase(device, M, N, K, x));
  return cases;
}
