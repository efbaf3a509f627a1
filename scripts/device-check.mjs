// The device check (plain Node, no vitest): runs every op that has a CUDA kernel in the loaded build
// (the addon's opDevices list) on cuda:0 against the CPU backend, on fresh random inputs, and
// prints "N passed, N failed". An op with a CUDA kernel but no case here counts as a failure, so a
// new kernel cannot go unchecked. Also checks the runtime: reads in stream order, uploads and
// zeros, the device error word. `--small` runs one small case per op (for compute-sanitizer).
//
//   DEEPSEEK_NATIVE_BUILD=cuda node scripts/device-check.mjs [--small] [--seed N]
//
// DEVICE_CHECK_DEVICE=cpu runs the whole check with the CPU in the GPU's place (every op that has
// a case), so the script itself is tested on machines without a GPU.
import { devices, opDevices, ops, runtimeInfo, tensor, zeros } from '../dist/lib/index.js';
import { native } from '../dist/lib/runtime/native.js';

const small = process.argv.includes('--small');
const seedArg = process.argv.indexOf('--seed');
let seed = seedArg > 0 ? Number(process.argv[seedArg + 1]) : (Date.now() ^ (Math.random() * 0x7fffffff)) >>> 0;
const startSeed = seed;
function random() {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const normal = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
const floats = (n, scale = 1) => Float32Array.from({ length: n }, () => normal() * scale);

/** Largest |a - b| / (atol + rtol·|b|) over the arrays: <= 1 passes. */
function worst(a, b, atol, rtol) {
  let w = 0, at = -1;
  if (a.length !== b.length) return { ratio: Infinity, at: -1 };
  for (let i = 0; i < a.length; ++i) {
    const r = Number.isNaN(a[i]) !== Number.isNaN(b[i]) ? Infinity : Number.isNaN(a[i]) ? 0 : Math.abs(a[i] - b[i]) / (atol + rtol * Math.abs(b[i]));
    if (r > w) { w = r; at = i; }
  }
  return { ratio: w, at };
}

const ULP = { f32: 2 ** -23, bf16: 2 ** -8, f16: 2 ** -11, f8e4m3: 2 ** -4 };
const GPU = process.env.DEVICE_CHECK_DEVICE ?? 'cuda:0';

/** op -> cases; each case returns { name, run(device) -> Promise<Float32Array[]>, atol, rtol }. */
const CASES = {
  cast() {
    const out = [];
    const shapes = small ? [[3, 37]] : [[1, 1], [3, 37], [64, 7168], [1000, 129]];
    for (const [rows, cols] of shapes)
      for (const from of ['f32', 'bf16', 'f16', 'f8e4m3'])
        for (const to of ['f32', 'bf16', 'f16', 'f8e4m3']) {
          if (small && from !== 'f32') continue;
          const data = floats(rows * cols, 50);
          out.push({
            name: `cast ${from}->${to} [${rows}, ${cols}]`,
            // Both sides start from the same f32 data rounded on the CPU, so only the cast differs.
            atol: 0, rtol: 0,
            async run(device) {
              const src = tensor(data, { shape: [rows, cols], dtype: from });
              const bytes = await src.read();
              src.dispose();
              const x = tensor(bytes, { shape: [rows, cols], dtype: from, device });
              const y = ops.cast(x, to);
              const r = [await y.toFloat32Array()];
              x.dispose(); y.dispose();
              return r;
            },
          });
        }
    return out;
  },
  rmsNorm() {
    const out = [];
    const shapes = small ? [[3, 130]] : [[1, 1], [3, 33], [5, 130], [17, 513], [2, 7168], [64, 7168], [7, 1536]];
    for (const [rows, dim] of shapes)
      for (const dtype of ['f32', 'bf16', 'f16'])
        for (const fused of [false, true]) {
          if (small && dtype !== 'bf16') continue;
          const x = floats(rows * dim, 3), res = floats(rows * dim, 2), w = floats(dim).map((v) => v + 1);
          out.push({
            name: `rmsNorm${fused ? ' + residual' : ''} ${dtype} [${rows}, ${dim}]`,
            // Different summation orders: a few ulps of the output dtype (f32: a few 1e-6).
            atol: dtype === 'f32' ? 1e-5 : 4 * ULP[dtype], rtol: dtype === 'f32' ? 1e-5 : 4 * ULP[dtype],
            async run(device) {
              const xt = tensor(x, { shape: [rows, dim], dtype, device });
              const rt = tensor(res, { shape: [rows, dim], dtype, device });
              const wt = tensor(w, { dtype: 'bf16', device });
              const got = [];
              if (fused) {
                const r = ops.addRmsNorm(xt, rt, wt, 1e-6);
                got.push(await r.out.toFloat32Array(), await r.residual.toFloat32Array());
                r.out.dispose(); r.residual.dispose();
              } else {
                const y = ops.rmsNorm(xt, wt, 1e-6);
                got.push(await y.toFloat32Array());
                y.dispose();
              }
              xt.dispose(); rt.dispose(); wt.dispose();
              return got;
            },
          });
        }
    // The fused actQuant (rmsNormQuant): on each device, the bytes of rmsNorm then actQuant on that
    // device; the case returns how many bytes differ (0 on both).
    for (const [rows, dim] of small ? [[3, 256]] : [[1, 128], [64, 7168], [7, 1536]])
      for (const scaleFmt of [null, 'ue8m0']) {
        const x = floats(rows * dim, 3), w = floats(dim).map((v) => v + 1);
        out.push({
          name: `rmsNormQuant bf16 [${rows}, ${dim}] scaleFmt ${scaleFmt} = rmsNorm then actQuant`,
          atol: 0, rtol: 0,
          async run(device) {
            const xt = tensor(x, { shape: [rows, dim], dtype: 'bf16', device });
            const wt = tensor(w, { dtype: 'bf16', device });
            const f = ops.rmsNormQuant(xt, wt, 1e-6, { scaleFmt });
            const y = ops.rmsNorm(xt, wt, 1e-6);
            const q = ops.actQuant(y, { scaleFmt });
            const differ = [];
            for (const [a, b] of [[f.out, y], [f.codes, q.codes], [f.scales, q.scales]]) {
              const [u, v] = [await a.read(), await b.read()];
              const [bu, bv] = [new Uint8Array(u.buffer, u.byteOffset, u.byteLength), new Uint8Array(v.buffer, v.byteOffset, v.byteLength)];
              differ.push(bu.length === bv.length ? bu.reduce((n, c, i) => n + (c !== bv[i] ? 1 : 0), 0) : -1);
            }
            for (const t of [xt, wt, f.out, f.codes, f.scales, y, q.codes, q.scales]) t.dispose();
            return [Float32Array.from(differ)];
          },
        });
      }
    return out;
  },
};

/** A case whose outputs are read back as f32 arrays; `make(device)` returns the tensors to read. */
function caseOf(name, atol, rtol, make) {
  return {
    name, atol, rtol,
    async run(device) {
      const keep = [];
      const t = (data, opts = {}) => {
        const x = tensor(data, { ...opts, device });
        keep.push(x);
        return x;
      };
      const outs = make(t);
      const got = [];
      for (const o of outs) got.push(await o.toFloat32Array());
      for (const x of [...keep, ...outs]) x.dispose();
      return got;
    },
  };
}
/** Random finite E4M3 codes. */
const codes = (n) => Uint8Array.from({ length: n }, () => {
  const c = Math.floor(random() * 256);
  return (c & 0x7f) === 0x7f ? c - 1 : c;
});
const ints = (n, hi) => Int32Array.from({ length: n }, () => Math.floor(random() * hi));

Object.assign(CASES, {
  // Exact ops: routing, dispatch, gather, swiglu (the CPU's exp), combine, embedding, actQuant.
  moeRoute: () => (small ? [[4, 256]] : [[1, 16], [37, 64], [512, 256]]).map(([T, E]) => {
    const logits = floats(T * E, 2), bias = floats(E, 0.1);
    return caseOf(`moeRoute T ${T} E ${E}`, 0, 0, (t) => {
      const r = ops.moeRoute(t(logits, { shape: [T, E] }), t(bias), { topk: 8 <= E / 2 ? 8 : 2, nGroups: 8, topkGroups: 4, scoreFunc: 'sigmoid', routeScale: 2.5, normalize: true });
      return [r.ids, r.weights];
    });
  }),
  moeDispatch: () => (small ? [[16, 8, 64]] : [[1, 1, 1], [300, 8, 256], [4096, 8, 256]]).map(([T, k, E]) => {
    const ids = ints(T * k, E);
    return caseOf(`moeDispatch T ${T} k ${k} E ${E}`, 0, 0, (t) => Object.values(ops.moeDispatch(t(ids, { shape: [T, k] }), E)));
  }),
  gatherRows: () => (small ? [[16, 100]] : [[1, 1], [300, 7168], [2048, 129]]).map(([R, D]) => {
    const x = floats(R * D), idx = ints(R, R);
    return caseOf(`gatherRows [${R}, ${D}] bf16`, 0, 0, (t) => [ops.gatherRows(t(x, { shape: [R, D], dtype: 'bf16' }), t(idx))]);
  }),
  swiglu: () => (small ? [[4, 256]] : [[1, 1], [64, 2048], [300, 4096]]).map(([R, I]) => {
    const x = floats(R * 2 * I, 4);
    return caseOf(`swiglu [${R}, ${2 * I}] bf16`, 0, 0, (t) => [ops.swiglu(t(x, { shape: [R, 2 * I], dtype: 'bf16' }))]);
  }).concat((small ? [[4, 256]] : [[1, 128], [64, 2048]]).map(([R, I]) => {
    // The fused actQuant: swiglu is the CPU's bits on the device, so its codes and scales are too.
    const x = floats(R * 2 * I, 4);
    return caseOf(`swigluQuant [${R}, ${2 * I}] bf16 ue8m0`, 0, 0, (t) => {
      const r = ops.swigluQuant(t(x, { shape: [R, 2 * I], dtype: 'bf16' }), { scaleFmt: 'ue8m0' });
      return [r.out, r.codes, r.scales];
    });
  })),
  moeCombine: () => (small ? [[4, 8, 64]] : [[1, 1, 1], [64, 8, 7168], [512, 8, 2048]]).map(([T, k, D]) => {
    const eo = floats(T * k * D), ros = Int32Array.from({ length: T * k }, (_, i) => i), w = floats(T * k), ids = ints(T * k, 256), sh = floats(T * D);
    return caseOf(`moeCombine T ${T} k ${k} D ${D} bf16`, 0, 0, (t) =>
      [ops.moeCombine(t(eo, { shape: [T * k, D], dtype: 'bf16' }), t(ros), t(w, { shape: [T, k] }), t(ids, { shape: [T, k] }), t(sh, { shape: [T, D], dtype: 'bf16' }), 'bf16')]);
  }),
  embedding: () => (small ? [[100, 64, 8]] : [[1, 1, 1], [8192, 7168, 64]]).map(([V, D, T]) => {
    const table = floats(V * D), ids = ints(T, V);
    return caseOf(`embedding [${V}, ${D}] x ${T}`, 0, 0, (t) => [ops.embedding(t(table, { shape: [V, D], dtype: 'bf16' }), t(ids))]);
  }),
  actQuant: () => (small ? [[4, 512]] : [[1, 128], [64, 7168], [4096, 2048]]).map(([M, K]) => {
    const x = floats(M * K, 3);
    return caseOf(`actQuant [${M}, ${K}] bf16 ue8m0`, 0, 0, (t) => Object.values(ops.actQuant(t(x, { shape: [M, K], dtype: 'bf16' }), { scaleFmt: 'ue8m0' })));
  }),
  fp8Dequant: () => (small ? [[128, 256]] : [[1, 1], [2112, 7168]]).map(([N, K]) => {
    const w = codes(N * K), s = floats(Math.ceil(N / 128) * Math.ceil(K / 128)).map((v) => Math.abs(v) + 0.01);
    return caseOf(`fp8Dequant [${N}, ${K}] -> bf16`, 0, 0, (t) => [ops.fp8Dequant(t(w, { shape: [N, K], dtype: 'f8e4m3' }), t(s, { shape: [Math.ceil(N / 128), Math.ceil(K / 128)] }), 'bf16')]);
  }),
  // Summation order differs (tensor cores / fmaf chains): f32 error on the products' scale, one bf16 ulp.
  // fp8Gemm: M <= 64 runs the swapAB decode kernel (K split over blocks when its column tiles are few:
  // 2112 x 7168 at M 1 in 14 splits), larger M the Hopper one (TMA + wgmma; N 2112 cuts a tile). The
  // decode kernel runs twice: the second output is 0 where the bits match the first and 1e6 where
  // not (the split-K sum is in a fixed order: deterministic), on the CPU always 0.
  fp8Gemm: () => (small ? [[8, 256, 512], [130, 200, 256]] : [[1, 2112, 7168], [8, 24576, 1536], [17, 7168, 2048], [64, 4096, 7168], [1000, 4096, 7168], [513, 2112, 1536]]).map(([M, N, K]) => {
    const a = codes(M * K), sa = floats(M * K / 128).map(() => 2 ** -8), w = codes(N * K), sw = floats(Math.ceil(N / 128) * K / 128).map(() => 2 ** -8);
    const path = native().ops.fp8GemmPath(M, N, K), splits = native().ops.fp8GemmSplits(M, N, K);
    return caseOf(`fp8Gemm [${M}, ${K}] x [${N}, ${K}]ᵀ -> bf16 (${path}${splits > 1 ? `, ${splits} splits` : ''})`, 2 ** -10 * Math.sqrt(K), 2 ** -7, (t) => {
      const args = [t(a, { shape: [M, K], dtype: 'f8e4m3' }), t(sa, { shape: [M, K / 128] }), t(w, { shape: [N, K], dtype: 'f8e4m3' }), t(sw, { shape: [Math.ceil(N / 128), K / 128] })];
      const y = ops.fp8Gemm(...args, 'bf16', { exactBlockSums: true });
      if (path !== 'swapAB') return [y];
      const again = ops.fp8Gemm(...args, 'bf16', { exactBlockSums: true });
      return [y, {
        async toFloat32Array() {
          const [u, v] = [await y.read(), await again.read()];
          return Float32Array.from(u, (bits, i) => (bits === v[i] ? 0 : 1e6));
        },
        dispose: () => again.dispose(),
      }];
    });
  }),
  groupedFp8Gemm: () => (small ? [[4, 16, 128, 256]] : [[8, 64, 4096, 7168], [32, 2048, 2048, 2048]]).map(([E, R, N, K]) => {
    const offs = Int32Array.from({ length: E + 1 }, (_, e) => Math.round((e / E) ** 2 * R));  // uneven, some empty
    const a = codes(R * K), sa = new Float32Array(R * K / 128).fill(2 ** -8), w = codes(E * N * K), sw = new Float32Array(E * Math.ceil(N / 128) * K / 128).fill(2 ** -8);
    return caseOf(`groupedFp8Gemm E ${E} R ${R} N ${N} K ${K}`, 2 ** -10 * Math.sqrt(K), 2 ** -7, (t) =>
      [ops.groupedFp8Gemm(t(a, { shape: [R, K], dtype: 'f8e4m3' }), t(sa, { shape: [R, K / 128] }), t(w, { shape: [E, N, K], dtype: 'f8e4m3' }), t(sw, { shape: [E, Math.ceil(N / 128), K / 128] }), t(offs), 'bf16', { exactBlockSums: true })]);
  }),
  // Rows past each expert's count are unspecified: the comparison zeroes them on both sides.
  maskedGroupedFp8Gemm: () => (small ? [[4, 16, 128, 256]] : [[32, 64, 4096, 7168], [256, 16, 2048, 7168]]).map(([E, M, N, K]) => {
    const counts = Int32Array.from({ length: E }, (_, e) => (e % 3 === 0 ? M : Math.floor(random() * M)));
    const a = codes(E * M * K), sa = new Float32Array(E * M * K / 128).fill(2 ** -8), w = codes(E * N * K), sw = new Float32Array(E * Math.ceil(N / 128) * K / 128).fill(2 ** -8);
    return caseOf(`maskedGroupedFp8Gemm E ${E} M ${M} N ${N} K ${K}`, 2 ** -10 * Math.sqrt(K), 2 ** -7, (t) => {
      const y = ops.maskedGroupedFp8Gemm(t(a, { shape: [E, M, K], dtype: 'f8e4m3' }), t(sa, { shape: [E, M, K / 128] }), t(w, { shape: [E, N, K], dtype: 'f8e4m3' }), t(sw, { shape: [E, Math.ceil(N / 128), K / 128] }), t(counts), 'bf16', { exactBlockSums: true });
      return [{
        async toFloat32Array() {
          const v = await y.toFloat32Array();
          for (let e = 0; e < E; ++e) v.fill(0, (e * M + counts[e]) * N, (e + 1) * M * N);
          return v;
        },
        dispose: () => y.dispose(),
      }];
    });
  }),
  gemm: () => (small ? [[4, 100, 256]] : [[1, 8192, 7168], [64, 256, 7168]]).map(([M, N, K]) => {
    const x = floats(M * K), w = floats(N * K, 0.02);
    return caseOf(`gemm [${M}, ${K}] x [${N}, ${K}]ᵀ bf16 -> f32`, 1e-5 * Math.sqrt(K), 1e-5, (t) => [ops.gemm(t(x, { shape: [M, K], dtype: 'bf16' }), t(w, { shape: [N, K], dtype: 'bf16' }), 'f32')]);
  }),
  bmmHeads: () => (small ? [[2, 4, 64, 32]] : [[1, 128, 128, 512], [64, 128, 512, 128]]).map(([T, H, A, B]) => {
    const x = floats(T * H * A), w = floats(H * A * B, 0.05);
    return caseOf(`bmmHeads [${T}, ${H}, ${A}] x [${H}, ${A}, ${B}] bf16`, 1e-3, 2 ** -7, (t) => [ops.bmmHeads(t(x, { shape: [T, H, A], dtype: 'bf16' }), t(w, { shape: [H, A, B], dtype: 'bf16' }), 'bf16')]);
  }),
  // Attention: summation order and e^x differ; P may round to the neighbouring bf16 value (one ulp of P · |v|).
  mlaDecode: () => (small ? [[2, 16, 100, 0, false], [2, 20, 130, 32, true]] : [[1, 128, 4096, 0, false], [4, 128, 8192, 2048, false], [64, 16, 2000, 0, true], [8, 64, 3000, 2048, true]]).map(([T, H, ctx, topk, fp8]) => {
    const [C, Dr] = [512, 64];
    const blocks = Math.ceil(ctx / 64), numBlocks = blocks + 1;
    const table = Int32Array.from({ length: blocks }, (_, b) => (b * 7 + 1) % numBlocks);  // scattered blocks
    const ql = floats(T * H * C), qpe = floats(T * H * Dr), pos = ints(T, ctx);
    pos[0] = ctx - 1;
    const idx = topk ? Int32Array.from({ length: T * topk }, (_, i) => (random() < 0.05 ? -1 : Math.floor(random() * ctx))) : null;
    let cache, shape;
    if (fp8) {  // FP8 rows: C codes, C/128 f32 scales, Dr bf16 (latent_cache.h)
      const rowBytes = C + 4 * (C / 128) + 2 * Dr, bytes = new Uint8Array(numBlocks * 64 * rowBytes), view = new DataView(bytes.buffer);
      for (let r = 0; r < numBlocks * 64; ++r) {
        bytes.set(codes(C).map((c) => c & 0xbf), r * rowBytes);  // |code| <= 1.875 · 2^0: finite, moderate
        for (let g = 0; g < C / 128; ++g) view.setFloat32(r * rowBytes + C + 4 * g, 2 ** -2, true);
        for (let d = 0; d < Dr; ++d) view.setUint16(r * rowBytes + C + 4 * (C / 128) + 2 * d, 0x3f80 + Math.floor(random() * 128), true);
      }
      cache = bytes; shape = [numBlocks, 64, rowBytes];
    } else {
      cache = floats(numBlocks * 64 * (C + Dr)); shape = [numBlocks, 64, C + Dr];
    }
    return caseOf(`mlaDecode T ${T} H ${H} ctx ${ctx}${topk ? ` top-${topk}` : ''}${fp8 ? ' FP8 cache' : ''} bf16`, 2 ** -7, 2 ** -7, (t) =>
      [ops.mlaDecode(t(ql, { shape: [T, H, C], dtype: 'bf16' }), t(qpe, { shape: [T, H, Dr], dtype: 'bf16' }), t(cache, { shape, dtype: fp8 ? 'u8' : 'bf16' }),
        t(table, { shape: [1, blocks] }), t(new Int32Array(T)), t(pos), { scale: 1 / Math.sqrt(C + Dr), indices: idx ? t(idx, { shape: [T, topk] }) : undefined })]);
  }),
  // Chunked causal prefill (query t at position S − T + t), dense or with index lists (5 % -1).
  mlaPrefill: () => (small ? [[5, 4, 37, 0], [4, 20, 50, 16]] : [[1, 128, 4096, 0], [512, 16, 512, 0], [64, 128, 2048, 0], [128, 64, 4096, 2048]]).map(([T, H, S, topk]) => {
    const [Dn, Dr, Dv] = [128, 64, 128];
    const q = floats(T * H * (Dn + Dr)), kv = floats(S * H * (Dn + Dv)), kPe = floats(S * Dr);
    const pos = Int32Array.from({ length: T }, (_, t) => S - T + t);
    const idx = topk ? Int32Array.from({ length: T * topk }, () => (random() < 0.05 ? -1 : Math.floor(random() * S))) : null;
    return caseOf(`mlaPrefill T ${T} H ${H} S ${S}${topk ? ` top-${topk}` : ''} bf16`, 2 ** -7, 2 ** -7, (t) =>
      [ops.mlaPrefill(t(q, { shape: [T, H, Dn + Dr], dtype: 'bf16' }), t(kv, { shape: [S, H, Dn + Dv], dtype: 'bf16' }), t(kPe, { shape: [S, Dr], dtype: 'bf16' }), t(pos),
        { scale: 1 / Math.sqrt(Dn + Dr), vHeadDim: Dv, indices: idx ? t(idx, { shape: [T, topk] }) : undefined })]);
  }),
  // f32 sums of exact FP8 products in another order.
  indexerScores: () => (small ? [[2, 64, 128, 300]] : [[4, 64, 128, 8192], [64, 64, 128, 2048]]).map(([T, H, D, ctx]) => {
    const blocks = Math.ceil(ctx / 64), table = Int32Array.from({ length: blocks }, (_, b) => blocks - 1 - b);
    const q = floats(T * H * D), k = floats(blocks * 64 * D), ks = floats(blocks * 64).map((v) => Math.abs(v) * 0.1), w = floats(T * H, 0.125), pos = ints(T, ctx);
    return caseOf(`indexerScores T ${T} Hi ${H} Di ${D} ctx ${ctx}`, 1e-4, 1e-4, (t) =>
      [ops.indexerScores(t(q, { shape: [T, H, D], dtype: 'f8e4m3' }), t(w, { shape: [T, H] }), t(k, { shape: [blocks, 64, D], dtype: 'f8e4m3' }), t(ks, { shape: [blocks, 64] }),
        t(table, { shape: [1, blocks] }), t(new Int32Array(T)), t(pos), ctx)]);
  }),
  // Distinct scores (no ties): the same indices exactly.
  topK: () => (small ? [[2, 3000, 256]] : [[1, 131072, 2048], [64, 8192, 2048], [16, 65536, 1]]).map(([T, S, k]) => {
    const scores = new Float32Array(T * S);
    for (let r = 0; r < T; ++r) {
      const p = Array.from({ length: S }, (_, i) => i);
      for (let i = S - 1; i > 0; --i) { const j = Math.floor(random() * (i + 1)); [p[i], p[j]] = [p[j], p[i]]; }
      for (let i = 0; i < S; ++i) scores[r * S + i] = (p[i] - S / 2) * 0.37;
    }
    return caseOf(`topK [${T}, ${S}] k ${k}`, 0, 0, (t) => [ops.topK(t(scores, { shape: [T, S] }), k)]);
  }),
});

Object.assign(CASES, {
  // rope and hadamard mirror the CPU's f32 arithmetic: exact. The tables only need to be the same on
  // both sides: cos/sin of t·θ^(-2i/R), built here.
  rope: () => (small ? [[4, 16, 192, 128, true]] : [[1, 1, 64, 0, true], [64, 128, 192, 128, true], [300, 1, 128, 0, false], [33, 7, 67, 3, false]]).map(([T, H, D, offset, interleaved]) => {
    const P = 4096, half = 32, x = floats(T * H * D, 2), pos = ints(T, P);
    const angle = (i) => Math.floor(i / half) * 10000 ** ((-2 * (i % half)) / (2 * half));
    const cos = Float32Array.from({ length: P * half }, (_, i) => Math.cos(angle(i))), sin = Float32Array.from({ length: P * half }, (_, i) => Math.sin(angle(i)));
    return caseOf(`rope [${T}, ${H}, ${D}] offset ${offset} ${interleaved ? 'interleaved' : 'half-split'} bf16`, 0, 0, (t) =>
      [ops.rope(t(x, { shape: [T, H, D], dtype: 'bf16' }), t(pos), t(cos, { shape: [P, half] }), t(sin, { shape: [P, half] }), { offset, interleaved })]);
  }),
  // The paged cache: copies and actQuant's quantisation, exact. Writes are read back as the whole cache.
  pagedWrite: () => (small ? [[4, 576, 100]] : [[1, 1, 1], [64, 576, 2048], [8, 129, 300]]).map(([B, W, T]) => {
    const init = floats(B * 64 * W), rows = floats(T * W), slots = Int32Array.from({ length: T }, (_, i) => (i * 7919) % (B * 64));
    return caseOf(`pagedWrite [${B}, 64, ${W}] bf16, ${T} rows`, 0, 0, (t) => {
      const cache = t(init, { shape: [B, 64, W], dtype: 'bf16' });
      ops.pagedWrite(cache, t(rows, { shape: [T, W], dtype: 'bf16' }), t(slots));
      return [cache];
    });
  }),
  pagedGather: () => (small ? [[4, 576, 100]] : [[1, 1, 1], [64, 576, 4096], [8, 129, 300]]).map(([B, W, S]) => {
    const init = floats(B * 64 * W), slots = ints(S, B * 64);
    return caseOf(`pagedGather [${B}, 64, ${W}] bf16, ${S} rows`, 0, 0, (t) => [ops.pagedGather(t(init, { shape: [B, 64, W], dtype: 'bf16' }), t(slots))]);
  }),
  latentCacheWrite: () => (small ? [[4, 100]] : [[1, 1], [64, 2048]]).map(([B, T]) => {
    const W = ops.latentCacheRowBytes(512, 64, 'bf16'), init = codes(B * 64 * W), latent = floats(T * 512, 3), kPe = floats(T * 64);
    const slots = Int32Array.from({ length: T }, (_, i) => (i * 7919) % (B * 64));
    return caseOf(`latentCacheWrite [${B}, 64, ${W}] C 512 Dr 64 bf16 ue8m0, ${T} rows`, 0, 0, (t) => {
      const cache = t(init, { shape: [B, 64, W], dtype: 'u8' });
      ops.latentCacheWrite(cache, t(latent, { shape: [T, 512], dtype: 'bf16' }), t(kPe, { shape: [T, 64], dtype: 'bf16' }), t(slots), { scaleFmt: 'ue8m0' });
      return [cache];
    });
  }),
  latentCacheRead: () => (small ? [[4, 100]] : [[1, 1], [64, 4096]]).map(([B, S]) => {
    const W = ops.latentCacheRowBytes(512, 64, 'bf16'), slots = ints(S, B * 64);
    // Valid rows: codes anywhere, finite positive scales, bf16 RoPE bytes from real values.
    const rows = new Uint8Array(B * 64 * W);
    const view = new DataView(rows.buffer);
    for (let i = 0; i < B * 64; ++i) {
      rows.set(codes(512), i * W);
      for (let g = 0; g < 4; ++g) view.setFloat32(i * W + 512 + 4 * g, 2 ** -8 * (1 + random()), true);
      for (let d = 0; d < 64; ++d) view.setUint16(i * W + 528 + 2 * d, 0x3f80 + Math.floor(random() * 256), true);
    }
    return caseOf(`latentCacheRead [${B}, 64, ${W}] C 512 Dr 64 -> bf16, ${S} rows`, 0, 0, (t) => [ops.latentCacheRead(t(rows, { shape: [B, 64, W], dtype: 'u8' }), t(slots), 512, 64, 'bf16')]);
  }),
  hadamard: () => (small ? [[4, 128]] : [[1, 1], [64, 128], [300, 128], [3, 32768]]).map(([R, D]) => {
    const x = floats(R * D);
    return caseOf(`hadamard [${R}, ${D}] bf16`, 0, 0, (t) => [ops.hadamard(t(x, { shape: [R, D], dtype: 'bf16' }))]);
  }),
});

Object.assign(CASES, {
  // Element-wise ops and copies mirror the CPU's f32 arithmetic: exact. layerNorm too (the CPU's 8
  // partial sums in the CPU's order).
  add: () => (small ? [[64, 7168]] : [[1, 1], [64, 7168], [3000, 7168]]).map(([R, D]) => {
    const a = floats(R * D), b = floats(D);
    return caseOf(`add [${R}, ${D}] bf16 + [${D}] f32`, 0, 0, (t) => [ops.add(t(a, { shape: [R, D], dtype: 'bf16' }), t(b))]);
  }),
  mul: () => (small ? [[64, 7168]] : [[1, 1], [64, 7168], [3000, 7168]]).map(([R, D]) => {
    const a = floats(R * D), b = floats(R * D);
    return caseOf(`mul [${R}, ${D}] f32 · bf16`, 0, 0, (t) => [ops.mul(t(a, { shape: [R, D] }), t(b, { shape: [R, D], dtype: 'bf16' }))]);
  }),
  silu: () => (small ? [[4096]] : [[1], [64 * 18432]]).map(([n]) => {
    const x = floats(n, 4);
    return caseOf(`silu [${n}] bf16`, 0, 0, (t) => [ops.silu(t(x, { dtype: 'bf16' }))]);
  }),
  scale: () => (small ? [[4096]] : [[1], [64 * 7168]]).map(([n]) => {
    const x = floats(n, 4);
    return caseOf(`scale [${n}] f32`, 0, 0, (t) => [ops.scale(t(x), 0.0883883476)]);
  }),
  slice: () => (small ? [[4, 128, 192]] : [[1, 1, 1], [64, 128, 192], [300, 7, 13]]).map(([T, H, D]) => {
    const x = floats(T * H * D);
    return caseOf(`slice [${T}, ${H}, ${D}] bf16 dim 2 [${D >> 1}, +${D - (D >> 1)})`, 0, 0, (t) => [ops.slice(t(x, { shape: [T, H, D], dtype: 'bf16' }), 2, D >> 1, D - (D >> 1))]);
  }),
  concat: () => (small ? [[4, 128, 128, 64]] : [[1, 1, 1, 1], [64, 128, 128, 64], [300, 7, 13, 3]]).map(([T, H, A, B]) => {
    const a = floats(T * H * A), b = floats(T * H * B);
    return caseOf(`concat [${T}, ${H}, ${A}] + [${T}, ${H}, ${B}] bf16 dim 2`, 0, 0, (t) => [ops.concat([t(a, { shape: [T, H, A], dtype: 'bf16' }), t(b, { shape: [T, H, B], dtype: 'bf16' })], 2)]);
  }),
  transpose: () => (small ? [[4, 128, 64]] : [[1, 1, 1], [64, 128, 512], [300, 7, 13]]).map(([T, H, D]) => {
    const x = floats(T * H * D);
    return caseOf(`transpose [${T}, ${H}, ${D}] bf16 dims 0, 1`, 0, 0, (t) => [ops.transpose(t(x, { shape: [T, H, D], dtype: 'bf16' }), 0, 1)]);
  }),
  argmax: () => (small ? [[4, 129280]] : [[1, 1], [1, 129280], [64, 129280]]).map(([B, V]) => {
    const x = floats(B * V, 3);
    return caseOf(`argmax [${B}, ${V}]`, 0, 0, (t) => [ops.argmax(t(x, { shape: [B, V] }))]);
  }),
  // The CPU's ids for the same seeds (cuda/sampling.cuh: only a draw within ~1e-15 of a cumulative
  // boundary could differ); log-probabilities within an f32 ulp, which leaves ids exact (>= 1 apart).
  sample: () => (small ? [[4, 129280]] : [[1, 1], [8, 129280], [64, 129280]]).map(([B, V]) => {
    const x = floats(B * V, 3), seed = Math.floor(random() * 2 ** 40);
    return caseOf(`sample [${B}, ${V}] T 0.8, topK 50, topP 0.9`, 0, 0, (t) => [ops.sample(t(x, { shape: [B, V] }), { temperature: 0.8, topK: 50, topP: 0.9, seed })]);
  }),
  sampleRows: () => (small ? [[4, 129280]] : [[1, 1], [8, 129280], [64, 129280]]).map(([B, V]) => {
    const x = floats(B * V, 3);
    const rows = Array.from({ length: B }, (_, b) => ({
      temperature: b % 4 === 0 ? 0 : 0.7 + random(), topK: [0, 1, 40, V + 1][b % 4], topP: b % 3 ? 0.9 : 1, minP: b % 2 ? 0.05 : 0,
      presencePenalty: 0.5, frequencyPenalty: 0.25, repetitionPenalty: 1.2, seed: Math.floor(random() * 2 ** 40), step: b * 7,
      history: new Map(Array.from(ints(Math.min(V, 300), V), (id, k) => [id, k % 3])),
    }));
    return caseOf(`sampleRows [${B}, ${V}] penalties, topK/topP/minP, topLogprobs 20`, 1e-6, 2 ** -22, (t) => {
      const r = ops.sampleRows(t(x, { shape: [B, V] }), rows, 20);
      return [r.ids, r.topIds, r.logprobs];
    });
  }),
  layerNorm: () => (small ? [[64, 128]] : [[1, 1], [64, 128], [4096, 128], [3, 1000]]).map(([R, D]) => {
    const x = floats(R * D, 3), w = floats(D).map((v) => 1 + 0.1 * v), b = floats(D, 0.1);
    return caseOf(`layerNorm [${R}, ${D}] bf16 + bias`, 0, 0, (t) => [ops.layerNorm(t(x, { shape: [R, D], dtype: 'bf16' }), t(w), t(b), 1e-6)]);
  }),
});

/** Runtime checks (section 1 of issue 7) on the device. */
const RUNTIME = [
  ['a read sees the ops queued before it and none after', async () => {
    const x = tensor(new Float32Array(1 << 16).fill(1), { device: GPU });
    native().ops.debugDelay(GPU, 100);
    const before = x.read();
    native().ops.debugFill(x.handle(), 0);
    const after = x.read();
    const [b, a] = await Promise.all([before, after]);
    x.dispose();
    if (!b.every((v) => v === 1)) throw new Error('the first read saw a fill queued after it');
    if (!a.every((v) => v === 0)) throw new Error('the second read missed the fill queued before it');
  }],
  ['tensor() and zeros() do not wait for queued GPU work', async () => {
    const data = floats(1 << 18);
    native().ops.debugDelay(GPU, 400);
    const t0 = performance.now();
    const x = tensor(data, { device: GPU });
    data.fill(7);  // the upload was staged at the call: later writes to data do not reach it
    const z = zeros([1 << 20], { device: GPU });
    const ms = performance.now() - t0;
    const [got, zs] = await Promise.all([x.read(), z.read()]);
    x.dispose(); z.dispose();
    if (ms > 200) throw new Error(`tensor()+zeros() took ${ms.toFixed(0)} ms behind a 400 ms queued delay`);
    if (got.some((v) => v === 7)) throw new Error('the upload read the host array after tensor() returned');
    if (!zs.every((v) => v === 0)) throw new Error('zeros() is not zero');
  }],
  ['a recycled block read back through zeros() is zero', async () => {
    const a = tensor(new Float32Array(1 << 16).fill(3), { device: GPU });
    await a.read();
    a.dispose();
    const z = zeros([1 << 16], { device: GPU });
    const zs = await z.read();
    z.dispose();
    if (!zs.every((v) => v === 0)) throw new Error('zeros() over a recycled block is not zero');
  }],
  ['a kernel that finds bad data rejects the next read naming the op', async () => {
    const x = zeros([4], { device: GPU });
    native().ops.debugRaiseDevice(x.handle(), 3, 70000, 65536);
    let message = '';
    await x.read().catch((e) => (message = e.message));
    const again = await x.read();  // cleared at the sync point that reported it
    x.dispose();
    if (message !== 'debugRaiseDevice: token id 70000 is out of range [0, 65536)') throw new Error(`got '${message}'`);
    if (again.length !== 4) throw new Error('the read after the error failed');
  }],
  ['a failed host allocation in a read rejects it', async () => {
    const x = zeros([4], { device: GPU });
    native().ops.debugFailHostAllocations(1);
    let message = '';
    await x.read().catch((e) => (message = e.message));
    x.dispose();
    if (!/out of host memory/.test(message)) throw new Error(`got '${message}'`);
  }],
];

async function main() {
  const info = runtimeInfo();
  const gpu = devices().find((d) => d.name === GPU);
  console.log(`device check: ${info.addon}`);
  console.log(`  cuda: ${JSON.stringify(info.cuda)}`);
  if (!gpu) {
    // On the device machine (--require-gpu, as .device/run.sh runs it) a missing GPU is a failure.
    console.log(`no ${GPU} here (${info.cuda?.status ?? 'CPU build'}): nothing to check`);
    return process.argv.includes('--require-gpu') ? 1 : 0;
  }
  console.log(`  ${GPU}: ${gpu.description}, compute capability ${gpu.computeCapability}, ${(gpu.memoryBytes / 2 ** 30).toFixed(0)} GiB, driver CUDA ${gpu.driverVersion}`);
  console.log(`  seed ${startSeed} (replay with --seed ${startSeed})`);
  if (gpu.supported === false) {
    console.log(`FAILED: ${gpu.unsupported}`);
    return 1;
  }
  let passed = 0, failed = 0;
  const fail = (name, why) => {
    failed++;
    console.log(`FAIL ${name}: ${why}`);
  };
  if (!small || GPU === 'cpu')
    for (const [name, check] of RUNTIME) {
      try {
        await check();
        passed++;
        console.log(`ok   runtime: ${name}`);
      } catch (e) {
        fail(`runtime: ${name}`, e.message);
      }
    }
  const cudaOps = GPU === 'cpu' ? Object.keys(CASES) : Object.entries(opDevices()).filter(([, d]) => d.includes('cuda')).map(([op]) => op);
  console.log(`  ops with a CUDA kernel: ${cudaOps.join(', ')}`);
  for (const op of cudaOps) {
    if (!CASES[op]) {
      fail(op, 'has a CUDA kernel but no case in scripts/device-check.mjs');
      continue;
    }
    for (const c of CASES[op]()) {
      try {
        const [want, got] = [await c.run('cpu'), await c.run(GPU)];
        const bad = want.map((w, i) => ({ i, ...worst(got[i], w, c.atol, c.rtol) })).find((r) => r.ratio > 1);
        if (bad) fail(c.name, `output ${bad.i} differs from the CPU at ${bad.at}: ${got[bad.i][bad.at]} vs ${want[bad.i][bad.at]} (atol ${c.atol}, rtol ${c.rtol})`);
        else passed++;
      } catch (e) {
        fail(c.name, e.message);
      }
    }
  }
  console.log(`${passed} passed, ${failed} failed`);
  return failed ? 1 : 0;
}

main().then((rc) => (process.exitCode = rc), (e) => {
  console.error(e);
  process.exitCode = 1;
});
