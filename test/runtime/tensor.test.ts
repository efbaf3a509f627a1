import { describe, expect, it } from 'vitest';

import { DisposedError, devices, memoryStats, ops, releaseCache, synchronize, tensor, zeros } from '../../lib/index.js';
import { native } from '../../lib/runtime/native.js';
import { rng, roundTo, suiteDevices } from '../helpers.js';

for (const { device, skip } of suiteDevices()) {
  describe.skipIf(skip)(`Tensor on ${device}${skip ? ` (skipped: ${skip})` : ''}`, () => {
    const r = rng();

    it(`round-trips every dtype (seed ${r.seed})`, async () => {
      const n = r.int(1, 1000);
      const f = r.floats(n);
      const u16 = new Uint16Array(n).map(() => r.int(0, 0x7f80));
      const u8 = new Uint8Array(n).map(() => r.int(0, 0x7f));
      const i32 = new Int32Array(n).map(() => r.int(-1e9, 1e9));
      const i64 = new BigInt64Array(n).map(() => BigInt(r.int(-1e9, 1e9)) * 1000003n);
      const cases = [
        [f, 'f32'], [u16, 'bf16'], [u16, 'f16'], [u8, 'f8e4m3'], [i32, 'i32'], [i64, 'i64'], [u8, 'u8'],
      ] as const;
      for (const [data, dtype] of cases) {
        using t = tensor(data, { dtype, device, shape: [n] });
        expect(t.dtype).toBe(dtype);
        expect(t.device).toBe(device === 'cuda' ? 'cuda:0' : device);
        expect(Array.from((await t.read()) as ArrayLike<number>)).toEqual(Array.from(data as ArrayLike<number>));
      }
    });

    it('decodes bf16, f16 and f8e4m3 exactly in toFloat32Array', async () => {
      const codes = new Uint8Array(256).map((_, i) => i);
      using t8 = tensor(codes, { dtype: 'f8e4m3', device });
      const got = await t8.toFloat32Array();
      for (let c = 0; c < 256; ++c) {
        const sign = c & 0x80 ? -1 : 1, e = (c >> 3) & 15, m = c & 7;
        const want = e === 15 && m === 7 ? NaN : e === 0 ? sign * m * 2 ** -9 : sign * (1 + m / 8) * 2 ** (e - 7);
        expect(Object.is(got[c], want) || (Number.isNaN(want) && Number.isNaN(got[c])) || got[c] === want).toBe(true);
      }
      const xs = r.floats(100, 10);
      using tb = tensor(xs, { dtype: 'bf16', device });
      expect(Array.from(await tb.toFloat32Array())).toEqual(Array.from(xs, (v) => roundTo('bf16', v)));
    });

    it('reads empty tensors', async () => {
      using e = zeros([0, 3], { device });
      expect(e.shape).toEqual([0, 3]);
      expect((await e.read()).length).toBe(0);
      expect((await e.toFloat32Array()).length).toBe(0);
    });

    it('makes views that share storage', async () => {
      const xs = r.floats(24);
      using t = tensor(xs, { shape: [4, 6], device });
      using v = t.reshape([2, -1]);
      expect(v.shape).toEqual([2, 12]);
      using rows = t.rows(1, 2);
      expect(rows.shape).toEqual([2, 6]);
      expect(Array.from((await rows.read()) as Float32Array)).toEqual(Array.from(xs.subarray(6, 18)));
      expect(() => t.reshape([5, 5])).toThrow(RangeError);
      expect(() => t.rows(3, 2)).toThrow(RangeError);
    });

    it('throws on any use after dispose, and dispose is safe twice', async () => {
      const t = tensor(r.floats(4), { device });
      t.dispose();
      t.dispose();
      expect(t.disposed).toBe(true);
      expect(() => t.reshape([4])).toThrow(DisposedError);
      await expect(t.read()).rejects.toThrow('the tensor was disposed');
      expect(() => ops.cast(t, 'bf16')).toThrow('cast: x: the tensor was disposed and cannot be used');
      {
        using u = tensor(r.floats(4), { device });
        expect(u.disposed).toBe(false);
      }
    });

    it('keeps storage alive for queued ops after dispose, and pools it', async () => {
      releaseCache(device);
      const before = memoryStats(device);
      const x = tensor(r.floats(1 << 16), { device });
      const y = ops.cast(x, 'bf16');
      x.dispose(); // the queued cast still reads x
      const got = await y.toFloat32Array();
      expect(got.length).toBe(1 << 16);
      y.dispose();
      await synchronize(device);
      const after = memoryStats(device);
      expect(after.inUseBytes).toBe(before.inUseBytes);
      expect(after.cachedBytes).toBeGreaterThan(0);
      expect(after.peakBytes).toBeGreaterThanOrEqual((1 << 16) * 6);
      releaseCache(device);
      expect(memoryStats(device).cachedBytes).toBe(0);
    });

    it('reports allocation failure with the bytes asked for and the device', () => {
      expect(() => zeros([1 << 20, 1 << 20, 1 << 10], { dtype: 'u8', device })).toThrow(
        /out of memory on (cpu|cuda:\d): cannot allocate 1125899906842624 bytes/,
      );
    });

    it('rejects bad creation arguments', () => {
      expect(() => tensor(new Float32Array(5), { shape: [2, 3], device })).toThrow(
        'tensor: data has 20 bytes but a f32 tensor of shape [2, 3] needs 24 bytes',
      );
      expect(() => zeros([2, -1], { device })).toThrow(TypeError);
      // @ts-expect-error not a dtype
      expect(() => tensor(new Uint8Array(2), { dtype: 'f64', device })).toThrow(TypeError);
      expect(() => zeros([2], { device: 'tpu' })).toThrow("Expected device 'cpu', 'cuda' or 'cuda:N' but received 'tpu'");
    });
  });
}

