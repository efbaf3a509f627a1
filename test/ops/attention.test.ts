import { describe, expect, it } from 'vitest';

import { ops, synchronize, tensor } from '../../lib/index.js';
import { rng, roundTo } from '../helpers.js';
import { attendRef, expectClose, maxAbs, onSimdPath, pagedCache, prefillRef, randomIndices, shuffled, SIMD_PATHS, tolerance, visibleKeys } from './attention-helpers.js';

describe('mlaDecode on cpu', () => {
  const r = rng();
  const configs = [
    { name: 'T=1 H=1, one key', H: 1, C: 16, Dr: 4, lengths: [1], queries: [[0, 0]] },
    { name: 'blocks crossed, ragged batch', H: 3, C: 37, Dr: 9, lengths: [130, 64, 1], queries: [[0, 129], [1, 63], [2, 0], [0, 64], [0, 5]] },
    { name: 'H=20 (two lane groups)', H: 20, C: 64, Dr: 16, lengths: [200, 77], queries: [[1, 76], [0, 199], [0, 128], [1, 0]] },
    { name: 'H=70 (two head chunks)', H: 70, C: 24, Dr: 8, lengths: [100], queries: [[0, 99], [0, 31]] },
    { name: 'model widths C=512 Dr=64', H: 16, C: 512, Dr: 64, lengths: [150, 70], queries: [[0, 149], [1, 69], [0, 63]] },
  ];
  for (let i = 0; i < 2; ++i) {
    const lengths = Array.from({ length: r.int(1, 4) }, () => r.int(1, 200));
    const queries = Array.from({ length: r.int(1, 7) }, () => {
      const seq = r.int(0, lengths.length);
      return [seq, r.int(0, lengths[seq])];
    });
    const [H, C, Dr] = [r.int(1, 40), r.int(1, 80), r.int(0, 20)];
    configs.push({ name: `random shapes H=${H} C=${C} Dr=${Dr} lengths=${lengths} queries=${JSON.stringify(queries)}`, H, C, Dr, lengths, queries });
  }
  for (const dtype of ['f32', 'bf16'] as const) {
    for (const sparse of [false, true]) {
      for (const c of configs) {
        it(`${dtype} ${c.name}${sparse ? ', index lists' : ''}: float64 reference on every SIMD path (seed ${r.seed})`, async () => {
          const { H, C, Dr } = c;
          const T = c.queries.length, W = C + Dr;
          const cache = pagedCache(r, c.lengths, W, dtype, () => r.normal());
          const seqIdx = Int32Array.from(c.queries, (q) => q[0]);
          const qPos = Int32Array.from(c.queries, (q) => q[1]);
          const qL = r.floats(T * H * C).map((v) => roundTo(dtype, v));
          const qPe = r.floats(T * H * Dr).map((v) => roundTo(dtype, v));
          const k = 9;
          const idx = sparse ? randomIndices(r, qPos, k, cache.maxBlocks * 64) : undefined;
          const scale = 1.7 / Math.sqrt(W);
          const want = new Float64Array(T * H * C), flip = new Float64Array(T * H * C);
          for (let t = 0; t < T; ++t) {
            const vis = visibleKeys(qPos[t], idx?.subarray(t * k, (t + 1) * k));
            for (let h = 0; h < H; ++h) {
              const th = t * H + h;
              const score = (s: number) => {
                const row = cache.row(seqIdx[t], s) * W;
                let acc = 0;
                for (let i = 0; i < C; ++i) acc += qL[th * C + i] * cache.data[row + i];
                for (let i = 0; i < Dr; ++i) acc += qPe[th * Dr + i] * cache.data[row + C + i];
                return acc * scale;
              };
              want.set(attendRef(vis, score, (s, i) => cache.data[cache.row(seqIdx[t], s) * W + i], C, dtype, flip.subarray(th * C, (th + 1) * C)), th * C);
            }
          }
          let maxV = 0;
          c.lengths.forEach((n, seq) => {
            for (let s = 0; s < n; ++s) for (let i = 0; i < C; ++i) maxV = Math.max(maxV, Math.abs(cache.data[cache.row(seq, s) * W + i]));
          });
          using qLt = tensor(qL, { shape: [T, H, C], dtype });
          using qPet = tensor(qPe, { shape: [T, H, Dr], dtype });
          using cacheT = tensor(cache.data, { shape: [cache.numBlocks, 64, W], dtype });
          using tableT = tensor(cache.table, { shape: [c.lengths.length, cache.maxBlocks] });
          using seqT = tensor(seqIdx);
          using posT = tensor(qPos);
          using idxT = idx ? tensor(idx, { shape: [T, k] }) : undefined;
          for (const path of SIMD_PATHS) {
            await onSimdPath(path, async (used) => {
              using out = ops.mlaDecode(qLt, qPet, cacheT, tableT, seqT, posT, { scale, indices: idxT });
              expect(out.shape).toEqual([T, H, C]);
              expect(out.dtype).toBe(dtype);
              expectClose(await out.toFloat32Array(), want, tolerance(dtype, maxV, flip), { path: used });
            });
          }
        });
      }
    }
  }

  it('checks ids when it runs', async () => {
    const cache = pagedCache(r, [70], 6, 'f32', () => r.normal());
    using ql = tensor(r.floats(2 * 4), { shape: [2, 1, 4] });
    using qp = tensor(r.floats(2 * 2), { shape: [2, 1, 2] });
    using c = tensor(cache.data, { shape: [cache.numBlocks, 64, 6] });
    using table = tensor(cache.table, { shape: [1, cache.maxBlocks] });
    const run = async (seq: number[], pos: number[], list?: number[]) => {
      using s = tensor(new Int32Array(seq));
      using p = tensor(new Int32Array(pos));
      using i = list ? tensor(new Int32Array(list), { shape: [2, list.length / 2] }) : undefined;
      using out = ops.mlaDecode(ql, qp, c, table, s, p, { scale: 1, indices: i });
      return out.read();
    };
    const cap = cache.maxBlocks * 64;
    await expect(run([0, 1], [3, 3])).rejects.toThrow('mlaDecode: seqIdx[1] = 1 is out of range [0, 1)');
    await expect(run([0, 0], [3, cap])).rejects.toThrow(`mlaDecode: qPos[1] = ${cap} is out of range [0, ${cap})`);
    // Keys past the sequence's blocks reach a table entry that is not a block.
    await expect(run([0, 0], [3, 130])).rejects.toThrow(`mlaDecode: blockTable[0, 2] = ${1 << 30} is out of range [0, ${cache.numBlocks})`);
    await expect(run([0, 0], [3, 3], [1, -2, 0, 0])).rejects.toThrow(`mlaDecode: indices[0, 1] = -2 is out of range [-1, ${cap})`);
    // A listed key beyond qPos is not visible, so its (unused) table entry is not followed.
    await expect(run([0, 0], [3, 3], [1, 140, 0, -1])).resolves.toBeDefined();
  });

  it('handles empty inputs (no heads, no queries)', async () => {
    const cache = pagedCache(r, [10], 6, 'f32', () => r.normal());
    using c = tensor(cache.data, { shape: [cache.numBlocks, 64, 6] });
    using table = tensor(cache.table, { shape: [1, cache.maxBlocks] });
    for (const [T, H] of [[1, 0], [0, 3]]) {
      using ql = tensor(new Float32Array(0), { shape: [T, H, 4] });
      using qp = tensor(new Float32Array(0), { shape: [T, H, 2] });
      using s = tensor(new Int32Array(T));
      using p = tensor(new Int32Array(T).fill(5));
      using out = ops.mlaDecode(ql, qp, c, table, s, p, { scale: 1 });
      expect(out.shape).toEqual([T, H, 4]);
      await synchronize('cpu');  // (read() of an empty tensor is a runtime limitation of its own)
    }
  });

  it('gives zeros to a query that sees no key', async () => {
    const cache = pagedCache(r, [10], 6, 'f32', () => r.normal());
    using ql = tensor(r.floats(4), { shape: [1, 1, 4] });
    using qp = tensor(r.floats(2), { shape: [1, 1, 2] });
    using c = tensor(cache.data, { shape: [cache.numBlocks, 64, 6] });
    using table = tensor(cache.table, { shape: [1, cache.maxBlocks] });
    using s = tensor(new Int32Array([0]));
    using p = tensor(new Int32Array([4]));
    using i = tensor(new Int32Array([-1, 7, -1]), { shape: [1, 3] });
    using out = ops.mlaDecode(ql, qp, c, table, s, p, { scale: 1, indices: i });
    expect(Array.from(await out.read<'f32'>())).toEqual([0, 0, 0, 0]);
  });

  it('rejects bad arguments with the op, argument, expected and received', () => {
    const f = (shape: number[], dtype: 'f32' | 'bf16' = 'f32') => tensor(new Float32Array(shape.reduce((a, b) => a * b, 1)), { shape, dtype });
    const i32 = (shape: number[]) => tensor(new Int32Array(shape.reduce((a, b) => a * b, 1)), { shape });
    using ql = f([2, 3, 8]);
    using qp = f([2, 3, 4]);
    using cache = f([2, 64, 12]);
    using table = i32([1, 2]);
    using seq = i32([2]);
    using pos = i32([2]);
    using qpBad = f([2, 2, 4]);
    using qpB = f([2, 3, 4], 'bf16');
    using cache32 = f([2, 32, 12]);
    using cacheW = f([2, 64, 13]);
    using pos3 = i32([3]);
    using tableF = f([1, 2]);
    using idx = i32([3, 4]);
    expect(() => ops.mlaDecode(ql, qpBad, cache, table, seq, pos, { scale: 1 })).toThrow('mlaDecode: qPe must have size 3 in dimension 1 but received shape [2, 2, 4]');
    expect(() => ops.mlaDecode(ql, qpB, cache, table, seq, pos, { scale: 1 })).toThrow('mlaDecode: qPe must have the dtype of qLatent (f32) but received bf16');
    expect(() => ops.mlaDecode(ql, qp, cache32, table, seq, pos, { scale: 1 })).toThrow('mlaDecode: cache must have size 64 in dimension 1 but received shape [2, 32, 12]');
    expect(() => ops.mlaDecode(ql, qp, cacheW, table, seq, pos, { scale: 1 })).toThrow('mlaDecode: cache must have size 12 in dimension 2 but received shape [2, 64, 13]');
    expect(() => ops.mlaDecode(ql, qp, cache, tableF, seq, pos, { scale: 1 })).toThrow('mlaDecode: blockTable must have dtype i32 but received f32');
    expect(() => ops.mlaDecode(ql, qp, cache, table, seq, pos3, { scale: 1 })).toThrow('mlaDecode: qPos must have shape [2] but received [3]');
    expect(() => ops.mlaDecode(ql, qp, cache, table, seq, pos, { scale: '1' as unknown as number })).toThrow("mlaDecode: expected a number for scale but received '1' of type string");
    expect(() => ops.mlaDecode(ql, qp, cache, table, seq, pos, { scale: 1, indices: idx })).toThrow('mlaDecode: indices must have size 2 in dimension 0 but received shape [3, 4]');
    // @ts-expect-error options are required
    expect(() => ops.mlaDecode(ql, qp, cache, table, seq, pos)).toThrow('mlaDecode: expected an object { scale, indices? } for options but received undefined of type undefined');
  });
});

