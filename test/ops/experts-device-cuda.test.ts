/**
 * The model's routed experts and SwiGLU MLP load their FP8 weights two ways: on the CPU as weight
 * sets over the checkpoint's tensors (nothing copied; gemm-inplace.test.ts proves those products equal
 * the stacked ones bit for bit), on a device stacked into `[E, 2I, dim]` / `[2I, dim]` copies. Here
 * the device's stacked form must compute what the CPU's in-place form does, from the same tensors.
 *
 * Bound: f32 activations; the device's FP8 GEMMs sum in another order (relative error ~1e-7), which
 * can flip an FP8 rounding of the second GEMM's input: one element moves by at most one E4M3 step
 * (2⁻³ of itself), which moves a row of 256 outputs by well under 1e-2 relative L2. A stacking error
 * (experts in the wrong order, gate and up swapped, scales misaligned) moves it by order 1.
 */
import { describe, expect, it } from 'vitest';

import { tensor, type Tensor } from '../../lib/index.js';
import type { ModelConfig } from '../../lib/model/config.js';
import { Experts } from '../../lib/model/experts.js';
import type { WeightSource } from '../../lib/model/linear.js';
import { MLP } from '../../lib/model/mlp.js';
import { relL2, rng, type Rng, suiteDevices } from '../helpers.js';

const BOUND = 1e-2;

/** Random checkpoint tensors (FP8 codes without NaN, f32 scales) by name, handed out on `device`. */
class RandomWeights {
  readonly host = new Map<string, { data: Uint8Array | Float32Array; shape: number[] }>();
  constructor(readonly r: Rng) {}
  /** Adds `<prefix>.weight` [rows, K] and its scales. */
  fp8(prefix: string, rows: number, K: number): void {
    const codes = Uint8Array.from({ length: rows * K }, () => {
      const c = this.r.int(0, 256);
      return (c & 0x7f) === 0x7f ? c - 1 : c;
    });
    this.host.set(`${prefix}.weight`, { data: codes, shape: [rows, K] });
    const scales = Float32Array.from({ length: Math.ceil(rows / 128) * (K / 128) }, () => 2 ** this.r.int(-9, -5));
    this.host.set(`${prefix}.weight_scale_inv`, { data: scales, shape: [Math.ceil(rows / 128), K / 128] });
  }
  on(device: string): WeightSource {
    return {
      has: (name) => this.host.has(name),
      tensor: (name) => {
        const t = this.host.get(name);
        if (!t) throw new Error(`no tensor ${name}`);
        return tensor(t.data, { shape: t.shape, dtype: t.data instanceof Uint8Array ? 'f8e4m3' : 'f32', device });
      },
    };
  }
}

for (const { device, skip } of suiteDevices('fp8Gemm', 'groupedFp8Gemm', 'concat', 'moeDispatch', 'gatherRows', 'swiglu', 'actQuant')) {
  if (device === 'cpu') continue; // this file compares the device's stacked form with the CPU's
  describe.skipIf(skip)(`experts and MLP stacked on ${device} equal the CPU's in-place weights${skip ? ` (skipped: ${skip})` : ''}`, () => {
    const r = rng();
    const [dim, inter, moeInter, E, T, k] = [256, 256, 128, 6, 10, 2];
    const cfg = { nRoutedExperts: E, scaleFmt: null } as unknown as ModelConfig;
    const weights = new RandomWeights(r);
    for (const proj of ['gate_proj', 'up_proj']) weights.fp8(`mlp.${proj}`, inter, dim);
    weights.fp8('mlp.down_proj', dim, inter);
    for (let e = 0; e < E; ++e) {
      for (const proj of ['gate_proj', 'up_proj']) weights.fp8(`mlp.experts.${e}.${proj}`, moeInter, dim);
      weights.fp8(`mlp.experts.${e}.down_proj`, dim, moeInter);
    }
    const xs = Float32Array.from({ length: T * dim }, () => r.uniform(-2, 2));
    // Two distinct experts a token (k = 2).
    const ids = new Int32Array(T * k);
    for (let t = 0; t < T; ++t) {
      ids[t * k] = r.int(0, E);
      ids[t * k + 1] = (ids[t * k] + r.int(1, E)) % E;
    }

    /** Rows of [rows, dim] `got` against `want`: the worst relative L2. */
    function worstRow(got: Float32Array, want: Float32Array, rowOf: (i: number) => [number, number]): { row: number; relL2: number } {
      let w = { row: -1, relL2: 0 };
      for (let i = 0; i < want.length / dim; ++i) {
        const [g, x] = rowOf(i);
        const e = relL2(got.subarray(g * dim, (g + 1) * dim), want.subarray(x * dim, (x + 1) * dim));
        if (!(e <= w.relL2)) w = { row: i, relL2: e };
      }
      return w;
    }

    it(`MLP: gate and up stacked on ${device} (seed ${r.seed})`, async () => {
      const run = async (dev: string) => {
        const mlp = new MLP(weights.on(dev), 'mlp', cfg);
        try {
          using x = tensor(xs, { shape: [T, dim], device: dev });
          using y = mlp.forward(x, 'f32');
          return await y.toFloat32Array();
        } finally {
          mlp.dispose();
        }
      };
      const [want, got] = [await run('cpu'), await run(device)];
      const w = worstRow(got, want, (i) => [i, i]);
      expect({ ...w, ok: w.relL2 <= BOUND }).toMatchObject({ ok: true });
    });

    it(`routed experts: stacked [E, 2I, dim] and [E, dim, I] on ${device} (seed ${r.seed})`, async () => {
      const run = async (dev: string): Promise<{ out: Float32Array; rowOfSlot: Int32Array }> => {
        const experts = new Experts(weights.on(dev), 'mlp', cfg);
        try {
          using x = tensor(xs, { shape: [T, dim], device: dev });
          using idt = tensor(ids, { shape: [T, k], dtype: 'i32', device: dev });
          const rows = experts.forward(x, idt, 'f32');
          using out: Tensor = rows.out;
          using rowOfSlot: Tensor = rows.rowOfSlot;
          return { out: await out.toFloat32Array(), rowOfSlot: (await rowOfSlot.read<'i32'>()) as Int32Array };
        } finally {
          experts.dispose();
        }
      };
      const [want, got] = [await run('cpu'), await run(device)];
      // Rows are in expert order on both; within an expert the device may order them otherwise.
      const w = worstRow(got.out, want.out, (slot) => [got.rowOfSlot[slot], want.rowOfSlot[slot]]);
      expect({ ...w, ok: w.relL2 <= BOUND }).toMatchObject({ ok: true });
    });
  });
}
