/**
 * Sequences across 64-token cache blocks (issue 11: "nothing crosses a 64-token block"), as
 * consistency tests on tiny-dense (DSA top-k 256 selects every key, so no choice depends on the
 * batch's shape; YaRN positions past original_max_position_embeddings, 64, are reached):
 * - the rows of a long prefill (several blocks) equal those of a short prefill of its prefix,
 * - a prefill cut into chunks at and across block edges equals the whole prefill, row by row,
 * - batches whose sequences sit in different blocks equal each sequence alone, decode across an
 *   edge included.
 * A slot that always used block 0, or the wrong block of the table, fails each of these.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadModel, type Model, ops } from '../../lib/index.js';
import { GOLDEN } from '../golden-dir.js';
import { relL2, rng } from '../helpers.js';

const V = 512;
/** Rows that should be the same computation: f32 activations and batch-invariant GEMMs
 *  (ops.setBatchInvariant), so a row's products do not depend on how many rows share them and no
 *  FP8 rounding flip can come from summation order; what is left differs by summation order in
 *  attention at most. */
const SAME = 1e-5;

describe('sequences across cache blocks (tiny-dense, f32)', () => {
  const r = rng();
  let model: Model;
  beforeAll(async () => {
    ops.setBatchInvariant(true);
    model = await loadModel(join(GOLDEN, 'tiny-dense'), { activations: 'f32', maxSequences: 4, maxContext: 256 });
  });
  afterAll(async () => {
    ops.setBatchInvariant(false);
    await model?.dispose();
  });

  const tokens = (n: number) => Array.from({ length: n }, () => r.int(0, V - 1));
  const row = (all: Float32Array, i: number) => all.subarray(i * V, (i + 1) * V);
  /** The worst row of `got` against `want` rows [from, from + rows). */
  const worst = (got: Float32Array, want: Float32Array, from: number) => {
    let w = { row: -1, relL2: 0 };
    for (let i = 0; i < got.length / V; ++i) {
      const e = relL2(row(got, i), row(want, from + i));
      if (!(e <= w.relL2)) w = { row: from + i, relL2: e };
    }
    return w;
  };
  const prefillAll = async (toks: number[]) => {
    using s = model.createSequence();
    return (await model.forward([{ sequence: s, tokens: toks }], { allPositions: true }))[0];
  };

  it(`the rows of a prefill over three blocks equal a prefill of their prefix (seed ${r.seed})`, async () => {
    const toks = tokens(r.int(130, 190));
    const long = await prefillAll(toks);
    for (const n of [r.int(2, 63), r.int(65, 127)]) {
      const short = await prefillAll(toks.slice(0, n));
      const w = worst(short, long, 0);
      expect({ n, ...w, ok: w.relL2 <= SAME }).toMatchObject({ n, ok: true });
    }
  });

  it(`a prefill in chunks cut at and across block edges equals the whole, row by row (seed ${r.seed})`, async () => {
    const toks = tokens(r.int(140, 200));
    const whole = await prefillAll(toks);
    // Every chunk holds at least 2 tokens: one token runs the decode form, not a prefill.
    const cuts: number[] = [];
    for (const c of [64, 128, r.int(2, 62), r.int(66, 126), r.int(130, toks.length - 2)].sort((a, b) => a - b))
      if (c - (cuts.at(-1) ?? 0) >= 2 && toks.length - c >= 2) cuts.push(c);
    using s = model.createSequence();
    let at = 0;
    for (const end of [...cuts, toks.length]) {
      const [got] = await model.forward([{ sequence: s, tokens: toks.slice(at, end) }], { allPositions: true });
      const w = worst(got, whole, at);
      expect({ chunk: [at, end], ...w, ok: w.relL2 <= SAME }).toMatchObject({ chunk: [at, end], ok: true });
      at = end;
    }
    expect(s.length).toBe(toks.length);
    expect(s.blocks.length).toBe(Math.ceil(toks.length / 64));
  });

  it(`batches whose sequences sit in different blocks, decoding across an edge, equal each alone (seed ${r.seed})`, async () => {
    // Sequence a ends just before a block edge, b just before the second; c pushes their blocks apart.
    const pa = tokens(r.int(60, 63)), pb = tokens(r.int(123, 127)), steps = 6;  // both cross an edge while decoding
    const next = [tokens(steps), tokens(steps)];
    const alone = async (prompt: number[], then: number[]) => {
      using s = model.createSequence();
      const out = [(await model.forward([{ sequence: s, tokens: prompt }]))[0]];
      for (const t of then) out.push((await model.forward([{ sequence: s, tokens: [t] }]))[0]);
      return out;
    };
    const wantA = await alone(pa, next[0]), wantB = await alone(pb, next[1]);
    using c = model.createSequence();
    await model.forward([{ sequence: c, tokens: tokens(70) }]);
    using a = model.createSequence();
    using b = model.createSequence();
    const [ga, gb] = await model.forward([{ sequence: a, tokens: pa }, { sequence: b, tokens: pb }]);
    const got = [[ga], [gb]];
    for (let k = 0; k < steps; ++k) {
      const [x, y] = await model.forward([{ sequence: a, tokens: [next[0][k]] }, { sequence: b, tokens: [next[1][k]] }]);
      got[0].push(x);
      got[1].push(y);
    }
    expect(new Set([...a.blocks, ...b.blocks, ...c.blocks]).size).toBe(a.blocks.length + b.blocks.length + c.blocks.length);
    expect(a.blocks.length).toBe(2);
    expect(b.blocks.length).toBe(3);
    for (let k = 0; k <= steps; ++k) {
      const ea = relL2(got[0][k], wantA[k]), eb = relL2(got[1][k], wantB[k]);
      expect({ seq: 'a', step: k, relL2: ea, ok: ea <= SAME }).toMatchObject({ seq: 'a', step: k, ok: true });
      expect({ seq: 'b', step: k, relL2: eb, ok: eb <= SAME }).toMatchObject({ seq: 'b', step: k, ok: true });
    }
  });
});
