/**
 * The published-package round trip: `npm pack` carries the prebuilt addons (node-gyp CPU build made
 * by prebuildify, and the cmake-js CUDA build beside it); installing the tarball in a fresh folder
 * with no compiler (CC/CXX=false) compiles nothing, loads a prebuilt addon, runs an op and `info`;
 * with no loadable build the loader's error names each build tried and what to do.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
const platform = `${process.platform}-${process.arch}`;
const hasNvcc = spawnSync('nvcc', ['--version']).status === 0;

describe('npm pack and install without a compiler', () => {
  let work: string;
  let app: string;
  let tarball: string;
  const env = { ...process.env, CC: 'false', CXX: 'false', npm_config_build_from_source: 'false', DEEPSEEK_NATIVE_BUILD: '' };

  // Builds nothing: the global setup (test/global-setup.ts) made prebuilds/ and dist/ before any
  // test file ran. Packing and installing take a few seconds.
  beforeAll(() => {
    const prebuilt = existsSync(join(root, 'prebuilds', platform)) && readdirSync(join(root, 'prebuilds', platform)).some((f) => f.endsWith('.node'));
    if (!prebuilt || !existsSync(join(root, 'dist', 'lib', 'index.js')))
      throw new Error('prebuilds/ or dist/ is missing: run the suite through vitest (its global setup builds them)');
    work = mkdtempSync(join(tmpdir(), 'dsn-pack-'));
    const out = execFileSync('npm', ['pack', '--json', '--pack-destination', work], { cwd: root, encoding: 'utf8' });
    tarball = join(work, JSON.parse(out)[0].filename);
    app = join(work, 'app');
    mkdirSync(app, { recursive: true });
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true, type: 'module' }));
    execFileSync('npm', ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund'], { cwd: app, env, stdio: 'pipe' });
  });

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('carries the prebuilt CPU addon, and the CUDA addon when nvcc was there to build it', () => {
    const list = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).split('\n');
    expect(list.some((f) => f.startsWith(`package/prebuilds/${platform}/`) && f.endsWith('.node'))).toBe(true);
    if (hasNvcc) expect(list).toContain(`package/prebuilds/cuda/${platform}/deepseek_native.node`);
    expect(list).toContain('package/dist/lib/index.js');
    expect(list).toContain('package/dist/lib/index.d.ts');
  });

  it('installs without compiling and runs an op', () => {
    const pkg = join(app, 'node_modules', 'deepseek-native');
    expect(existsSync(join(pkg, 'build'))).toBe(false);
    const script = `
      import { ops, tensor, runtimeInfo } from 'deepseek-native';
      const x = tensor(new Float32Array([3, 4]), { shape: [1, 2] });
      const w = tensor(new Float32Array([1, 2]));
      const y = await ops.rmsNorm(x, w, 0).toFloat32Array();
      console.log(JSON.stringify({ y: Array.from(y), addon: runtimeInfo().addon }));`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: app, env, encoding: 'utf8' });
    const { y, addon } = JSON.parse(out);
    const rms = Math.sqrt((9 + 16) / 2);
    expect(y[0]).toBeCloseTo(3 / rms, 6);
    expect(y[1]).toBeCloseTo((2 * 4) / rms, 6);
    expect(addon.startsWith(join(pkg, 'prebuilds'))).toBe(true);
  });

  it('`deepseek-native info` works from the installed package', () => {
    const out = execFileSync(join(app, 'node_modules', '.bin', 'deepseek-native'), ['info'], { cwd: app, env, encoding: 'utf8' });
    const info = JSON.parse(out);
    expect(info.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(info.backends).toContain('cpu');
    expect(info.devices[0].name).toBe('cpu');
    expect(info.threads).toBeGreaterThan(0);
    expect(['avx512', 'avx2', 'scalar']).toContain(info.simd);
  });

  it('names every build it tried, and what to do, when none loads', () => {
    const pkg = join(app, 'node_modules', 'deepseek-native');
    rmSync(join(pkg, 'prebuilds'), { recursive: true, force: true });
    const r = spawnSync(join(app, 'node_modules', '.bin', 'deepseek-native'), ['info'], { cwd: app, env, encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('Could not load the deepseek-native addon');
    expect(r.stderr).toContain('Tried:');
    expect(r.stderr).toContain('CPU build');
    expect(r.stderr).toContain('Possible solutions:');
    expect(r.stderr).toContain('npm run build');
    expect(readdirSync(pkg)).not.toContain('build');
  });
});
