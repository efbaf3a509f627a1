/**
 * actQuant and fp8Dequant on a CUDA device (the emulated cuda:0 in CI) against the CPU ops, which
 * their own suite checks against float64 and the reference's kernel: codes and scales bit for bit,
 * ties, the ±448 clamp, subnormals, NaN and ±inf included.
 */
import { describe, it } from 'vitest';

import { ops, tensor } from '../../lib/index.js';
import { expectSameBytes, rng, roundTo, suiteDevices } from '../helpers.js';

for (const { device, skip } of suiteDevices('actQuant', 'fp8Dequant')) {
  if (device === 'cpu') continue; // this file compares a device's kernels with the CPU's
  describe.skipIf(skip)(`actQuant and fp8Dequant on ${device} give the CPU's bits${skip ? ` (skipped: ${skip})` : ''}`, () => {
    const r = rng();
    for (const dtype of ['bf16', 'f32'] as const)
      for (const ue8m0 of [false, true])
        for (const [rows, K, blockSize] of [[1, 128, 128], [7, 384, 128], [3, 96, 32], [2, 21, 7]])
          it(`actQuant ${dtype}${ue8m0 ? ' ue8m0' : ''} [${rows}, ${K}] / ${blockSize} (seed ${r.seed})`, async () => {
            // Random magnitudes per group, some exact E4M3 ties after scaling, and special values.
            const specials = [0, -0, 448, -448, 1e-30, -1e-38, Infinity, -Infinity, NaN, 2 ** -10];
            const xs = Float32Array.from({ length: rows * K }, (_, i) => {
              if (i % 53 === 5) return specials[(i / 53) % specials.length | 0];
              return roundTo(dtype, r.normal() * 10 ** ((Math.floor(i / blockSize) % 5) - 2));
            });
            const run = (d: string) => {
              using x = tensor(xs, { shape: [rows, K], dtype, device: d });
              return ops.actQuant(x, { blockSize, scaleFmt: ue8m0 ? 'ue8m0' : null });
            };
            const a = run('cpu'), b = run(device);
            await expectSameBytes([['codes', a.codes, b.codes], ['scales', a.scales, b.scales]]);
            for (const t of [a.codes, a.scales, b.codes, b.scales]) t.dispose();
          });

    for (const [N, K, outDtype] of [[1, 1, 'f32'], [130, 257, 'bf16'], [256, 128, 'f32']] as const)
      it(`fp8Dequant [${N}, ${K}] -> ${outDtype}, every code (seed ${r.seed})`, async () => {
        const codes = Uint8Array.from({ length: N * K }, (_, i) => (i * 7 + r.int(0, 2)) % 256);
        const scales = Float32Array.from({ length: Math.ceil(N / 128) * Math.ceil(K / 128) }, () => 2 ** r.int(-20, 5) * (1 + r.next()));
        const run = (d: string) => {
          using w = tensor(codes, { shape: [N, K], dtype: 'f8e4m3', device: d }); // raw E4M3 codes, NaN codes included
          using s = tensor(scales, { shape: [Math.ceil(N / 128), Math.ceil(K / 128)], device: d });
          return ops.fp8Dequant(w, s, outDtype);
        };
        using a = run('cpu');
        using b = run(device);
        await expectSameBytes([['dequantised', a, b]]);
      });
  });
}
