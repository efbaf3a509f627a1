import { describe, expect, it } from 'vitest';

import { ops, tensor } from '../../lib/index.js';
import { rng, roundTo } from '../helpers.js';
import { expectSameAsPieces, onEveryPath } from './cpu-paths.js';


function expectExact(got: Float32Array, want: ArrayLike<number>, what: string): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < got.length; ++i)
    if (!Object.is(got[i], want[i])) expect({ what, i, got: got[i] }).toEqual({ what, i, got: want[i] });
}

const DTYPES = ['f32', 'bf16'] as const;

describe('add / mul on cpu', () => {
  const r = rng();
  const shapes: number[][] = [[1], [7], [1, 33], [3, 17], [2, 3, 129], [4, 1000]];
  for (const [name, f, fn] of [
    ['add', ops.add, (a: number, b: number) => a + b],
    ['mul', ops.mul, (a: number, b: number) => a * b],
  ] as const) {
    for (const aType of DTYPES) {
      for (const bType of DTYPES) {
        for (const shape of shapes) {
          for (const broadcast of [false, true]) {
            it(`${name} ${aType} + ${bType}${broadcast ? ' [D] broadcast' : ''} ${JSON.stringify(shape)} is exact, every path (seed ${r.seed})`, async () => {
              const n = shape.reduce((x, y) => x * y, 1);
              const D = shape[shape.length - 1];
              const as = r.floats(n, 4).map((v) => roundTo(aType, v));
              const bs = r.floats(broadcast ? D : n, 4).map((v) => roundTo(bType, v));
              using a = tensor(as, { shape, dtype: aType });
              using b = tensor(bs, { shape: broadcast ? [D] : shape, dtype: bType });
              const got = await onEveryPath(() => f(a, b));
              // f32 a ∘ b computed in float64 and rounded once to f32 is the f32 result exactly.
              const want = Float64Array.from(as, (v, i) => roundTo(aType, Math.fround(fn(v, bs[broadcast ? i % D : i]))));
              expectExact(got, want, name);
            });
          }
        }
      }
    }
  }

  it('rejects bad arguments with the op, argument, expected and received', () => {
    using a = tensor(r.floats(6), { shape: [2, 3] });
    using b2 = tensor(r.floats(2));
    using bi = tensor(new Int32Array(6), { shape: [2, 3] });
    using a16 = tensor(r.floats(6), { shape: [2, 3], dtype: 'f16' });
    expect(() => ops.add(a, b2)).toThrow(RangeError);
    expect(() => ops.add(a, b2)).toThrow('add: b must have the shape of a [2, 3] or [3] but received [2]');
    expect(() => ops.mul(a, bi)).toThrow('mul: b must have dtype f32 or bf16 but received i32');
    expect(() => ops.mul(a16, a)).toThrow('mul: a must have dtype f32 or bf16 but received f16');
    // @ts-expect-error a number is not a tensor
    expect(() => ops.add(a, 1)).toThrow('add: expected a Tensor for b but received 1 of type number');
  });
});

describe('silu / scale on cpu', () => {
  const r = rng();
  for (const dtype of DTYPES) {
    for (const n of [1, 7, 16, 33, 1000, 4099]) {
      it(`silu ${dtype} [${n}] is within f32 rounding of float64, same bits on every path (seed ${r.seed})`, async () => {
        const xs = r.floats(n, 6).map((v) => roundTo(dtype, v));
        // Saturation ends: large |x| where e^-x overflows or vanishes.
        if (n > 8) xs.set([roundTo(dtype, 100), roundTo(dtype, -100), 0, -0, roundTo(dtype, 88.5), roundTo(dtype, -90)], 0);
        using x = tensor(xs, { dtype });
        const got = await onEveryPath(() => ops.silu(x));
        for (let i = 0; i < n; ++i) {
          const want = xs[i] / (1 + Math.exp(-xs[i]));
          // f32: a few ulp of exp and the division; bf16: one rounding (half an ulp) on top.
          // Below −88.4, e^−x overflows f32 and the quotient is −0 (the true value is under 1e-36).
          const tol = Math.abs(want) * (dtype === 'f32' ? 6e-7 : 2 ** -8 + 6e-7) + 1e-36;
          if (!(Math.abs(got[i] - want) <= tol)) expect({ i, x: xs[i], got: got[i], want, tol }).toBe('within tol');
        }
      });

      it(`scale ${dtype} [${n}] is exact (seed ${r.seed})`, async () => {
        const xs = r.floats(n, 3).map((v) => roundTo(dtype, v));
        const s = r.normal() * 10;
        using x = tensor(xs, { dtype });
        const got = await onEveryPath(() => ops.scale(x, s));
        expectExact(got, Float64Array.from(xs, (v) => roundTo(dtype, Math.fround(v * Math.fround(s)))), 'scale');
      });
    }
  }

  it('rejects bad arguments with the op, argument, expected and received', () => {
    using x = tensor(r.floats(4));
    using xi = tensor(new Int32Array(4));
    expect(() => ops.silu(xi)).toThrow('silu: x must have dtype f32 or bf16 but received i32');
    expect(() => ops.scale(x, Infinity)).toThrow('scale: expected a finite number for s but received inf');
    // @ts-expect-error a string is not a number
    expect(() => ops.scale(x, '2')).toThrow("scale: expected a number for s but received '2' of type string");
  });
});

