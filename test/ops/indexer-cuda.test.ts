/**
 * The lightning indexer's kernels on a CUDA device (the emulated cuda:0 in CI): indexerScores against
 * a float64 reference and the CPU op, and topK against an independent selection and the CPU op.
 *
 * topK's tie rule on CUDA (cuda/topk.cuh): among scores equal to the k-th largest, the lowest indices.
 * Rows of distinct scores have no ties, so there CUDA must give the CPU's indices exactly; rows with
 * many exact ties (zeros of both signs, as DSA gives where relu cuts every head) check the rule itself.
 */
import { describe, expect, it } from 'vitest';

import { ops, tensor } from '../../lib/index.js';
import { rng, suiteDevices } from '../helpers.js';
import { indexerProblem, shuffled } from './attention-helpers.js';

/** The CUDA selection, computed independently: sort by score descending (NaN first, -0 = +0), then index ascending; the first k, -1 padded. */
function topKRef(row: Float32Array, n: number, k: number): number[] {
  const rank = (v: number) => (Number.isNaN(v) ? Infinity : v);
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => {
    const [x, y] = [rank(row[a]), rank(row[b])];
    if (Number.isNaN(row[a]) !== Number.isNaN(row[b])) return Number.isNaN(row[a]) ? -1 : 1;
    return x === y ? a - b : y - x;
  });
  return Array.from({ length: k }, (_, j) => (j < n ? order[j] : -1));
}

