/**
 * The cmake-js build with the CUDA backend, loaded on this machine: it reports its backends and
 * architectures, runs CPU ops, and without a GPU every CUDA use is a clear error (no crash).
 * Needs the CUDA build (`npm run build:cuda`, which CI runs); GPU kernels are covered by the op
 * suites, which run on cuda:0 when a GPU is present.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

import { CUDA_OPS } from '../helpers.js';

const root = resolve(import.meta.dirname, '../..');
const cudaBuild = [join(root, 'prebuilds', 'cuda', `${process.platform}-${process.arch}`, 'deepseek_native.node'), join(root, 'build-cuda', 'Release', 'deepseek_native.node')].find(existsSync);
const hasNvcc = spawnSync('nvcc', ['--version']).status === 0;

describe.skipIf(!cudaBuild && !hasNvcc)(`the CUDA build${!cudaBuild && !hasNvcc ? ' (skipped: not built and no nvcc to build it)' : ''}`, () => {
  const env = { ...process.env, DEEPSEEK_NATIVE_BUILD: 'cuda' };
  const run = (script: string) => execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, env, encoding: 'utf8' });

  it('is built when nvcc is present', () => {
    if (hasNvcc) expect(cudaBuild, 'run `npm run build:cuda`').toBeDefined();
  });

  it('reports cpu + cuda backends and sm_90a, and runs CPU ops', () => {
    const out = run(`
      import { runtimeInfo, ops, tensor } from './dist/lib/index.js';
      const x = tensor(new Float32Array([3, 4]), { shape: [1, 2] });
      const y = await ops.rmsNorm(x, tensor(new Float32Array([1, 1])), 0).toFloat32Array();
      console.log(JSON.stringify({ info: runtimeInfo(), y: Array.from(y) }));`);
    const { info, y } = JSON.parse(out);
    expect(info.backends).toEqual(['cpu', 'cuda']);
    expect(info.cudaArchitectures).toEqual(['sm_90a']);
    expect(info.cuda.runtimeVersion).toMatch(/^1[3-9]\.\d+$/);
    expect(info.cudaOps).toEqual(CUDA_OPS);
    expect(info.addon).toMatch(/deepseek_native\.node$/);
    expect(y[0]).toBeCloseTo(3 / Math.sqrt(12.5), 6);
  });

  it('without a GPU, a CUDA tensor is a clear error', () => {
    const out = run(`
      import { devices, zeros } from './dist/lib/index.js';
      const gpus = devices().filter((d) => d.kind === 'cuda').length;
      let message = '';
      try { zeros([4], { device: 'cuda:0' }).dispose(); } catch (e) { message = e.message; }
      console.log(JSON.stringify({ gpus, message }));`);
    const { gpus, message } = JSON.parse(out);
    if (gpus === 0) expect(message).toMatch(/^device cuda:0 is not available: 0 CUDA device\(s\) found \((cuda\w+: .+|no CUDA device found)\)$/);
    else expect(message).toBe('');
  });
});
