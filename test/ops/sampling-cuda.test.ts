/**
 * argmax, sample and sampleRows on a CUDA device (the emulated cuda:0 in CI) against the CPU ops,
 * which their own suite checks against plain references.
 *
 * argmax: the same ids, ties going to the lower id, NaN skipped, a row with no value above -inf giving
 * 0, a vocabulary of one and the model's 129280.
 *
 * sample / sampleRows: the same ids as the CPU for the same seeds on the same logits. The device
 * computes every weight with the CPU's bits and the topK set exactly; three f64 sums run in another
 * order than the CPU's (cuda/sampling.cuh), so the chosen id may differ only when the draw u · total
 * (or topP · total) falls between the CPU's and the device's value of some cumulative mass. Those
 * differ by the rounding of n <= 129280 positive f64 terms, |Δ_j| <= j · 2^-53 · total (a random walk
 * of ~√j · 2^-53 · total in practice), so P(a row differs) <= Σ_j |Δ_j| / total, about n^1.5 · 2^-53
 * ≈ 5e-9 per row at the full vocabulary (and <= n² · 2^-54 ≈ 1e-6 in the worst case): exact
 * equality is the test. Log-probabilities are f64 log-softmax values rounded to f32, so they may
 * differ by one f32 ulp; the N most likely ids are exact.
 */
import { describe, expect, it } from 'vitest';

import { ops, tensor, type Tensor } from '../../lib/index.js';
import type { RowSamplingOptions } from '../../lib/ops/sampling.js';
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

type Logits = 'normal' | 'ties' | 'specials';

/** [B, V] logits: N(0, scale²); or small integers (many ties, at the top too); or normal values with NaN and -inf among them. */
function makeLogits(r: ReturnType<typeof rng>, B: number, V: number, how: Logits, scale = 3): Float32Array {
  const xs = new Float32Array(B * V);
  for (let i = 0; i < xs.length; ++i)
    xs[i] = how === 'ties' ? r.int(0, 5) : how === 'specials' && r.int(0, 10) === 0 ? [NaN, -Infinity][r.int(0, 2)] : r.normal() * scale;
  return xs;
}

/** A seed anywhere in the safe-integer range (53 bits, either sign). */
const safeSeed = (r: ReturnType<typeof rng>): number => r.int(-(2 ** 31), 2 ** 31) * 2 ** 21 + r.int(0, 2 ** 21);

/** Row settings drawn at random: every option on or off, seeds and steps anywhere in the safe range. */
function randomRow(r: ReturnType<typeof rng>, V: number, temperature: number, historyLength: number): RowSamplingOptions {
  const pick = <T>(xs: readonly T[]): T => xs[r.int(0, xs.length)];
  const history = new Map<number, number>();
  while (history.size < Math.min(historyLength, V)) history.set(r.int(0, V), r.int(0, 4));
  return {
    temperature,
    topK: pick([0, 1, 50, V + 5, r.int(1, V + 1)]),
    topP: pick([1, 0.9, 0.5, 0.05]),
    minP: pick([0, 0.05, 0.3]),
    presencePenalty: pick([0, 0.5, -0.25]),
    frequencyPenalty: pick([0, 0.3]),
    repetitionPenalty: pick([1, 1.3, 0.8]),
    seed: safeSeed(r),
    step: r.int(0, 2 ** 30),
    history,
  };
}

/** Expects the device's log-probabilities within one f32 ulp of the CPU's (same -inf / NaN). */
async function expectLogprobsClose(what: string, cpu: Tensor, dev: Tensor): Promise<void> {
  expect(dev.shape, what).toEqual(cpu.shape);
  const [a, b] = [await cpu.read<'f32'>(), await dev.read<'f32'>()];
  for (let i = 0; i < a.length; ++i) {
    if (Object.is(a[i], b[i]) || (Number.isNaN(a[i]) && Number.isNaN(b[i]))) continue;
    // f64 values a few ulps apart, each rounded to f32: at most one f32 ulp apart.
    const ulp = 2 ** (Math.floor(Math.log2(Math.max(Math.abs(a[i]), 2 ** -126))) - 23);
    expect({ what, i, diff: Math.abs(a[i] - b[i]) <= ulp ? 'within 1 ulp' : b[i] }).toEqual({ what, i, diff: 'within 1 ulp' });
  }
}

