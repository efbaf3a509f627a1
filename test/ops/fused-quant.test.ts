/**
 * actQuant fused into rmsNorm, addRmsNorm and swiglu (rmsNormQuant, addRmsNormQuant, swigluQuant):
 * on each device, the bytes of the unfused pair on that device (the op, then actQuant of its output
 * with blockSize 128), which the norm, MoE and quant suites check against float64 references. On the
 * CPU, on every SIMD path, and the same bytes on each path.
 */
import { describe, expect, it } from 'vitest';

import { ops, tensor, type Tensor } from '../../lib/index.js';
import { expectSameBytes, rng, roundTo, suiteDevices } from '../helpers.js';
import { missingPath, onPath, PATHS } from './cpu-paths.js';

type Named = [string, Tensor][];

/** Runs `make` (fused outputs, then the unfused reference's) and expects the same bytes pairwise. */
async function expectFusedAsPair(make: () => { fused: Named; pair: Named }): Promise<void> {
  const { fused, pair } = make();
  try {
    await expectSameBytes(fused.map(([what, t], i) => [what, pair[i][1], t] as [string, Tensor, Tensor]));
  } finally {
    for (const [, t] of [...fused, ...pair]) t.dispose();
  }
}

/** Values that exercise the quantiser: normal ones, a group of tiny ones (the amax floor), large
 *  ones (near and at saturation for ue8m0 rounding), and exact zeros. */
function activations(r: ReturnType<typeof rng>, n: number, scale: number): Float32Array {
  const xs = r.floats(n, scale);
  for (let g = 0; g * 128 < n; ++g) {
    const kind = r.int(0, 6);
    for (let i = g * 128; i < Math.min(n, (g + 1) * 128); ++i)
      if (kind === 0) xs[i] *= 1e-7;
      else if (kind === 1) xs[i] *= 300;
      else if (kind === 2 && r.int(0, 4) === 0) xs[i] = 0;
  }
  return xs;
}