describe('mlaPrefill on cpu', () => {
  const r = rng();
  const configs = [
    { name: 'T=1 H=1 S=1', T: 1, H: 1, S: 1, Dn: 8, Dr: 4, Dv: 8, qPos: (t: number) => t },
    { name: 'causal, odd dims', T: 17, H: 2, S: 17, Dn: 13, Dr: 5, Dv: 11, qPos: (t: number) => t },
    { name: 'chunked prefill, T=70 (two query blocks)', T: 70, H: 3, S: 90, Dn: 16, Dr: 8, Dv: 12, qPos: (t: number) => 20 + t },
    { name: 'model widths Dn=128 Dr=64 Dv=128', T: 20, H: 2, S: 40, Dn: 128, Dr: 64, Dv: 128, qPos: (t: number) => 20 + t },
    { name: 'shuffled positions', T: 9, H: 5, S: 30, Dn: 6, Dr: 2, Dv: 7, qPos: () => -1 },
  ];
  for (let i = 0; i < 2; ++i) {
    const [T, H, S, Dn, Dr, Dv] = [r.int(1, 80), r.int(1, 5), r.int(1, 120), r.int(0, 40), r.int(0, 20), r.int(1, 40)];
    configs.push({ name: `random shapes T=${T} H=${H} S=${S} Dn=${Dn} Dr=${Dr} Dv=${Dv}, random positions`, T, H, S, Dn, Dr, Dv, qPos: () => -1 });
  }
  for (const dtype of ['f32', 'bf16'] as const) {
    for (const sparse of [false, true]) {
      for (const c of configs) {
        it(`${dtype} ${c.name}${sparse ? ', index lists' : ''}: float64 reference on every SIMD path (seed ${r.seed})`, async () => {
          const { T, H, S, Dn, Dr, Dv } = c;
          const qPos = Int32Array.from({ length: T }, (_, t) => (c.qPos(t) < 0 ? r.int(0, S) : c.qPos(t)));
          const q = r.floats(T * H * (Dn + Dr)).map((v) => roundTo(dtype, v));
          const kv = r.floats(S * H * (Dn + Dv)).map((v) => roundTo(dtype, v));
          const kPe = r.floats(S * Dr).map((v) => roundTo(dtype, v));
          const k = 6;
          const idx = sparse ? randomIndices(r, qPos, k, S) : undefined;
          const scale = 1.5 / Math.sqrt(Math.max(1, Dn + Dr)); // Dn = Dr = 0 is a legal (degenerate) shape
          const { want, flip, maxV } = prefillRef({ T, H, S, Dn, Dr, Dv, q, kv, kPe, qPos, idx, k }, dtype, scale);
          using qT = tensor(q, { shape: [T, H, Dn + Dr], dtype });
          using kvT = tensor(kv, { shape: [S, H, Dn + Dv], dtype });
          using kPeT = tensor(kPe, { shape: [S, Dr], dtype });
          using posT = tensor(qPos);
          using idxT = idx ? tensor(idx, { shape: [T, k] }) : undefined;
          for (const path of SIMD_PATHS) {
            await onSimdPath(path, async (used) => {
              using out = ops.mlaPrefill(qT, kvT, kPeT, posT, { scale, vHeadDim: Dv, indices: idxT });
              expect(out.shape).toEqual([T, H, Dv]);
              expect(out.dtype).toBe(dtype);
              expectClose(await out.toFloat32Array(), want, tolerance(dtype, maxV, flip), { path: used });
            });
          }
        });
      }
    }
  }

  it('checks qPos and indices when it runs', async () => {
    using q = tensor(r.floats(2 * 6), { shape: [2, 1, 6] });
    using kv = tensor(r.floats(3 * 8), { shape: [3, 1, 8] });
    using kPe = tensor(r.floats(3 * 2), { shape: [3, 2] });
    const run = async (pos: number[], list?: number[]) => {
      using p = tensor(new Int32Array(pos));
      using i = list ? tensor(new Int32Array(list), { shape: [2, list.length / 2] }) : undefined;
      using out = ops.mlaPrefill(q, kv, kPe, p, { scale: 1, vHeadDim: 4, indices: i });
      return out.read();
    };
    await expect(run([0, 3])).rejects.toThrow('mlaPrefill: qPos[1] = 3 is out of range [0, 3)');
    await expect(run([0, -1])).rejects.toThrow('mlaPrefill: qPos[1] = -1 is out of range [0, 3)');
    await expect(run([0, 1], [0, 1, 3, -1])).rejects.toThrow('mlaPrefill: indices[1, 0] = 3 is out of range [-1, 3)');
  });

  it('rejects bad arguments with the op, argument, expected and received', () => {
    const f = (shape: number[], dtype: 'f32' | 'bf16' = 'f32') => tensor(new Float32Array(shape.reduce((a, b) => a * b, 1)), { shape, dtype });
    using q = f([2, 3, 10]);
    using kv = f([5, 3, 14]);
    using kPe = f([5, 2]);
    using pos = tensor(new Int32Array(2));
    using kvB = f([5, 3, 14], 'bf16');
    using kPeWide = f([5, 11]);
    using pos64 = tensor(new BigInt64Array(2), { dtype: 'i64' });
    expect(() => ops.mlaPrefill(q, kv, kPe, pos, { scale: 1, vHeadDim: 5 })).toThrow('mlaPrefill: kv must have shape [5, 3, 13] but received [5, 3, 14]');
    expect(() => ops.mlaPrefill(q, kvB, kPe, pos, { scale: 1, vHeadDim: 6 })).toThrow('mlaPrefill: kv must have the dtype of q (f32) but received bf16');
    expect(() => ops.mlaPrefill(q, kv, kPeWide, pos, { scale: 1, vHeadDim: 6 })).toThrow(
      "mlaPrefill: kPe's last dimension (Dr = 11) must be at most q's last dimension (Dn + Dr = 10) but received shapes [5, 11] and [2, 3, 10]",
    );
    expect(() => ops.mlaPrefill(q, kv, kPe, pos64, { scale: 1, vHeadDim: 6 })).toThrow('mlaPrefill: qPos must have dtype i32 but received i64');
    expect(() => ops.mlaPrefill(q, kv, kPe, pos, { scale: 1, vHeadDim: 0 })).toThrow('mlaPrefill: expected an integer between 1 and 1048576 for vHeadDim but received 0');
  });
});

