/**
 * The GPU bodies of cuda/ptx: every wrapper instantiated in one kernel and compiled for sm_90a by
 * nvcc (ptxas assembles the inline PTX), so a typo in a PTX string fails here and not on the GPU.
 * Skipped where nvcc is absent.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
const hasNvcc = spawnSync('nvcc', ['--version']).status === 0;

describe.skipIf(!hasNvcc)(`cuda/ptx inline PTX${hasNvcc ? '' : ' (skipped: no nvcc)'}`, () => {
  it('assembles for sm_90a with nvcc and ptxas', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dsn-ptx-'));
    try {
      execFileSync('nvcc', ['-std=c++17', '-gencode', 'arch=compute_90a,code=sm_90a', '-I', join(root, 'cuda'), '-c', join(root, 'test/cuda-emu/nvcc/ptx_wrappers.cu'), '-o', join(dir, 'p.o')], {
        stdio: 'pipe',
        timeout: 110_000,
      });
      expect(true).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