describe('views and host data (issue 11)', () => {
  const r = rng();

  it('a reshape whose element count overflows is refused, so no view reaches past its storage', async () => {
    using z = zeros([0]);
    // 2^62 × 4 wraps to 0 elements in 64 bits: it used to make a view that crashed toFloat32Array.
    expect(() => z.reshape([2 ** 62, 4])).toThrow(RangeError);
    expect(() => z.reshape([2 ** 62, 4])).toThrow('Tensor.reshape: dimension 0 (4611686018427387904) is too large');
    expect(() => z.reshape([2 ** 40, 2 ** 40, 0])).toThrow('Tensor.reshape: a shape of more than 2^56 elements cannot be a view of a tensor of shape [0]');
    expect(() => z.reshape([2 ** 30, 2 ** 30])).toThrow(RangeError);
    using e = z.reshape([0, 2 ** 20]);  // still 0 elements: a fine view
    expect(e.shape).toEqual([0, 2 ** 20]);
    expect((await e.toFloat32Array()).length).toBe(0);
    // Rows of a view stay inside the parent.
    const n = r.int(2, 50);
    const data = r.floats(n * 3);
    using t = tensor(data, { shape: [n, 3] });
    const s = r.int(0, n - 1);
    using v = t.rows(s, n - s).reshape([-1]);
    expect(Array.from(await v.toFloat32Array())).toEqual(Array.from(data.subarray(s * 3)));
    expect(() => t.rows(s, n - s + 1)).toThrow(RangeError);
    expect(() => v.reshape([(n - s) * 3 + 1])).toThrow(RangeError);
  });

  it('converts typed arrays by value or refuses them, naming what is accepted', async () => {
    const d = Float64Array.from({ length: r.int(1, 40) }, () => r.normal() * 100);
    using a = tensor(d, { dtype: 'f32' });
    expect(a.shape).toEqual([d.length]);
    expect(Array.from(await a.toFloat32Array())).toEqual(Array.from(d, Math.fround));
    using b = tensor(d);
    expect(b.dtype).toBe('f32');
    using c = tensor(d, { dtype: 'bf16' });
    expect(Array.from(await c.toFloat32Array())).toEqual(Array.from(d, (x) => roundTo('bf16', Math.fround(x))));
    using i = tensor([1, -2, 3], { dtype: 'i32' });
    expect(Array.from(await i.read<'i32'>())).toEqual([1, -2, 3]);
    expect(() => tensor(new Int32Array(4), { dtype: 'f32' })).toThrow(
      'tensor: expected for dtype f32 a Float32Array, a Float64Array or an array of numbers (converted by value), or a Uint8Array of raw bytes for data but received an object (Int32Array)',
    );
    expect(() => tensor(new Float32Array(4), { dtype: 'i32' })).toThrow(TypeError);
    expect(() => tensor(new DataView(new ArrayBuffer(8)), { dtype: 'f32' })).toThrow('received an object (DataView)');
    expect(() => tensor(new Uint16Array(4), { dtype: 'f32' })).toThrow(TypeError);
    expect(() => tensor([1.5], { dtype: 'i32' })).toThrow(TypeError);
    expect(() => tensor([256], { dtype: 'u8' })).toThrow(TypeError);
    // Raw bytes stay raw bytes for every dtype.
    using raw = tensor(new Uint8Array(new Float32Array([1.5, -2]).buffer), { dtype: 'f32', shape: [2] });
    expect(Array.from(await raw.toFloat32Array())).toEqual([1.5, -2]);
  });

  it('zeros fills on the CPU stream, after the ops queued before it', async () => {
    const n = r.int(1 << 20, 1 << 22);
    {
      using junk = tensor(new Float32Array(n).fill(7));
      await junk.read();
    }  // its block goes back to the pool and is handed to zeros below
    native().profile(true);
    using z = zeros([n]);
    const got = await z.toFloat32Array();
    expect(native().profile(false).zeros?.runs).toBe(1);
    expect(got.every((v) => v === 0)).toBe(true);
  });
});

describe('streams', () => {
  it('an error raised while running rejects the next read, with the op name, then clears', async () => {
    using x = tensor(new Float32Array([1, 2, 3]));
    native().ops.debugRaise(x.handle(), 'something broke');
    using y = ops.cast(x, 'bf16');
    await expect(y.read()).rejects.toThrow('debugRaise: something broke');
    expect(Array.from(await y.toFloat32Array())).toEqual([1, 2, 3]);
    native().ops.debugRaise(x.handle(), 'again');
    await expect(synchronize('cpu')).rejects.toThrow(RangeError);
    await synchronize('cpu');
  });

  it('lists devices with name and memory', () => {
    const list = devices();
    expect(list[0]).toMatchObject({ name: 'cpu', kind: 'cpu' });
    expect(list[0].memoryBytes).toBeGreaterThan(1e9);
    for (const d of list.slice(1)) expect(d.name).toMatch(/^cuda:\d+$/);
  });

  it('a missing CUDA device is a clear error', () => {
    expect(() => zeros([2], { device: 'cuda:7' })).toThrow(/device cuda:7 is not available/);
  });
});
