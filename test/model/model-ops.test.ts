/**
 * `MODEL_OPS` (the kernels a device needs to run the model, which `loadModel` checks) is exactly the
 * set of native ops that lib/model and lib/serve call.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

import { MODEL_OPS } from '../../lib/model/model.js';
import { opDevices } from '../../lib/runtime/device.js';

const root = resolve(import.meta.dirname, '../..');

/** `ops.name(` calls in a folder's .ts files. */
function opCalls(dir: string): Set<string> {
  const out = new Set<string>();
  for (const f of readdirSync(join(root, dir)).filter((n) => n.endsWith('.ts')))
    for (const m of readFileSync(join(root, dir, f), 'utf8').matchAll(/\bops\.([A-Za-z0-9]+)\(/g)) out.add(m[1]);
  return out;
}

describe('MODEL_OPS', () => {
  it('is the set of native ops that lib/model and lib/serve call', () => {
    const native = new Set(Object.keys(opDevices()));
    const called = new Set([...opCalls('lib/model'), ...opCalls('lib/serve')]);
    // addRmsNorm is the native rmsNorm op with a residual, (add)rmsNormQuant and swigluQuant the
    // native rmsNorm and swiglu ops with their fused quantisation; the rest of the TS-only helpers
    // (ropeTables, setBatchInvariant, and fp8WeightSet, which gathers the CPU weights fp8Gemm and
    // groupedFp8Gemm read in place) run no kernel.
    for (const op of ['addRmsNorm', 'rmsNormQuant', 'addRmsNormQuant']) if (called.delete(op)) called.add('rmsNorm');
    if (called.delete('swigluQuant')) called.add('swiglu');
    const kernels = [...called].filter((op) => native.has(op)).sort();
    expect([...MODEL_OPS].sort()).toEqual(kernels);
    for (const op of called) if (!native.has(op)) expect(['fp8WeightSet', 'ropeTables', 'setBatchInvariant']).toContain(op);
  });
});