describe('the two MLA forms agree', () => {
  const r = rng();
  for (const dtype of ['f32', 'bf16'] as const) {
    for (const sparse of [false, true]) {
      it(`${dtype}${sparse ? ' with index lists' : ''}: mlaPrefill = W_UV · mlaDecode on absorbed inputs (seed ${r.seed})`, async () => {
        const [H, C, Dr, Dn, Dv, S, T] = [4, 32, 8, 16, 12, 150, 6];
        // Random up-projections (float64) and one sequence's latents and RoPE keys.
        const wuk = Float64Array.from({ length: H * Dn * C }, () => r.normal() / Math.sqrt(C));
        const wuv = Float64Array.from({ length: H * Dv * C }, () => r.normal() / Math.sqrt(C));
        const lat = r.floats(S * C).map((v) => roundTo(dtype, v));
        const kPe = r.floats(S * Dr).map((v) => roundTo(dtype, v));
        const qNope = r.floats(T * H * Dn), qPe = r.floats(T * H * Dr).map((v) => roundTo(dtype, v));
        const qPos = Int32Array.from({ length: T }, (_, t) => (t === 0 ? S - 1 : r.int(0, S)));
        // Non-absorbed inputs: k_nope = W_UK c, v = W_UV c per head.
        const kv = new Float32Array(S * H * (Dn + Dv));
        for (let s = 0; s < S; ++s)
          for (let h = 0; h < H; ++h) {
            for (let i = 0; i < Dn; ++i) {
              let acc = 0;
              for (let j = 0; j < C; ++j) acc += wuk[(h * Dn + i) * C + j] * lat[s * C + j];
              kv[(s * H + h) * (Dn + Dv) + i] = acc;
            }
            for (let i = 0; i < Dv; ++i) {
              let acc = 0;
              for (let j = 0; j < C; ++j) acc += wuv[(h * Dv + i) * C + j] * lat[s * C + j];
              kv[(s * H + h) * (Dn + Dv) + Dn + i] = acc;
            }
          }
        const q = new Float32Array(T * H * (Dn + Dr));
        const qLat = new Float32Array(T * H * C);
        for (let t = 0; t < T; ++t)
          for (let h = 0; h < H; ++h) {
            const th = t * H + h;
            for (let i = 0; i < Dn; ++i) q[th * (Dn + Dr) + i] = qNope[th * Dn + i];
            for (let i = 0; i < Dr; ++i) q[th * (Dn + Dr) + Dn + i] = qPe[th * Dr + i];
            // Absorbed query: W_UKᵀ q_nope.
            for (let j = 0; j < C; ++j) {
              let acc = 0;
              for (let i = 0; i < Dn; ++i) acc += wuk[(h * Dn + i) * C + j] * qNope[th * Dn + i];
              qLat[th * C + j] = acc;
            }
          }
        const k = 40;
        const idx = sparse ? randomIndices(r, qPos, k, S) : undefined;
        const scale = 1 / Math.sqrt(Math.max(1, Dn + Dr));
        using qT = tensor(q, { shape: [T, H, Dn + Dr], dtype });
        using kvT = tensor(kv, { shape: [S, H, Dn + Dv], dtype });
        using kPeT = tensor(kPe, { shape: [S, Dr], dtype });
        using posT = tensor(qPos);
        using idxT = idx ? tensor(idx, { shape: [T, k] }) : undefined;
        using pre = ops.mlaPrefill(qT, kvT, kPeT, posT, { scale, vHeadDim: Dv, indices: idxT });
        // The latent cache, filled through pagedWrite into shuffled blocks.
        const blocks = Math.ceil(S / 64), numBlocks = blocks + 3;
        const perm = shuffled(numBlocks, r.next);
        const table = Int32Array.from({ length: blocks }, (_, b) => perm[b]);
        const rows = new Float32Array(S * (C + Dr));
        for (let s = 0; s < S; ++s) {
          rows.set(lat.subarray(s * C, (s + 1) * C), s * (C + Dr));
          rows.set(kPe.subarray(s * Dr, (s + 1) * Dr), s * (C + Dr) + C);
        }
        using cache = tensor(new Float32Array(numBlocks * 64 * (C + Dr)), { shape: [numBlocks, 64, C + Dr], dtype });
        using rowsT = tensor(rows, { shape: [S, C + Dr], dtype });
        using slots = tensor(Int32Array.from({ length: S }, (_, s) => table[s >> 6] * 64 + (s & 63)));
        ops.pagedWrite(cache, rowsT, slots);
        using qLatT = tensor(qLat, { shape: [T, H, C], dtype });
        using qPeT = tensor(qPe, { shape: [T, H, Dr], dtype });
        using tableT = tensor(table, { shape: [1, blocks] });
        using seqT = tensor(new Int32Array(T));
        using dec = ops.mlaDecode(qLatT, qPeT, cache, tableT, seqT, posT, { scale, indices: idxT });
        const [gotPre, gotDec] = await Promise.all([pre.toFloat32Array(), dec.toFloat32Array()]);
        const fromDec = new Float64Array(T * H * Dv);
        for (let th = 0; th < T * H; ++th) {
          const h = th % H;
          for (let i = 0; i < Dv; ++i) {
            let acc = 0;
            for (let j = 0; j < C; ++j) acc += wuv[(h * Dv + i) * C + j] * gotDec[th * C + j];
            fromDec[th * Dv + i] = acc;
          }
        }
        // f32: summation order only. bf16: the forms round different tensors (k_nope, v and the
        // absorbed query vs the latent) to bf16, so they agree to a few bf16 steps.
        const tol = (dtype === 'f32' ? 1e-4 : 2 ** -4) * maxAbs(fromDec);
        expectClose(gotPre, fromDec, tol, { dtype });
      });
    }
  }
});


