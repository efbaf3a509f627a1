import { expect, it } from 'vitest';

import { ops, tensor } from '../../lib/index.js';
import { rng } from '../helpers.js';

it('CPU work on the stream never blocks the event loop', async () => {
  const r = rng();
  const [rows, dim] = [2048, 7168];
  using x = tensor(r.floats(rows * dim), { shape: [rows, dim] });
  using w = tensor(r.floats(dim));
  // Time one op, then queue about 1.5 s of them at once, with no await in between: if an op ran on
  // the JavaScript thread, queueing would take that long and the timer would not tick meanwhile.
  const c0 = performance.now();
  for (let i = 0; i < 4; ++i) {
    using y = ops.rmsNorm(x, w, 1e-6);
    await y.read();
  }
  const perOpMs = Math.max((performance.now() - c0) / 4, 0.5);
  const n = Math.ceil(1500 / perOpMs);

  const ticks: number[] = [];
  const timer = setInterval(() => ticks.push(performance.now()), 5);
  const t0 = performance.now();
  let y = ops.rmsNorm(x, w, 1e-6);
  for (let i = 1; i < n; ++i) {
    const z = ops.rmsNorm(y, w, 1e-6);
    y.dispose();
    y = z;
  }
  const queuedMs = performance.now() - t0;
  await y.read();
  y.dispose();
  const t1 = performance.now();
  clearInterval(timer);

  const elapsedMs = t1 - t0;
  expect(elapsedMs).toBeGreaterThanOrEqual(300);
  // Queueing is a small part of the work (each op only checks its arguments and enqueues).
  expect(queuedMs).toBeLessThan(elapsedMs / 3);
  // The timer ticked all along: at least one tick per 100 ms on average (it asks for one per 5 ms),
  // and no gap — the first and last included — of a third of the run (250 ms at least). Work run on this thread
  // would show as one gap of about the whole run; the margins are for a busy 2-core machine, where
  // the scheduler alone holds a thread back by 100 ms and more.
  expect(ticks.length).toBeGreaterThanOrEqual(Math.floor(elapsedMs / 100));
  const gaps = [ticks[0] - t0, ...ticks.slice(1).map((t, i) => t - ticks[i]), t1 - ticks[ticks.length - 1]];
  expect({ maxGapMs: Math.max(...gaps), elapsedMs, ok: Math.max(...gaps) < Math.max(elapsedMs / 3, 250) }).toMatchObject({ ok: true });
});