/** float64 model of a row-major tensor: element at a multi-index. */
function strides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; --i) s[i] = s[i + 1] * shape[i + 1];
  return s;
}
function unravel(i: number, shape: readonly number[]): number[] {
  const st = strides(shape);
  return shape.map((_, k) => Math.floor(i / st[k]) % shape[k]);
}
function ravel(idx: number[], shape: readonly number[]): number {
  const st = strides(shape);
  return idx.reduce((acc, v, k) => acc + v * st[k], 0);
}

describe('slice / concat on cpu', () => {
  const r = rng();
  const shapes: number[][] = [[9], [1, 5], [4, 3, 7], [2, 1, 3, 5]];
  for (const shape of shapes) {
    for (let dim = -shape.length; dim < shape.length; ++dim) {
      for (const dtype of ['f32', 'bf16', 'i32', 'f8e4m3'] as const) {
        it(`slice ${dtype} ${JSON.stringify(shape)} along ${dim} copies exactly (seed ${r.seed})`, async () => {
          const d = dim < 0 ? dim + shape.length : dim;
          const n = shape.reduce((a, b) => a * b, 1);
          const data = dtype === 'i32' ? Int32Array.from({ length: n }, () => r.int(-1000, 1000)) : r.floats(n).map((v) => roundTo(dtype, v));
          using x = tensor(data, { shape, dtype });
          const start = r.int(0, shape[d] + 1);
          const length = r.int(0, shape[d] - start + 1);
          using y = ops.slice(x, dim, start, length);
          const outShape = shape.map((s, k) => (k === d ? length : s));
          expect(y.shape).toEqual(outShape);
          expect(y.dtype).toBe(dtype);
          // (Reading back an empty tensor is not supported by Tensor.read yet.)
          if (length === 0 || n === 0) return;
          const got = dtype === 'i32' ? await y.read<'i32'>() : await y.toFloat32Array();
          const want = Array.from({ length: got.length }, (_, i) => {
            const idx = unravel(i, outShape);
            idx[d] += start;
            return data[ravel(idx, shape)];
          });
          expectExact(Float32Array.from(got), want, 'slice');
        });
      }

      it(`concat of 3 along ${dim} of ${JSON.stringify(shape)} copies exactly (seed ${r.seed})`, async () => {
        const d = dim < 0 ? dim + shape.length : dim;
        const sizes = [r.int(0, 4), r.int(1, 4), r.int(0, 3)];
        const parts = sizes.map((s) => {
          const sh = shape.map((v, k) => (k === d ? s : v));
          const data = r.floats(sh.reduce((a, b) => a * b, 1)).map((v) => roundTo('bf16', v));
          return { sh, data, t: tensor(data, { shape: sh, dtype: 'bf16' }) };
        });
        try {
          using y = ops.concat(parts.map((p) => p.t), dim);
          const outShape = shape.map((v, k) => (k === d ? sizes[0] + sizes[1] + sizes[2] : v));
          expect(y.shape).toEqual(outShape);
          const got = await y.toFloat32Array();
          const want = Array.from({ length: got.length }, (_, i) => {
            const idx = unravel(i, outShape);
            let k = 0;
            while (idx[d] >= sizes[k]) idx[d] -= sizes[k++];
            return parts[k].data[ravel(idx, parts[k].sh)];
          });
          expectExact(got, want, 'concat');
        } finally {
          for (const p of parts) p.t.dispose();
        }
      });
    }
  }

  it('copies a large row on every thread', async () => {
    const xs = r.floats(3 * 300000);
    using x = tensor(xs, { shape: [3, 300000] });
    using y = ops.slice(x, 0, 1, 2);
    using z = ops.concat([x, y], 0);
    expectExact(await y.toFloat32Array(), xs.subarray(300000), 'slice');
    const got = await z.toFloat32Array();
    expectExact(got.subarray(0, xs.length), xs, 'concat');
    expectExact(got.subarray(xs.length), xs.subarray(300000), 'concat');
  });

  it('rejects bad arguments with the op, argument, expected and received', () => {
    using x = tensor(r.floats(6), { shape: [2, 3] });
    using y = tensor(r.floats(4), { shape: [2, 2] });
    using yb = tensor(r.floats(6), { shape: [2, 3], dtype: 'bf16' });
    using v = tensor(r.floats(3));
    expect(() => ops.slice(x, 2, 0, 1)).toThrow('slice: expected an integer between -2 and 1 for dim but received 2');
    expect(() => ops.slice(x, -1, 1, 3)).toThrow('slice: expected an integer between 0 and 2 for length but received 3');
    expect(() => ops.slice(x, 0, 3, 0)).toThrow('slice: expected an integer between 0 and 2 for start but received 3');
    expect(() => ops.concat([x, y], 0)).toThrow('concat: tensors[1] must match tensors[0] [2, 3] outside dimension 0 but received [2, 2]');
    expect(() => ops.concat([x, v], 1)).toThrow('concat: tensors[1] must match tensors[0] [2, 3] outside dimension 1 but received [3]');
    expect(() => ops.concat([x, yb], 0)).toThrow('concat: tensors[1] must have dtype f32 (as tensors[0]) but received bf16');
    expect(() => ops.concat([], 0)).toThrow('concat: expected a non-empty array of Tensors for tensors but received an array of length 0');
    // @ts-expect-error a number is not a tensor
    expect(() => ops.concat([x, 5], 0)).toThrow('concat: expected a Tensor for tensors[1] but received 5 of type number');
  });
});