for (const { device, skip } of suiteDevices('sample', 'sampleRows')) {
  if (device === 'cpu') continue;
  describe.skipIf(skip)(`sample and sampleRows on ${device} give the CPU's ids${skip ? ` (skipped: ${skip})` : ''}`, () => {
    const r = rng();

    const cases: [number, number, Logits, number, number, number][] = [
      // B, V, logits, temperature, topK, topP
      [3, 1, 'normal', 1, 0, 1],
      [8, 1001, 'normal', 1, 0, 1],
      [5, 1001, 'normal', 0.7, 50, 1],
      [4, 1001, 'normal', 1.3, 0, 0.9],
      [6, 999, 'ties', 1, 7, 0.5],
      [4, 333, 'specials', 0.9, 20, 0.8],
      [2, 129280, 'normal', 1, 0, 1],
      [2, 129280, 'normal', 0.6, 50, 0.95],
      [1, 129280, 'normal', 1, 1, 1],
      [3, 17, 'normal', 0, 0, 1],
    ];
    for (const [B, V, how, temperature, topK, topP] of cases)
      it(`sample [${B}, ${V}] (${how}), T = ${temperature}, topK = ${topK}, topP = ${topP} (seed ${r.seed})`, async () => {
        const xs = makeLogits(r, B, V, how);
        for (let rep = 0; rep < 3; ++rep) {
          const seed = safeSeed(r);
          const run = (d: string) => {
            using x = tensor(xs, { shape: [B, V], device: d });
            return ops.sample(x, { temperature, topK, topP, seed });
          };
          using a = run('cpu');
          using b = run(device);
          await expectSameBytes([[`ids, seed ${seed}`, a, b]]);
        }
      });

    for (const [B, V, how, temperature, historyLength, topN] of [
      [4, 1, 'normal', 1, 1, 3],
      [8, 1001, 'normal', 1, 40, 5],
      [6, 777, 'ties', 0.8, 10, 8],
      [5, 500, 'specials', 1.2, 30, 4],
      [7, 2049, 'normal', 0, 60, 0],
      [3, 129280, 'normal', 1, 500, 20],
      [2, 129280, 'normal', 0, 100, -1],
    ] as [number, number, Logits, number, number, number][])
      it(`sampleRows [${B}, ${V}] (${how}), T = ${temperature}, histories of ${historyLength}, topLogprobs ${topN} (seed ${r.seed})`, async () => {
        const xs = makeLogits(r, B, V, how);
        for (let rep = 0; rep < 2; ++rep) {
          const rows = Array.from({ length: B }, (_, b) => randomRow(r, V, b === 0 ? 0 : temperature, historyLength));
          const run = (d: string) => {
            using x = tensor(xs, { shape: [B, V], device: d });
            return ops.sampleRows(x, rows, topN);
          };
          const a = run('cpu'), b = run(device);
          try {
            const settings = JSON.stringify(rows.map(({ history, ...o }) => ({ ...o, history: history?.size })));
            await expectSameBytes([[`ids, rows ${settings}`, a.ids, b.ids]]);
            if (topN >= 0) {
              await expectSameBytes([['topIds', a.topIds!, b.topIds!]]);
              await expectLogprobsClose('logprobs', a.logprobs!, b.logprobs!);
            }
          } finally {
            for (const t of [a.ids, a.logprobs, a.topIds, b.ids, b.logprobs, b.topIds]) t?.dispose();
          }
        }
      });

    it(`gives the same ids on every run, and a row's id does not depend on its batch (seed ${r.seed})`, async () => {
      const B = 6, V = 4001;
      const xs = makeLogits(r, B, V, 'normal', 2);
      const rows = Array.from({ length: B }, () => randomRow(r, V, 1, 20));
      using x = tensor(xs, { shape: [B, V], device });
      const first = ops.sampleRows(x, rows, 3), second = ops.sampleRows(x, rows, 3);
      try {
        await expectSameBytes([['ids', first.ids, second.ids], ['topIds', first.topIds!, second.topIds!], ['logprobs', first.logprobs!, second.logprobs!]]);
        const ids = await first.ids.read<'i32'>();
        for (const b of [0, B - 1]) {
          using one = tensor(xs.subarray(b * V, (b + 1) * V), { shape: [1, V], device });
          using alone = ops.sampleRows(one, [rows[b]]).ids;
          expect((await alone.read<'i32'>())[0]).toBe(ids[b]);
        }
      } finally {
        for (const t of [first.ids, first.logprobs, first.topIds, second.ids, second.logprobs, second.topIds]) t?.dispose();
      }
    });

    it('rejects bad arguments with the CPU errors, before launching', () => {
      using x = tensor(new Float32Array(8), { shape: [2, 4], device });
      expect(() => ops.sample(x, { temperature: -1, seed: 1 })).toThrow(/sample: temperature must be >= 0/);
      expect(() => ops.sample(x, { temperature: 1, topP: 0, seed: 1 })).toThrow(/sample: topP must be in \(0, 1\]/);
      expect(() => ops.sampleRows(x, [{ temperature: 1, history: new Map([[4, 1]]) }, { temperature: 0 }])).toThrow(/historyIds\[0\] is 4, outside \[0, 4\)/);
      expect(() => ops.sampleRows(x, [{ temperature: 1, minP: 2 }, { temperature: 0 }])).toThrow(/row 0: minP must be in \[0, 1\]/);
      expect(() => ops.sampleRows(x, [{ temperature: 1 }, { temperature: 0 }], 1025)).toThrow(/topLogprobs/);
    });
  });
}
