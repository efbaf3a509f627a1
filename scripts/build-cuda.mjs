// Builds the addon with cmake-js (CPU + CUDA backend) into build-cuda/ and copies it to
// prebuilds/cuda/linux-x64/, where the loader looks for it first.
//
// Never ships a "cuda" build without CUDA: without nvcc it skips (exit 0, nothing written; set
// DSN_REQUIRE_CUDA=1 to fail instead), CMake is told to fail rather than fall back to the CPU
// backend alone, and the built addon must report the cuda backend before it is copied.
// Reconfigures (cmake-js configure) when there is no cache yet or when CMakeLists.txt or the list of
// sources changed since the last configure; CMake's CONFIGURE_DEPENDS globs catch the rest.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { sourceStamp } from './cuda-sources.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = 'build-cuda';
const nvcc = process.env.CUDACXX || 'nvcc';
if (spawnSync(nvcc, ['--version']).status !== 0) {
  const msg = `build:cuda: ${nvcc} not found: skipping the CUDA build (prebuilds/cuda/ is not written)`;
  if (process.env.DSN_REQUIRE_CUDA === '1') {
    console.error(msg.replace('skipping', 'failing') + ' (DSN_REQUIRE_CUDA=1)');
    process.exit(1);
  }
  console.log(msg);
  process.exit(0);
}

const cmakeJs = join(root, 'node_modules', 'cmake-js', 'bin', 'cmake-js');
const jobs = process.env.CMAKE_BUILD_PARALLEL_LEVEL ?? '2';
const stampFile = join(root, out, 'dsn-sources.stamp');
const stamp = sourceStamp(root);
const configured = existsSync(join(root, out, 'CMakeCache.txt')) && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp;
const flags = ['--out', out, '--CDDSN_REQUIRE_CUDA=ON'];
if (!configured) {
  console.log(`build:cuda: configuring ${out}/ (${existsSync(join(root, out, 'CMakeCache.txt')) ? 'sources or CMakeLists.txt changed' : 'no cache yet'})`);
  execFileSync(process.execPath, [cmakeJs, 'configure', ...flags], { cwd: root, stdio: 'inherit' });
  writeFileSync(stampFile, stamp);
}
execFileSync(process.execPath, [cmakeJs, 'build', ...flags, '--parallel', jobs], { cwd: root, stdio: 'inherit' });

const built = join(root, out, 'Release', 'deepseek_native.node');
const check = spawnSync(process.execPath, ['-e', `const b = require(${JSON.stringify(built)}).buildInfo(); console.log(JSON.stringify(b)); process.exit(b.backends.includes('cuda') ? 0 : 3);`], { encoding: 'utf8' });
if (check.status !== 0) {
  console.error(`build:cuda: ${built} has no CUDA backend (${(check.stdout + check.stderr).trim()}); not copying it to prebuilds/cuda/`);
  process.exit(1);
}
const target = join(root, 'prebuilds', 'cuda', `${process.platform}-${process.arch}`, 'deepseek_native.node');
mkdirSync(dirname(target), { recursive: true });
copyFileSync(built, target);
console.log(`CUDA build copied to ${target}`);