describe('element-wise ops with large outputs (16 MiB and more: non-temporal stores)', () => {
  const r = rng();
  it(`silu, scale, add and mul (broadcast) give the bytes of small runs on every path (seed ${r.seed})`, async () => {
    const [rows, dim] = [1201, 3501];
    using xb = tensor(r.floats(2 * rows * dim), { shape: [2 * rows, dim], dtype: 'bf16' });
    using xf = tensor(r.floats(rows * dim), { shape: [rows, dim] });
    using b = tensor(r.floats(dim), { dtype: 'bf16' });
    await expectSameAsPieces(2 * rows, 300, (s, c) => {
      using x = xb.rows(s, c);
      return [ops.silu(x), ops.scale(x, 1.7)];
    });
    await expectSameAsPieces(rows, 300, (s, c) => {
      using x = xf.rows(s, c);
      return [ops.add(x, b), ops.mul(x, b), ops.add(x, x)];
    });
  });

  it(`slice and concat copy large blocks exactly (seed ${r.seed})`, async () => {
    const [rows, dim] = [1100, 4099];
    const data = Int32Array.from({ length: rows * dim }, (_, i) => i ^ 0x5a5a);
    using x = tensor(data, { shape: [rows, dim] });
    using y = ops.slice(x, 1, 3, dim - 5);  // rows of 4094 i32 at an unaligned source offset
    const got = await y.read<'i32'>();
    for (let i = 0; i < rows; ++i)
      if (!Buffer.from(got.buffer, i * (dim - 5) * 4, (dim - 5) * 4).equals(Buffer.from(data.buffer, (i * dim + 3) * 4, (dim - 5) * 4)))
        expect({ row: i, same: false }).toEqual({ row: i, same: true });
    using z = ops.concat([x, y], 1);
    const gz = await z.read<'i32'>();
    const w = 2 * dim - 5;
    for (let i = 0; i < rows; ++i) {
      const row = Buffer.from(gz.buffer, i * w * 4, w * 4);
      const want = Buffer.concat([Buffer.from(data.buffer, i * dim * 4, dim * 4), Buffer.from(got.buffer, i * (dim - 5) * 4, (dim - 5) * 4)]);
      if (!row.equals(want)) expect({ row: i, same: false }).toEqual({ row: i, same: true });
    }
  });
});
