// Builds the cuda-emu addon: the CUDA backend with every cuda/*.cu compiled as host C++ against the
// emulated device in cuda/emu/ (g++ and cmake only, no nvcc), into build-cuda-emu/, and copies it to
// prebuilds/cuda-emu/<platform>-<arch>/, where DEEPSEEK_NATIVE_BUILD=cuda-emu looks for it. Also
// builds build-cuda-emu/Release/cuda_emu_test, the emulator's own unit tests.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cmakeJs = join(root, 'node_modules', 'cmake-js', 'bin', 'cmake-js');
const jobs = process.env.CMAKE_BUILD_PARALLEL_LEVEL ?? '2';
execFileSync(process.execPath, [cmakeJs, 'compile', '--out', 'build-cuda-emu', '--parallel', jobs, '--CDDSN_CUDA_EMU=ON', '--CDDSN_CUDA=OFF'], {
  cwd: root,
  stdio: 'inherit',
});
const target = join(root, 'prebuilds', 'cuda-emu', `${process.platform}-${process.arch}`, 'deepseek_native.node');
mkdirSync(dirname(target), { recursive: true });
copyFileSync(join(root, 'build-cuda-emu', 'Release', 'deepseek_native.node'), target);
console.log(`cuda-emu build copied to ${target}`);
