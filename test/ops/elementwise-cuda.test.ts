/**
 * The element-wise ops (add, mul, silu, scale), the layout copies (slice, concat, transpose) and
 * layerNorm on a CUDA device (the emulated cuda:0 in CI) against the CPU ops, which their own suites
 * check against float64: the same bits, for bf16 and f32 (mixed where the op allows), broadcast rows,
 * odd sizes, every dimension sliced, joined and swapped, element sizes from 1 to 4 bytes (the copies'
 * 1- to 16-byte units).
 */
import { describe, it } from 'vitest';

import { ops, tensor } from '../../lib/index.js';
import { expectSameBytes, rng, roundTo, suiteDevices } from '../helpers.js';

for (const { device, skip } of suiteDevices('add', 'mul', 'silu', 'scale', 'slice', 'concat', 'transpose', 'layerNorm')) {
  if (device === 'cpu') continue; // this file compares a device's kernels with the CPU's
  describe.skipIf(skip)(`element-wise ops, copies and layerNorm on ${device} give the CPU's bits${skip ? ` (skipped: ${skip})` : ''}`, () => {
    const r = rng();
    /** Values of `dtype`: mostly N(0, σ²), with signed zeros, large and tiny magnitudes. */
    const values = (n: number, dtype: 'f32' | 'bf16', sigma = 2) =>
      Float32Array.from({ length: n }, (_, i) => roundTo(dtype, i % 29 === 3 ? [-0, 3e30, -1e-30, 0, -90][(i / 29) % 5 | 0] : r.normal() * sigma));

    for (const op of ['add', 'mul'] as const)
      for (const [aType, bType] of [['bf16', 'bf16'], ['f32', 'f32'], ['bf16', 'f32'], ['f32', 'bf16']] as const)
        for (const [shape, bShape] of [[[7, 33], [7, 33]], [[5, 3, 64], [64]], [[1], [1]], [[1000], [1000]], [[4, 129], [129]]])
          it(`${op} ${aType} ${JSON.stringify(shape)} with ${bType} ${JSON.stringify(bShape)} (seed ${r.seed})`, async () => {
            const xa = values(shape.reduce((p, q) => p * q, 1), aType), xb = values(bShape.reduce((p, q) => p * q, 1), bType);
            const run = (d: string) => {
              using a = tensor(xa, { shape, dtype: aType, device: d });
              using b = tensor(xb, { shape: bShape, dtype: bType, device: d });
              return ops[op](a, b);
            };
            using a = run('cpu');
            using b = run(device);
            await expectSameBytes([[op, a, b]]);
          });

    for (const dtype of ['bf16', 'f32'] as const)
      for (const n of [1, 37, 4099])
        it(`silu and scale ${dtype} [${n}], extreme inputs included (seed ${r.seed})`, async () => {
          const xs = Float32Array.from({ length: n }, (_, i) => roundTo(dtype, i % 17 === 2 ? [-120, 95, -0, 1e-30, 88.7, -104][(i / 17) % 6 | 0] : r.normal() * 6));
          const s = r.normal() * 3;
          const run = (d: string) => {
            using x = tensor(xs, { shape: [n], dtype, device: d });
            return [ops.silu(x), ops.scale(x, s)];
          };
          const [a1, a2] = run('cpu'), [b1, b2] = run(device);
          await expectSameBytes([['silu', a1, b1], ['scale', a2, b2]]);
          for (const t of [a1, a2, b1, b2]) t.dispose();
        });

    // Element sizes 1 (u8), 2 (bf16) and 4 (f32): the copies pick 1- to 16-byte units from the sizes.
    const copyCases = [
      { dtype: 'f32', shape: [4, 6, 8] },
      { dtype: 'bf16', shape: [3, 5, 7] },
      { dtype: 'u8', shape: [2, 9, 3, 5] },
      { dtype: 'bf16', shape: [64, 576] },
    ] as const;
    const data = (n: number, dtype: string) => (dtype === 'u8' ? Uint8Array.from({ length: n }, () => r.int(0, 256)) : values(n, dtype as 'f32' | 'bf16'));
    for (const c of copyCases)
      it(`slice, concat and transpose ${c.dtype} ${JSON.stringify(c.shape)} along every dimension (seed ${r.seed})`, async () => {
        const n = c.shape.reduce((p, q) => p * q, 1);
        const xs = data(n, c.dtype);
        const pairs: [string, ReturnType<typeof ops.slice>, ReturnType<typeof ops.slice>][] = [];
        for (let d = 0; d < c.shape.length; ++d) {
          const size = c.shape[d], start = r.int(0, size), length = r.int(0, size - start + 1);
          // A second part of another length along d, for concat (with the sliced part and x itself).
          const otherShape = c.shape.map((s, k) => (k === d ? r.int(1, 4) : s));
          const other = data(otherShape.reduce((p, q) => p * q, 1), c.dtype);
          const d1 = r.int(0, c.shape.length);
          const run = (dev: string) => {
            using x = tensor(xs, { shape: c.shape, dtype: c.dtype, device: dev });
            using o = tensor(other, { shape: otherShape, dtype: c.dtype, device: dev });
            const s = ops.slice(x, d, start, length);
            return [s, ops.concat([x, s, o], d - c.shape.length), ops.transpose(x, d, d1)];
          };
          const a = run('cpu'), b = run(device);
          for (const [i, what] of [`slice dim ${d} [${start}, +${length})`, `concat dim ${d}`, `transpose ${d}, ${d1}`].entries()) pairs.push([what, a[i], b[i]]);
        }
        await expectSameBytes(pairs);
        for (const [, a, b] of pairs) {
          a.dispose();
          b.dispose();
        }
      });

    for (const dtype of ['bf16', 'f32'] as const)
      for (const [rows, dim, withBias] of [[5, 128, true], [3, 128, false], [1, 1, true], [7, 1000, true], [2, 13, false]] as const)
        it(`layerNorm ${dtype} [${rows}, ${dim}]${withBias ? ' + bias' : ''} (seed ${r.seed})`, async () => {
          const xs = Float32Array.from({ length: rows * dim }, () => roundTo(dtype, r.normal() * 3 + 1));
          const w = Float32Array.from({ length: dim }, () => roundTo('bf16', 1 + r.normal() * 0.2));
          const b = Float32Array.from({ length: dim }, () => roundTo('bf16', r.normal() * 0.1));
          const eps = [1e-6, 1e-5][r.int(0, 2)];
          const run = (d: string) => {
            using x = tensor(xs, { shape: [rows, dim], dtype, device: d });
            using wt = tensor(w, { dtype: 'bf16', device: d });
            using bt = tensor(b, { dtype: 'f32', device: d });
            return ops.layerNorm(x, wt, withBias ? bt : null, eps);
          };
          using a = run('cpu');
          using bb = run(device);
          await expectSameBytes([['layerNorm', a, bb]]);
        });
  });
}
