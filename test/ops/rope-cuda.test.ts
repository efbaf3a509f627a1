/**
 * rope and hadamard on a CUDA device (the emulated cuda:0 in CI) against the CPU ops, which their
 * own suites check against float64: the same bits, for bf16 and f32, interleaved and half-split
 * pairs, the model's shapes (the MLA query's last 64 of 192 dims, the indexer's first 64 of 128) and
 * odd ones, every power-of-two width of the Hadamard rotation up to 2^15.
 */
import { describe, expect, it } from 'vitest';

import { ops, type Tensor, tensor } from '../../lib/index.js';
import { expectSameBytes, rng, roundTo, suiteDevices } from '../helpers.js';

for (const { device, skip } of suiteDevices('rope', 'hadamard')) {
  if (device === 'cpu') continue; // this file compares a device's kernels with the CPU's
  describe.skipIf(skip)(`rope and hadamard on ${device} give the CPU's bits${skip ? ` (skipped: ${skip})` : ''}`, () => {
    const r = rng();
    /** A copy of a CPU tensor on device `d`. */
    const onDevice = async (t: Tensor, d: string) => tensor(await t.read(), { shape: t.shape, dtype: t.dtype, device: d });
    // YaRN tables as the model builds them (DeepSeek-V3.2: factor 40 over 4096), and a small odd table.
    const yarn = ops.ropeTables({ ropeDim: 64, maxPositions: 5000, theta: 10000, factor: 40, originalMaxPositions: 4096, betaFast: 32, betaSlow: 1 });
    const small = ops.ropeTables({ ropeDim: 6, maxPositions: 40, theta: 100, factor: 1, originalMaxPositions: 4096, betaFast: 32, betaSlow: 1 });
    const cases = [
      { shape: [1, 64], offset: 0, tables: yarn },
      { shape: [7, 16, 192], offset: 128, tables: yarn }, // the MLA query: rope on the last 64 of 192
      { shape: [5, 128], offset: 0, tables: yarn }, // the indexer: rope on the first 64 of 128
      { shape: [9, 1, 67], offset: 3, tables: yarn },
      { shape: [4, 5, 11], offset: 5, tables: small },
      { shape: [3, 6], offset: 0, tables: small },
    ];
    for (const dtype of ['f32', 'bf16'] as const)
      for (const interleaved of [true, false])
        for (const c of cases)
          it(`rope ${dtype} ${JSON.stringify(c.shape)} offset ${c.offset} interleaved=${interleaved} (seed ${r.seed})`, async () => {
            const T = c.shape[0], P = c.tables.cos.shape[0];
            const n = c.shape.reduce((a, b) => a * b, 1);
            // Mostly N(0, 4), some large and tiny magnitudes, a few signed zeros.
            const xs = Float32Array.from({ length: n }, (_, i) => roundTo(dtype, i % 41 === 7 ? [-0, 3e4, -1e-30, 0][i % 4] : r.normal() * 2));
            const pos = Int32Array.from({ length: T }, (_, i) => (i === 0 ? P - 1 : i === 1 ? 0 : r.int(0, P)));
            const run = async (d: string) => {
              using x = tensor(xs, { shape: c.shape, dtype, device: d });
              using positions = tensor(pos, { device: d });
              using cos = await onDevice(c.tables.cos, d);
              using sin = await onDevice(c.tables.sin, d);
              return ops.rope(x, positions, cos, sin, { offset: c.offset, interleaved });
            };
            using a = await run('cpu');
            using b = await run(device);
            await expectSameBytes([['rope', a, b]]);
          });

    it('rope: a position outside the tables fails at the next sync point, naming the op and the value', async () => {
      using x = tensor(r.floats(3 * 8), { shape: [3, 8], device });
      using positions = tensor(new Int32Array([1, 40, 2]), { device });
      using cos = await onDevice(small.cos, device);
      using sin = await onDevice(small.sin, device);
      using y = ops.rope(x, positions, cos, sin, { interleaved: true });
      await expect(y.read()).rejects.toThrow('rope: position 40 is out of range [0, 40)');
      // The device works on after the error.
      using good = tensor(new Int32Array([1, 39, 2]), { device });
      using z = ops.rope(x, good, cos, sin, { interleaved: true });
      expect((await z.toFloat32Array()).length).toBe(24);
    });

    for (const dtype of ['f32', 'bf16'] as const)
      for (const [rows, D] of [[3, 1], [2, 2], [5, 4], [4, 8], [3, 16], [9, 128], [2, 1024], [1, 32768]])
        it(`hadamard ${dtype} [${rows}, ${D}] (seed ${r.seed})`, async () => {
          const xs = Float32Array.from({ length: rows * D }, (_, i) => roundTo(dtype, i % 37 === 3 ? [-0, 1e4, -1e-20][i % 3] : r.normal()));
          const run = (d: string) => {
            using x = tensor(xs, { shape: [rows, D], dtype, device: d });
            return ops.hadamard(x);
          };
          using a = run('cpu');
          using b = run(device);
          await expectSameBytes([['hadamard', a, b]]);
        });
  });
}
