import { expect, it } from 'vitest';

import { ops, tensor } from '../../lib/index.js';
import { rng } from '../helpers.js';

it('CPU work on the stream never blocks the event loop', async () => {
  const r = rng();
  const [rows, dim] = [2048, 7168];
  using x = tensor(r.floats(rows * dim), { shape: [rows, dim] });
  using w = tensor(r.floats(dim));
  let last = performance.now();
  let maxGapMs = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    maxGapMs = Math.max(maxGapMs, now - last);
    last = now;
  }, 5);
  const t0 = performance.now();
  let ran = 0;
  // Queue batches of work until at least 500 ms has run on the stream.
  while (performance.now() - t0 < 500) {
    let y = ops.rmsNorm(x, w, 1e-6);
    for (let i = 0; i < 7; ++i) {
      const z = ops.rmsNorm(y, w, 1e-6);
      y.dispose();
      y = z;
    }
    await y.read();
    y.dispose();
    ran += 8;
  }
  clearInterval(timer);
  const elapsedMs = performance.now() - t0;
  expect(elapsedMs).toBeGreaterThanOrEqual(500);
  expect(ran).toBeGreaterThan(0);
  expect(maxGapMs).toBeLessThan(100);
});
