// Builds the addon with cmake-js (CPU + CUDA backend when nvcc is found) into build-cuda/ and
// copies it to prebuilds/cuda/linux-x64/, where the loader looks for it first.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cmakeJs = join(root, 'node_modules', 'cmake-js', 'bin', 'cmake-js');
const jobs = process.env.CMAKE_BUILD_PARALLEL_LEVEL ?? '2';
execFileSync(process.execPath, [cmakeJs, 'compile', '--out', 'build-cuda', '--parallel', jobs], { cwd: root, stdio: 'inherit' });
const target = join(root, 'prebuilds', 'cuda', `${process.platform}-${process.arch}`, 'deepseek_native.node');
mkdirSync(dirname(target), { recursive: true });
copyFileSync(join(root, 'build-cuda', 'Release', 'deepseek_native.node'), target);
console.log(`CUDA build copied to ${target}`);
