import { describe, expect, it } from 'vitest';

import { ops, synchronize, tensor } from '../../lib/index.js';
import { native } from '../../lib/runtime/native.js';
import { rng, roundTo, suiteDevices } from '../helpers.js';
import { missingPath, skipNote } from './cpu-paths.js';

const FLOATS = ['f32', 'bf16', 'f16', 'f8e4m3'] as const;

// The CPU runs every case on each SIMD path; a path the CPU lacks is reported skipped (its test
// named with the reason), never run on another path. avx512 is restored after each.
const CPU_PATHS = ['scalar', 'avx2', 'avx512'] as const;

async function onPath(path: (typeof CPU_PATHS)[number] | 'default', fn: () => Promise<void>): Promise<void> {
  if (path === 'default') return fn();
  await synchronize('cpu');
  const now = native().setSimdCap(path);
  try {
    if (now !== path) throw new Error(`the CPU runs ${now}, not ${path}`);
    await fn();
  } finally {
    await synchronize('cpu');
    native().setSimdCap('avx512');
  }
}

for (const { device, skip } of suiteDevices('cast')) {
  describe.skipIf(skip)(`cast on ${device}${skip ? ` (skipped: ${skip})` : ''}`, () => {
    const r = rng();
    for (const from of FLOATS) {
      for (const to of FLOATS) {
        for (const path of device === 'cpu' ? CPU_PATHS : (['default'] as const)) {
          const missing = path === 'default' ? false : missingPath(path);
          it.skipIf(missing)(`${from} -> ${to}${path === 'default' ? '' : ` on ${path}`} rounds to nearest even (seed ${r.seed})${skipNote(missing)}`, () =>
            onPath(path, async () => {
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
            }));
        }
      }
    }

    // CUDA moves whole groups of 8 with 128-bit loads and stores when both pointers are 16-byte
    // aligned (every case above: fresh tensors, n mostly not a multiple of 8, so the last n % 8 one by
    // one); a view from element 1 is not, and takes the element-by-element path: the same bits.
    it(`a view off 16-byte alignment (rows(1, …)) casts as the whole tensor does, every pair (seed ${r.seed})`, async () => {
      const n = 8 * r.int(2, 40) + 5;
      for (const from of FLOATS)
        for (const to of FLOATS) {
          const xs = new Float32Array(n).map(() => roundTo(from, r.normal() * 2 ** r.int(-12, 9)));
          using x = tensor(xs, { dtype: from, device });
          using view = x.rows(1, n - 1);
          using whole = ops.cast(x, to);
          using part = ops.cast(view, to);
          const [w, p] = [await whole.toFloat32Array(), await part.toFloat32Array()];
          expect({ from, to, same: p.every((v, i) => Object.is(v, w[i + 1])) }).toEqual({ from, to, same: true });
          expect(w.some((v) => v !== 0)).toBe(true);
        }
    });

    it.skipIf(device !== 'cpu')(`large casts (outputs of 16 MiB and more: non-temporal stores) give the bits of small ones, every path (seed ${r.seed})`, async () => {
      for (const [from, to, n] of [['bf16', 'f32', (17 << 20) / 4 + 13], ['f32', 'bf16', (17 << 20) / 2 + 5], ['f32', 'f8e4m3', (17 << 20) + 3]] as const) {
        using x = tensor(new Float32Array(n).map((_, i) => Math.sin(i) * 2 ** ((i % 17) - 8)), { dtype: from, device });
        // The same cast in pieces of 1 Mi elements (cached stores) is the reference.
        const parts: Uint8Array[] = [];
        for (let i = 0; i < n; i += 1 << 20) {
          using piece = x.rows(i, Math.min(1 << 20, n - i));
          using y = ops.cast(piece, to);
          parts.push(new Uint8Array((await y.read()).buffer));
        }
        const want = Buffer.concat(parts);
        for (const path of CPU_PATHS.filter((p) => !missingPath(p)))
          await onPath(path, async () => {
            using y = ops.cast(x, to);
            const got = Buffer.from((await y.read()).buffer);
            expect({ path, from, to, same: got.equals(want) }).toEqual({ path, from, to, same: true });
          });
      }
    });

    const PRESENT = CPU_PATHS.filter((p) => !missingPath(p));
    it.skipIf(device !== 'cpu')(`gives the same bits on every SIMD path, NaN payloads included${skipNote(PRESENT.length < CPU_PATHS.length && `this CPU lacks ${CPU_PATHS.filter((p) => missingPath(p)).join(', ')}`).replace('skipped', 'partly skipped')}`, async () => {
      // Every bf16/f16/f8 code, and f32 values around every rounding boundary, NaNs with payloads.
      const f32 = new Float32Array(6000).map(() => r.normal() * 2 ** r.int(-30, 20));
      const bits = new Uint32Array(f32.buffer);
      for (let i = 0; i < 64; ++i) bits[i] = (0x7f800001 + r.int(0, 0x7fffff)) | (i & 1 ? 0x80000000 : 0);
      const inputs: Record<string, Uint8Array | Uint16Array | Float32Array> = {
        f32,
        bf16: Uint16Array.from({ length: 65536 }, (_, i) => i),
        f16: Uint16Array.from({ length: 65536 }, (_, i) => i),
        f8e4m3: Uint8Array.from({ length: 256 }, (_, i) => i),
      };
      for (const from of FLOATS) {
        using x = tensor(inputs[from], { dtype: from });
        for (const to of FLOATS) {
          const results: Uint8Array[] = [];
          for (const path of PRESENT)
            await onPath(path, async () => {
              using y = ops.cast(x, to);
              results.push(new Uint8Array((await y.read()).buffer.slice(0)));
            });
          for (let k = 1; k < results.length; ++k) {
            const same = results[k].every((v, i) => v === results[0][i]);
            expect({ from, to, path: PRESENT[k], same }).toEqual({ from, to, path: PRESENT[k], same: true });
          }
        }
      }
    });

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
