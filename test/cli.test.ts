import { execFileSync, spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

import { GOLDEN } from './golden-dir.js';

const root = resolve(import.meta.dirname, '..');
const cli = resolve(root, 'dist/lib/cli.js');

describe('deepseek-native CLI', () => {
  it('info prints one JSON object describing the runtime', () => {
    const info = JSON.parse(execFileSync(process.execPath, [cli, 'info'], { encoding: 'utf8' }));
    expect(Object.keys(info).sort()).toEqual(['addon', 'backends', 'cpuFeatures', 'cuda', 'cudaArchitectures', 'cudaOps', 'devices', 'simd', 'threads', 'version'].sort());
    // The path follows from the features: avx2 needs AVX2 + FMA + F16C, avx512 also F/BW/VL/DQ.
    const known = ['avx2', 'fma', 'f16c', 'avx512f', 'avx512bw', 'avx512vl', 'avx512dq', 'avx512bf16', 'avx512vbmi'];
    expect(info.cpuFeatures.filter((f: string) => !known.includes(f))).toEqual([]);
    const avx2 = ['avx2', 'fma', 'f16c'].every((f) => info.cpuFeatures.includes(f));
    const avx512 = avx2 && ['avx512f', 'avx512bw', 'avx512vl', 'avx512dq'].every((f) => info.cpuFeatures.includes(f));
    const best = avx512 ? 'avx512' : avx2 ? 'avx2' : 'scalar';
    const rank = { scalar: 0, avx2: 1, avx512: 2 } as Record<string, number>;
    // DEEPSEEK_NATIVE_SIMD may cap the path below the best the features allow, never above it.
    expect(rank[info.simd]).toBeLessThanOrEqual(rank[best]);
    if (!process.env.DEEPSEEK_NATIVE_SIMD) expect(info.simd).toBe(best);
    expect(info.addon).toMatch(/\.node$/);
    expect(info.devices[0]).toMatchObject({ name: 'cpu', kind: 'cpu' });
  });

  it('info --model DIR adds the checkpoint and its KV-cache bytes a token (FP8 latent rows)', () => {
    const info = JSON.parse(execFileSync(process.execPath, [cli, 'info', '--model', resolve(GOLDEN, 'tiny-sparse')], { encoding: 'utf8' }));
    expect(info.model).toMatchObject({ modelType: 'deepseek_v32', layers: 4, sparse: true });
    // kv_lora 128, rope 32: 128 codes + 1 f32 scale + 32 RoPE dims (bf16: 64 bytes, f32: 128); indexer key 128 + 4.
    expect(info.model.kvCache.bf16).toMatchObject({ latentBytesPerLayer: 196, indexerKeyBytesPerLayer: 132, bytesPerToken: 4 * (196 + 132) });
    expect(info.model.kvCache.f32).toMatchObject({ latentBytesPerLayer: 260, bytesPerToken: 4 * (260 + 132) });
    const r = spawnSync(process.execPath, [cli, 'info', '--model'], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("info takes no arguments or --model DIR but received '--model'");
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
