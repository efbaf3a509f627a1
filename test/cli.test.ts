import { execFileSync, spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..');
const cli = resolve(root, 'dist/lib/cli.js');

describe('deepseek-native CLI', () => {
  it('info prints one JSON object describing the runtime', () => {
    const info = JSON.parse(execFileSync(process.execPath, [cli, 'info'], { encoding: 'utf8' }));
    expect(Object.keys(info).sort()).toEqual(['addon', 'backends', 'cuda', 'cudaArchitectures', 'cudaOps', 'devices', 'simd', 'threads', 'version'].sort());
    expect(info.addon).toMatch(/\.node$/);
    expect(info.devices[0]).toMatchObject({ name: 'cpu', kind: 'cpu' });
  });

  it('honours DEEPSEEK_NATIVE_THREADS', () => {
    const info = JSON.parse(execFileSync(process.execPath, [cli, 'info'], { encoding: 'utf8', env: { ...process.env, DEEPSEEK_NATIVE_THREADS: '3' } }));
    expect(info.threads).toBe(3);
  });

  it('an unknown command exits non-zero with usage on stderr', () => {
    const r = spawnSync(process.execPath, [cli, 'frobnicate'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("unknown command 'frobnicate'");
  });
});