for (const { device, skip } of suiteDevices('rmsNorm', 'swiglu', 'actQuant')) {
  describe.skipIf(skip)(`actQuant fused into rmsNorm and swiglu on ${device}${skip ? ` (skipped: ${skip})` : ''}`, () => {
    const r = rng();
    const onEachPath = async (fn: () => Promise<void>) => {
      await fn();
      if (device !== 'cpu') return;
      for (const path of PATHS) if (!missingPath(path)) await onPath(path, fn);
    };

    for (const dtype of ['bf16', 'f32'] as const)
      for (const [rows, dim] of [[1, 128], [3, 256], [5, 1536], [2, 7168], [33, 512]] as const)
        for (const scaleFmt of [null, 'ue8m0'] as const)
          it(`rmsNormQuant and addRmsNormQuant ${dtype} [${rows}, ${dim}], scaleFmt ${scaleFmt} (seed ${r.seed})`, async () => {
            const xs = activations(r, rows * dim, 3).map((v) => roundTo(dtype, v));
            const res = r.floats(rows * dim, 2).map((v) => roundTo(dtype, v));
            // Weights spread over 1e-3 … 1e2, so the normalised groups span the quantiser's range.
            const w = r.floats(dim).map((v) => roundTo('bf16', 10 ** (2.5 * v)));
            using x = tensor(xs, { shape: [rows, dim], dtype, device });
            using rt = tensor(res, { shape: [rows, dim], dtype, device });
            using wt = tensor(w, { dtype: 'bf16', device });
            await onEachPath(async () => {
              await expectFusedAsPair(() => {
                const f = ops.rmsNormQuant(x, wt, 1e-6, { scaleFmt });
                const out = ops.rmsNorm(x, wt, 1e-6);
                const q = ops.actQuant(out, { scaleFmt });
                return { fused: [['out', f.out], ['codes', f.codes], ['scales', f.scales]], pair: [['out', out], ['codes', q.codes], ['scales', q.scales]] };
              });
              await expectFusedAsPair(() => {
                const f = ops.addRmsNormQuant(x, rt, wt, 1e-6, { scaleFmt });
                const u = ops.addRmsNorm(x, rt, wt, 1e-6);
                const q = ops.actQuant(u.out, { scaleFmt });
                return {
                  fused: [['out', f.out], ['residual', f.residual], ['codes', f.codes], ['scales', f.scales]],
                  pair: [['out', u.out], ['residual', u.residual], ['codes', q.codes], ['scales', q.scales]],
                };
              });
            });
          });

    for (const [inType, outType] of [['bf16', 'bf16'], ['f32', 'f32'], ['f32', 'bf16'], ['bf16', 'f32']] as const)
      for (const [R, I] of [[1, 128], [7, 384], [3, 2048], [64, 256]] as const)
        it(`swigluQuant ${inType} -> ${outType} [${R}, ${2 * I}] (seed ${r.seed})`, async () => {
          const scaleFmt = r.int(0, 2) ? 'ue8m0' : null;
          using x = tensor(activations(r, R * 2 * I, 4).map((v) => roundTo(inType, v)), { shape: [R, 2 * I], dtype: inType, device });
          await onEachPath(async () => {
            await expectFusedAsPair(() => {
              const f = ops.swigluQuant(x, { outDtype: outType, scaleFmt });
              const out = ops.swiglu(x, outType);
              const q = ops.actQuant(out, { scaleFmt });
              return { fused: [['out', f.out], ['codes', f.codes], ['scales', f.scales]], pair: [['out', out], ['codes', q.codes], ['scales', q.scales]] };
            });
          });
        });

    it('quantised outputs have the actQuant shapes and dtypes', () => {
      using x = tensor(r.floats(2 * 3 * 256), { shape: [2, 3, 256], dtype: 'bf16', device });
      using w = tensor(r.floats(256), { device });
      const f = ops.rmsNormQuant(x, w, 1e-6);
      using g = tensor(r.floats(5 * 512), { shape: [5, 512], device });
      const s = ops.swigluQuant(g, { outDtype: 'bf16' });
      try {
        expect([f.out.shape, f.out.dtype, f.codes.shape, f.codes.dtype, f.scales.shape, f.scales.dtype]).toEqual([[2, 3, 256], 'bf16', [2, 3, 256], 'f8e4m3', [2, 3, 2], 'f32']);
        expect([s.out.shape, s.out.dtype, s.codes.shape, s.codes.dtype, s.scales.shape, s.scales.dtype]).toEqual([[5, 256], 'bf16', [5, 256], 'f8e4m3', [5, 2], 'f32']);
      } finally {
        for (const t of [f.out, f.codes, f.scales, s.out, s.codes, s.scales]) t.dispose();
      }
    });

    it('rejects what actQuant cannot quantise, before running', () => {
      using x = tensor(r.floats(3 * 200), { shape: [3, 200], dtype: 'bf16', device });
      using w = tensor(r.floats(200), { device });
      expect(() => ops.rmsNormQuant(x, w, 1e-6)).toThrow('rmsNorm: the quantised output needs a last dimension that is a multiple of 128 but it is 200');
      using h = tensor(r.floats(256), { shape: [1, 256], dtype: 'f16', device });
      using w2 = tensor(r.floats(256), { device });
      expect(() => ops.rmsNormQuant(h, w2, 1e-6)).toThrow('rmsNorm: the quantised output needs an f32 or bf16 output but it is f16');
      using g = tensor(r.floats(2 * 300), { shape: [2, 300], device });
      expect(() => ops.swigluQuant(g)).toThrow('swiglu: the quantised output needs a last dimension that is a multiple of 128 but it is 150');
      // @ts-expect-error not a scale format
      expect(() => ops.swigluQuant(g, { scaleFmt: 'e8m0' })).toThrow(/swigluQuant: expected 'ue8m0' or null for scaleFmt/);
    });
  });
}
