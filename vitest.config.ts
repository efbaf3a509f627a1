import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { defineConfig } from 'vitest/config';

/** Test files whose suites run per device (they call suiteDevices()): the CUDA suites. */
function deviceSuites(): string[] {
  const out: string[] = [];
  for (const dir of ['test/ops', 'test/runtime', 'test/model'])
    for (const f of readdirSync(dir))
      if (f.endsWith('.test.ts') && readFileSync(join(dir, f), 'utf8').includes('suiteDevices(')) out.push(`${dir}/${f}`);
  return out;
}

export default defineConfig({
  test: {
    // Builds what the suites need before any of them runs (no test file builds).
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 600_000,
    // Native work is multi-threaded already; one test file at a time keeps timings honest.
    fileParallelism: false,
    reporters: ['verbose'],
    projects: [
      { extends: true, test: { name: 'cpu', include: ['test/**/*.test.ts'], exclude: ['test/cuda-emu/**', '**/node_modules/**'] } },
      // The CUDA suites again, on the emulated cuda:0 of the cuda-emu build (cuda/emu), plus the
      // emulator's own tests.
      {
        extends: true,
        test: { name: 'cuda-emu', include: [...deviceSuites(), 'test/cuda-emu/**/*.test.ts'], env: { DEEPSEEK_NATIVE_BUILD: 'cuda-emu' } },
      },
    ],
  },
});
