/**
 * The addon in worker_threads (issue 11): it keeps its state per environment, so workers that load
 * the package, compute, exit or are terminated with ops still queued — in every order, several at
 * once — leave the main thread working. Runs in a child process (fixtures/workers.mjs) so that a V8
 * abort is a failed test, not a dead runner.
 */
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

import { rng } from '../helpers.js';

const root = resolve(import.meta.dirname, '../..');

describe('worker threads', () => {
  const r = rng();
  it(`workers load, compute, exit and are terminated mid-run in every order; the main thread computes before and after (seed ${r.seed})`, () => {
    const out = spawnSync(process.execPath, [resolve(import.meta.dirname, 'fixtures/workers.mjs'), resolve(root, 'dist/lib/index.js'), String(r.seed)], {
      cwd: root,
      encoding: 'utf8',
      timeout: 110_000,
      env: { ...process.env, DEEPSEEK_NATIVE_BUILD: 'cpu' },
    });
    expect({ status: out.status, signal: out.signal }, out.stderr.slice(-3000)).toEqual({ status: 0, signal: null });
    expect(JSON.parse(out.stdout.trim().split('\n').pop()!)).toEqual({ ok: true, mainChecks: 1 + 6 * 4 + 1 });
  });
});
