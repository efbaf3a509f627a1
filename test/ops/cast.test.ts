import { describe, expect, it } from 'vitest';

import { ops, tensor } from '../../lib/index.js';
import { rng, roundTo, suiteDevices } from '../helpers.js';

const FLOATS = ['f32', 'bf16', 'f16', 'f8e4m3'] as const;

for (const { device, skip } of suiteDevices()) {
  describe.skipIf(skip)(`cast on ${device}${skip ? ` (skipped: ${skip})` : ''}`, () => {
    const r = rng();
    for (const from of FLOATS) {
      for (const to of FLOATS) {
        it(`${from} -> ${to} rounds to nearest even (seed ${r.seed})`, async () => {
          const n = r.int(1, 3000);
          // Wide range: subnormals of every format, ties, saturation of f8.
          const xs = new Float32Array(n).map(() => roundTo(from, r.normal() * 2 ** r.int(-12, 9)));
          // Exact ties between neighbouring values of the target format.
          if (to !== 'f32') xs[0] = roundTo(from, 1 + 2 ** -8);
          using x = tensor(xs, { dtype: from, device });
          using y = ops.cast(x, to);
          const got = await y.toFloat32Array();
          for (let i = 0; i < n; ++i) {
            const want = roundTo(to, xs[i]);
            if (got[i] !== want) expect({ i, x: xs[i], got: got[i], want }).toEqual({ i, x: xs[i], got: want, want });
          }
          expect(y.dtype).toBe(to);
        });
      }
    }

    it('keeps the shape and rejects integer dtypes', () => {
      using x = tensor(r.floats(6), { shape: [2, 3], device });
      using y = ops.cast(x, 'bf16');
      expect(y.shape).toEqual([2, 3]);
      expect(() => ops.cast(x, 'i32')).toThrow('cast: dtype must be f32, bf16, f16 or f8e4m3 but received i32');
      using i = tensor(new Int32Array(3), { device });
      expect(() => ops.cast(i, 'f32')).toThrow('cast: x must have dtype f32, bf16, f16 or f8e4m3 but received i32');
    });
  });
}
