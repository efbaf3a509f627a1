// Builds what `npm start`, `npm test` and `npm run bench` need when it is missing: the CPU addon
// (node-gyp via prebuildify), the cuda-emu addon (cmake-js, the emulated CUDA device the CUDA suites
// run on) and the compiled TypeScript. The addons are built only when missing; TypeScript is always
// recompiled (a few seconds).
//
// `--for-tests` (run by vitest's global setup, test/global-setup.ts, before any test file) also
// builds what the packaging and CUDA-build suites test: the prebuilt CPU addon in
// prebuilds/<platform>/ and, when nvcc is present, the CUDA build in prebuilds/cuda/<platform>/.
// Builds belong here, before the tests: a test file that builds blocks its vitest worker past the
// RPC timeout on a small machine and changes the tree under the other suites.
import { execSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const run = (cmd) => execSync(cmd, { cwd: root, stdio: 'inherit' });
const platform = `${process.platform}-${process.arch}`;
const forTests = process.argv.includes('--for-tests');
// A prebuilt addon, not just its folder (an interrupted prebuildify leaves the folder empty).
const prebuiltDir = join(root, 'prebuilds', platform);
const prebuilt = existsSync(prebuiltDir) && readdirSync(prebuiltDir).some((f) => f.endsWith('.node'));
if (!prebuilt && (forTests || !existsSync(join(root, 'build', 'Release', 'deepseek_native.node')))) {
  console.log('deepseek-native: building the CPU addon (node-gyp via prebuildify)…');
  run('npm run build:addon');
}
// The cuda-emu build (g++ and cmake only): the CUDA suites run on its emulated cuda:0 (tests only:
// `npm start` and the benchmarks need the CPU addon alone).
const hasTool = (t) => { try { execSync(`command -v ${t}`, { stdio: 'ignore', shell: '/bin/sh' }); return true; } catch { return false; } };
if (forTests && !existsSync(join(root, 'build-cuda-emu', 'Release', 'deepseek_native.node')) && !existsSync(join(root, 'prebuilds', 'cuda-emu', platform, 'deepseek_native.node'))) {
  if (hasTool('cmake') && hasTool('g++')) {
    console.log('deepseek-native: building the cuda-emu addon (cmake-js, emulated CUDA device)…');
    run('npm run build:cuda-emu');
  } else {
    console.log('deepseek-native: cmake or g++ missing: the cuda-emu tests will fail (run npm run build:cuda-emu)');
  }
}
if (forTests && spawnSync('nvcc', ['--version']).status === 0 && !existsSync(join(root, 'prebuilds', 'cuda', platform, 'deepseek_native.node'))) {
  console.log('deepseek-native: nvcc found, building the CUDA addon (cmake-js)…');
  run('npm run build:cuda');
}
// tsc is incremental enough to run every time; a stale dist/ would make the CLI lie.
run('npm run --silent build:ts');