for (const { device, skip } of suiteDevices('indexerScores', 'topK')) {
  if (device === 'cpu') continue; // this file compares a device's kernels with references and the CPU's
  describe.skipIf(skip)(`indexerScores and topK on ${device}${skip ? ` (skipped: ${skip})` : ''}`, () => {
    const r = rng();

    const configs = [
      { name: 'T=1 Hi=1, one key', H: 1, D: 16, lengths: [1], queries: [[0, 0]], maxKeys: 1 },
      { name: 'odd sizes, ragged batch, blocks crossed', H: 5, D: 24, lengths: [130, 65, 3], queries: [[0, 129], [1, 64], [2, 2], [0, 63]], maxKeys: 150 },
      { name: 'Hi=40 (a lane scores two heads) Di=33, two key chunks', H: 40, D: 33, lengths: [300], queries: [[0, 299], [0, 64]], maxKeys: 310 },
      { name: 'model widths Hi=64 Di=128', H: 64, D: 128, lengths: [200, 70], queries: [[0, 199], [1, 69]], maxKeys: 260 },
    ];
    {
      const lengths = Array.from({ length: r.int(1, 3) }, () => r.int(1, 200));
      const queries = Array.from({ length: r.int(1, 4) }, () => {
        const seq = r.int(0, lengths.length);
        return [seq, r.int(0, lengths[seq])];
      });
      const [H, D] = [r.int(1, 70), r.int(1, 130)];
      const maxKeys = Math.max(...queries.map((q) => q[1])) + 1 + r.int(0, 50);
      configs.push({ name: `random shapes Hi=${H} Di=${D} lengths=${lengths} queries=${JSON.stringify(queries)} maxKeys=${maxKeys}`, H, D, lengths, queries, maxKeys });
    }
    for (const c of configs)
      it(`indexerScores ${c.name}: float64 reference and the CPU op (seed ${r.seed})`, async () => {
        const { H, D, maxKeys } = c;
        const { T, numBlocks, maxBlocks, table, kCache, kScales, q, weights, seqIdx, qPos, want, bound } = indexerProblem(r, c);
        const run = (d: string) => {
          using qT = tensor(q, { shape: [T, H, D], dtype: 'f8e4m3', device: d });
          using wT = tensor(weights, { shape: [T, H], device: d });
          using kT = tensor(kCache, { shape: [numBlocks, 64, D], dtype: 'f8e4m3', device: d });
          using ksT = tensor(kScales, { shape: [numBlocks, 64], device: d });
          using tableT = tensor(table, { shape: [c.lengths.length, maxBlocks], device: d });
          using seqT = tensor(seqIdx, { device: d });
          using posT = tensor(qPos, { device: d });
          return ops.indexerScores(qT, wT, kT, ksT, tableT, seqT, posT, maxKeys);
        };
        using cpuOut = run('cpu');
        using out = run(device);
        expect(out.shape).toEqual([T, maxKeys]);
        const [got, cpu] = [await out.read<'f32'>(), await cpuOut.read<'f32'>()];
        // Recursive f32 summation of n terms errs by at most (n - 1)·2^-24·Σ|terms|. The CUDA kernel
        // (cuda/indexer.cu) rounds each dot ⌈D/32⌉ times (one tensor-core sum of 32 exact FP8 products
        // into the f32 accumulator each), then each lane adds 2·⌈H/16⌉ weighted relus, 3 shuffle
        // levels sum the lanes, and one product applies the key's scale. The CPU suite bounds the CPU
        // op by 2^-19·Σ|terms|.
        const cudaTol = (Math.ceil(D / 32) + 2 * Math.ceil(H / 16) + 4) * 2 ** -24;
        for (let i = 0; i < want.length; ++i) {
          const ok = want[i] === -Infinity
            ? got[i] === -Infinity && cpu[i] === -Infinity
            : Math.abs(got[i] - want[i]) <= cudaTol * bound[i] && Math.abs(got[i] - cpu[i]) <= (cudaTol + 2 ** -19) * bound[i];
          if (!ok) expect({ t: Math.floor(i / maxKeys), s: i % maxKeys, got: got[i], cpu: cpu[i] }).toEqual({ t: Math.floor(i / maxKeys), s: i % maxKeys, got: want[i], cpu: want[i] });
        }
      });

    it('indexerScores checks ids and maxKeys when it runs', async () => {
      using q = tensor(new Uint8Array(2 * 2 * 8), { shape: [2, 2, 8], dtype: 'f8e4m3', device });
      using w = tensor(new Float32Array(4), { shape: [2, 2], device });
      using k = tensor(new Uint8Array(3 * 64 * 8), { shape: [3, 64, 8], dtype: 'f8e4m3', device });
      using ks = tensor(new Float32Array(3 * 64), { shape: [3, 64], device });
      using table = tensor(new Int32Array([2, 0, 7, 1]), { shape: [2, 2], device });
      const run = async (seq: number[], pos: number[], maxKeys: number) => {
        using s = tensor(new Int32Array(seq), { device });
        using p = tensor(new Int32Array(pos), { device });
        using out = ops.indexerScores(q, w, k, ks, table, s, p, maxKeys);
        return out.read();
      };
      await expect(run([0, 2], [1, 1], 128)).rejects.toThrow('indexerScores: index 2 is out of range [0, 2)');
      await expect(run([0, 1], [1, 128], 200)).rejects.toThrow('indexerScores: offset 128 is out of range [0, 128)');
      await expect(run([0, 0], [1, 70], 64)).rejects.toThrow('indexerScores: offset 70 is out of range [0, 64)');
      await expect(run([0, 1], [1, 1], 64)).rejects.toThrow('indexerScores: index 7 is out of range [0, 3)');
      await expect(run([0, 0], [127, 1], 128)).resolves.toBeDefined();
    });

    /** Runs topK on the CPU and the device; returns both as arrays. */
    async function topKBoth(scores: Float32Array, T: number, S: number, k: number, lengths?: Int32Array) {
      const run = async (d: string) => {
        using st = tensor(scores, { shape: [T, S], device: d });
        using lt = lengths ? tensor(lengths, { device: d }) : undefined;
        using out = ops.topK(st, k, lt);
        expect(out.shape).toEqual([T, k]);
        return Array.from(await out.read<'i32'>());
      };
      return { cpu: await run('cpu'), got: await run(device) };
    }

    for (const [T, S, k, what] of [
      [3, 1000, 1, 'k = 1'],
      [2, 5000, 300, 'k = 300 of 5000'],
      [4, 257, 256, 'k = S - 1'],
      [2, 20000, 2048, 'DSA: k = 2048 of 20000'],
      [3, 100, 150, 'k > S: -1 padded'],
    ] as const)
      it(`topK ${what}, distinct scores with ±inf and NaN: the CPU's indices exactly (seed ${r.seed})`, async () => {
        // Distinct values (a permutation of integers, scaled), so no row has a tie anywhere.
        const scores = new Float32Array(T * S);
        for (let t = 0; t < T; ++t) {
          const p = shuffled(S, r.next);
          for (let i = 0; i < S; ++i) scores[t * S + i] = (p[i] - S / 2) * 0.37;
          scores[t * S + r.int(0, S)] = [Infinity, -Infinity, NaN][t % 3];
        }
        const lengths = Int32Array.from({ length: T }, (_, t) => (t === 0 ? S : r.int(0, S + 1)));
        for (const lens of [undefined, lengths]) {
          const { cpu, got } = await topKBoth(scores, T, S, k, lens);
          expect(got).toEqual(cpu);
          for (let t = 0; t < T; ++t) expect(got.slice(t * k, (t + 1) * k)).toEqual(topKRef(scores.subarray(t * S, (t + 1) * S), lens ? lens[t] : S, k));
        }
      });

    for (const [T, S, k] of [[3, 700, 64], [2, 3000, 2048], [2, 40, 40]] as const)
      it(`topK S=${S} k=${k}, most scores exactly ±0 (relu cut every head): the lowest indices among ties (seed ${r.seed})`, async () => {
        const scores = Float32Array.from({ length: T * S }, () => {
          const u = r.next();
          return u < 0.6 ? (r.next() < 0.5 ? 0 : -0) : u < 0.8 ? r.int(1, 20) * 0.25 : -r.int(1, 20) * 0.25; // repeated non-zero values too
        });
        const { cpu, got } = await topKBoth(scores, T, S, k);
        for (let t = 0; t < T; ++t) {
          const want = topKRef(scores.subarray(t * S, (t + 1) * S), S, k);
          expect(got.slice(t * k, (t + 1) * k)).toEqual(want);
          // Both choose k entries with the same scores (the CPU may choose other indices among ties).
          const vals = (ids: number[]) => ids.map((i) => scores[t * S + i] + 0).sort((a, b) => b - a);
          expect(vals(cpu.slice(t * k, (t + 1) * k))).toEqual(vals(want));
        }
      });

    it('topK checks lengths when it runs, and refuses k beyond the CUDA kernel', async () => {
      using st = tensor(new Float32Array(2 * 8), { shape: [2, 8], device });
      using lt = tensor(new Int32Array([3, 9]), { device });
      using out = ops.topK(st, 2, lt);
      await expect(out.read()).rejects.toThrow('topK: offset 9 is out of range [0, 9)');
      expect(() => ops.topK(st, 16385)).toThrow(/topK: k = 16385 is more than the CUDA kernel's 16384/);
    });
  });
}
