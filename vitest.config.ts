import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Builds what the suites need before any of them runs (no test file builds).
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 600_000,
    // Native work is multi-threaded already; one test file at a time keeps timings honest.
    fileParallelism: false,
    reporters: ['verbose'],
  },
});
