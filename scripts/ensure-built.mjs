// Builds what `npm start`, `npm test` and `npm run bench` need when it is missing: the CPU addon
// (node-gyp via prebuildify), the cuda-emu addon (cmake-js) and the compiled TypeScript. The addon is built only when missing; TypeScript is always recompiled (a few seconds).
import { execSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const run = (cmd) => execSync(cmd, { cwd: root, stdio: 'inherit' });
const platform = `${process.platform}-${process.arch}`;
if (!existsSync(join(root, 'prebuilds', platform)) && !existsSync(join(root, 'build', 'Release', 'deepseek_native.node'))) {
  console.log('deepseek-native: building the CPU addon (node-gyp)…');
  run('npm run build:addon');
}
// The cuda-emu build (g++ and cmake only): the CUDA suites run on its emulated cuda:0.
const hasTool = (t) => { try { execSync(`command -v ${t}`, { stdio: 'ignore', shell: '/bin/sh' }); return true; } catch { return false; } };
if (!existsSync(join(root, 'build-cuda-emu', 'Release', 'deepseek_native.node')) && !existsSync(join(root, 'prebuilds', 'cuda-emu', platform, 'deepseek_native.node'))) {
  if (hasTool('cmake') && hasTool('g++')) {
    console.log('deepseek-native: building the cuda-emu addon (cmake-js, emulated CUDA device)…');
    run('npm run build:cuda-emu');
  } else {
    console.log('deepseek-native: cmake or g++ missing: the cuda-emu tests will fail (run npm run build:cuda-emu)');
  }
}
// tsc is incremental enough to run every time; a stale dist/ would make the CLI lie.
run('npm run --silent build:ts');
