/**
 * argmax on a CUDA device (the emulated cuda:0 in CI) against the CPU op, which its own suite checks
 * against a plain reference: the same ids, ties going to the lower id, NaN skipped, a row with no
 * value above -inf giving 0, a vocabulary of one and the model's 129280.
 */
import { describe, it } from 'vitest';

import { ops, tensor } from '../../lib/index.js';
import { expectSameBytes, rng, suiteDevices } from '../helpers.js';

for (const { device, skip } of suiteDevices('argmax')) {
  if (device === 'cpu') continue; // this file compares a device's kernels with the CPU's
  describe.skipIf(skip)(`argmax on ${device} gives the CPU's ids${skip ? ` (skipped: ${skip})` : ''}`, () => {
    const r = rng();
    for (const [B, V, how] of [[7, 1000, 'random'], [5, 300, 'ties'], [4, 257, 'specials'], [3, 1, 'one column'], [2, 129280, 'random']] as const)
      it(`argmax [${B}, ${V}] (${how}) (seed ${r.seed})`, async () => {
        const xs = new Float32Array(B * V);
        for (let b = 0; b < B; ++b)
          for (let v = 0; v < V; ++v) {
            const i = b * V + v;
            if (how === 'ties') xs[i] = r.int(0, 4); // the maximum repeats: the lowest id wins
            else if (how === 'specials')
              // Row 0 all -inf, row 1 all NaN (both give 0), row 2 NaN and -inf among values, row 3 +inf twice.
              xs[i] = b === 0 ? -Infinity : b === 1 ? NaN : b === 2 ? [NaN, -Infinity, r.normal()][v % 3] : v === 100 || v === 200 ? Infinity : r.normal();
            else xs[i] = r.normal() * 3;
          }
        const run = (d: string) => {
          using x = tensor(xs, { shape: [B, V], device: d });
          return ops.argmax(x);
        };
        using a = run('cpu');
        using b = run(device);
        await expectSameBytes([['ids', a, b]]);
      });
  });
}