describe("scoreDtype 'bf16': the bf16 reference's score rounding", () => {
  // Small integer inputs make every dot product exact in f32, so the bf16 rounding points are
  // deterministic; dots reach the thousands, where bf16 (8 significant bits) drops bits.
  const r = rng();
  const ints = (n: number, m: number) => Float32Array.from({ length: n }, () => r.int(-m, m + 1));
  const rne = (x: number) => roundTo('bf16', x);

  it(`mlaPrefill: s = bf16(bf16(q·k) · scale), on every SIMD path (seed ${r.seed})`, async () => {
    const [T, H, S, Dn, Dr, Dv] = [11, 3, 14, 48, 16, 8];
    const qPos = Int32Array.from({ length: T }, (_, t) => t + 3);
    const q = ints(T * H * (Dn + Dr), 8), kv = ints(S * H * (Dn + Dv), 8), kPe = ints(S * Dr, 8);
    const scale = 2 ** -6;
    const refs = { f32: new Float64Array(T * H * Dv), bf16: new Float64Array(T * H * Dv) };
    const flip = new Float64Array(T * H * Dv);
    for (const mode of ['f32', 'bf16'] as const)
      for (let t = 0; t < T; ++t)
        for (let h = 0; h < H; ++h) {
          const qo = (t * H + h) * (Dn + Dr);
          const score = (s: number) => {
            let acc = 0;
            for (let i = 0; i < Dn; ++i) acc += q[qo + i] * kv[(s * H + h) * (Dn + Dv) + i];
            for (let i = 0; i < Dr; ++i) acc += q[qo + Dn + i] * kPe[s * Dr + i];
            return mode === 'bf16' ? rne(rne(acc) * scale) : acc * scale;
          };
          refs[mode].set(attendRef(visibleKeys(qPos[t]), score, (s, i) => kv[(s * H + h) * (Dn + Dv) + Dn + i], Dv, 'bf16', mode === 'bf16' ? flip.subarray((t * H + h) * Dv, (t * H + h + 1) * Dv) : undefined), (t * H + h) * Dv);
        }
    const tol = tolerance('bf16', 8, flip);
    // The rounding matters for these inputs: the two references differ past the tolerance somewhere.
    expect(refs.bf16.some((v, i) => Math.abs(v - refs.f32[i]) > tol(v, i))).toBe(true);
    using qT = tensor(q, { shape: [T, H, Dn + Dr], dtype: 'bf16' });
    using kvT = tensor(kv, { shape: [S, H, Dn + Dv], dtype: 'bf16' });
    using kPeT = tensor(kPe, { shape: [S, Dr], dtype: 'bf16' });
    using posT = tensor(qPos);
    for (const path of SIMD_PATHS)
      await onSimdPath(path, async (used) => {
        using out = ops.mlaPrefill(qT, kvT, kPeT, posT, { scale, vHeadDim: Dv, scoreDtype: 'bf16' });
        expectClose(await out.toFloat32Array(), refs.bf16, tol, { path: used });
      });
  });

  it(`mlaDecode: s = bf16(bf16(bf16(qLatent·c) + bf16(qPe·pe)) · scale), on every SIMD path (seed ${r.seed})`, async () => {
    const [H, C, Dr] = [5, 64, 16];
    const lengths = [90, 33];
    const queries = [[0, 89], [1, 32], [0, 40]];
    const T = queries.length, W = C + Dr;
    const cache = pagedCache(r, lengths, W, 'bf16', () => r.int(-8, 9));
    const qL = ints(T * H * C, 8), qPe = ints(T * H * Dr, 8);
    const scale = 2 ** -7;
    const refs = { f32: new Float64Array(T * H * C), bf16: new Float64Array(T * H * C) };
    const flip = new Float64Array(T * H * C);
    for (const mode of ['f32', 'bf16'] as const)
      queries.forEach(([seq, pos], t) => {
        for (let h = 0; h < H; ++h) {
          const th = t * H + h;
          const score = (s: number) => {
            const row = cache.row(seq, s) * W;
            let a = 0, b = 0;
            for (let i = 0; i < C; ++i) a += qL[th * C + i] * cache.data[row + i];
            for (let i = 0; i < Dr; ++i) b += qPe[th * Dr + i] * cache.data[row + C + i];
            return mode === 'bf16' ? rne(rne(rne(a) + rne(b)) * scale) : (a + b) * scale;
          };
          refs[mode].set(attendRef(visibleKeys(pos), score, (s, i) => cache.data[cache.row(seq, s) * W + i], C, 'bf16', mode === 'bf16' ? flip.subarray(th * C, (th + 1) * C) : undefined), th * C);
        }
      });
    const tol = tolerance('bf16', 8, flip);
    expect(refs.bf16.some((v, i) => Math.abs(v - refs.f32[i]) > tol(v, i))).toBe(true);
    using qLt = tensor(qL, { shape: [T, H, C], dtype: 'bf16' });
    using qPet = tensor(qPe, { shape: [T, H, Dr], dtype: 'bf16' });
    using cacheT = tensor(cache.data, { shape: [cache.numBlocks, 64, W], dtype: 'bf16' });
    using tableT = tensor(cache.table, { shape: [lengths.length, cache.maxBlocks] });
    using seqT = tensor(Int32Array.from(queries, (q) => q[0]));
    using posT = tensor(Int32Array.from(queries, (q) => q[1]));
    for (const path of SIMD_PATHS)
      await onSimdPath(path, async (used) => {
        using out = ops.mlaDecode(qLt, qPet, cacheT, tableT, seqT, posT, { scale, scoreDtype: 'bf16' });
        expectClose(await out.toFloat32Array(), refs.bf16, tol, { path: used });
      });
  });

  it('needs bf16 activations and a known dtype', () => {
    using q = tensor(new Float32Array(4), { shape: [1, 1, 4] });
    using kv = tensor(new Float32Array(4), { shape: [1, 1, 4] });
    using kPe = tensor(new Float32Array(2), { shape: [1, 2] });
    using pos = tensor(new Int32Array(1));
    expect(() => ops.mlaPrefill(q, kv, kPe, pos, { scale: 1, vHeadDim: 2, scoreDtype: 'bf16' })).toThrow("mlaPrefill: scoreDtype 'bf16' needs bf16 activations but q is f32");
    expect(() => ops.mlaPrefill(q, kv, kPe, pos, { scale: 1, vHeadDim: 2, scoreDtype: 'f16' as never })).toThrow("mlaPrefill: expected 'f32' or 'bf16' for scoreDtype but received 'f16'");
  });
});
