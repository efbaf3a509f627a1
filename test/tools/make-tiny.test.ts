import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { ops, tensor } from '../../lib/index.js';
import { openCheckpoint } from '../../lib/io/checkpoint.js';
import { parseMakeTinyArgs } from '../../lib/tools/make-tiny/command.js';
import { TINY_PRESETS, type TinyDims, resolveTinyDims } from '../../lib/tools/make-tiny/dims.js';
import { tinyTensorPlan } from '../../lib/tools/make-tiny/plan.js';
import { e4m3Code } from '../../lib/tools/make-tiny/values.js';
import { makeTinyCheckpoint } from '../../lib/tools/make-tiny/writer.js';
import { openSafetensors } from '../../lib/io/safetensors.js';
import { rng } from '../helpers.js';
import { GOLDEN } from '../golden-dir.js';

const root = resolve(import.meta.dirname, '../..');
const cli = resolve(root, 'dist/lib/cli.js');
const tmp = mkdtempSync(join(tmpdir(), 'dsn-make-tiny-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let counter = 0;
const tmpDir = () => join(tmp, `ck-${counter++}`);

/** name -> {dtype, shape} over every shard of a checkpoint, read from the headers. */
function layout(dir: string): Record<string, { dtype: string; shape: number[] }> {
  const out: Record<string, { dtype: string; shape: number[] }> = {};
  for (const f of readdirSync(dir).filter((f) => f.endsWith('.safetensors'))) {
    const b = readFileSync(join(dir, f));
    const h = JSON.parse(b.subarray(8, 8 + Number(b.readBigUInt64LE(0))).toString('utf8'));
    for (const [k, v] of Object.entries(h as Record<string, { dtype: string; shape: number[] }>))
      if (k !== '__metadata__') out[k] = { dtype: v.dtype, shape: v.shape };
  }
  return out;
}

const readJson = (p: string) => JSON.parse(readFileSync(p, 'utf8'));

const f8 = (c: number) => {
  const s = c & 0x80 ? -1 : 1;
  const e = (c >> 3) & 15;
  const m = c & 7;
  if (e === 15 && m === 7) return NaN;
  return e === 0 ? s * m * 2 ** -9 : s * (1 + m / 8) * 2 ** (e - 7);
};

/** The dims of a golden config, as make-tiny names them. */
function goldenDims(name: string): TinyDims {
  const c = readJson(join(GOLDEN, name, 'config.json'));
  const dims = {} as Record<string, number>;
  for (const k of Object.keys(TINY_PRESETS.tiny)) dims[k] = k === 'original_max_position_embeddings' ? c.rope_scaling[k] : c[k];
  return dims as unknown as TinyDims;
}

describe('makeTinyCheckpoint', () => {
  for (const name of ['tiny-sparse', 'tiny-dense']) {
    it(`with the dims of golden ${name}: the same config, tensor names, dtypes and shapes; reopens`, async () => {
      const dir = tmpDir();
      const made = await makeTinyCheckpoint(dir, { preset: 'tiny', dims: goldenDims(name), seed: 1 });
      const golden = join(GOLDEN, name);
      expect(readJson(join(dir, 'config.json'))).toEqual(readJson(join(golden, 'config.json')));
      expect(made.config).toEqual(readJson(join(golden, 'config.json')));
      const gi = readJson(join(golden, 'model.safetensors.index.json'));
      const mi = readJson(join(dir, 'model.safetensors.index.json'));
      expect(Object.keys(mi.weight_map)).toEqual(Object.keys(gi.weight_map));
      expect(mi.metadata.total_size).toBe(gi.metadata.total_size);
      expect(layout(dir)).toEqual(layout(golden));
      expect(made.files).toEqual(['model-00001-of-00001.safetensors']);
      expect(made.tensors).toBe(Object.keys(gi.weight_map).length);
      using ck = openCheckpoint(dir);
      expect(ck.names()).toEqual(Object.keys(gi.weight_map));
      for (const n of ck.names()) ck.tensor(n).dispose();
    });
  }

  it("the 'tiny' preset is golden tiny-sparse's dims", () => {
    expect(resolveTinyDims('tiny')).toEqual(goldenDims('tiny-sparse'));
  });

  it("the '1b' preset: about 1 B parameters, FP8 dims multiples of 128 (kv_a's kv_lora + rope aside)", () => {
    const plan = tinyTensorPlan(resolveTinyDims('1b'));
    const params = plan.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
    expect(params).toBeGreaterThan(0.95e9);
    expect(params).toBeLessThan(1.05e9);
    for (const t of plan.filter((t) => t.dtype === 'f8e4m3')) {
      const [n, k] = t.shape;
      if (!t.name.endsWith('kv_a_proj_with_mqa.weight')) expect(n % 128, t.name).toBe(0);
      expect(k % 128, t.name).toBe(0);
    }
  });

  const seed = rng().seed;
  it(`values: FP8 blocks scaled to amax 448, std ≈ 1/√fan_in, norms near 1, deterministic per seed (seed ${seed})`, async () => {
    const dims = { num_hidden_layers: 2, n_routed_experts: 4, n_group: 2, topk_group: 1, num_experts_per_tok: 2, hidden_size: 384, intermediate_size: 640 };
    const a = tmpDir();
    await makeTinyCheckpoint(a, { dims, seed });
    using ck = openCheckpoint(a);
    const weights = ck.names().filter((n) => ck.info(n).dtype === 'f8e4m3');
    for (const name of weights) {
      const [N, K] = ck.info(name).shape;
      const codes = (await ck.tensor(name).read()) as Uint8Array;
      const scales = (await ck.tensor(`${name.slice(0, -'weight'.length)}weight_scale_inv`).read()) as Float32Array;
      const kb = Math.ceil(K / 128);
      expect(scales.length).toBe(Math.ceil(N / 128) * kb);
      let sum2 = 0;
      for (let rb = 0; rb * 128 < N; ++rb)
        for (let b = 0; b < kb; ++b) {
          let amax = 0;
          for (let r = rb * 128; r < Math.min(N, rb * 128 + 128); ++r)
            for (let c = b * 128; c < Math.min(K, b * 128 + 128); ++c) {
              const v = f8(codes[r * K + c]);
              amax = Math.max(amax, Math.abs(v));
              sum2 += (v * scales[rb * kb + b]) ** 2;
            }
          expect(amax, `${name} block (${rb}, ${b})`).toBe(448);
        }
      const std = Math.sqrt(sum2 / (N * K));
      expect(std / (1 / Math.sqrt(K)), name).toBeGreaterThan(0.9);
      expect(std / (1 / Math.sqrt(K)), name).toBeLessThan(1.1);
    }
    const norm = await ck.tensor('model.layers.0.input_layernorm.weight').toFloat32Array();
    const mean = norm.reduce((s, v) => s + v, 0) / norm.length;
    expect(Math.abs(mean - 1)).toBeLessThan(0.05);
    expect(ck.info('model.layers.1.mlp.gate.e_score_correction_bias')).toMatchObject({ dtype: 'f32', shape: [4] });
    const embed = await ck.tensor('model.embed_tokens.weight').toFloat32Array();
    const es = Math.sqrt(embed.reduce((s, v) => s + v * v, 0) / embed.length);
    expect(Math.abs(es - 1)).toBeLessThan(0.05);

    // Same seed: same bytes, whatever the sharding; another seed: other bytes.
    const b = tmpDir();
    const made = await makeTinyCheckpoint(b, { dims, seed, maxShardBytes: 1 << 20 });
    expect(made.files.length).toBeGreaterThan(2);
    expect(made.files[0]).toBe(`model-00001-of-${String(made.files.length).padStart(5, '0')}.safetensors`);
    for (const f of made.files) {
      using s = openSafetensors(join(b, f));
      const data = [...s.tensors.values()].reduce((n, t) => n + t.byteLength, 0);
      expect(data <= 1 << 20 || s.tensors.size === 1).toBe(true);
    }
    using ckb = openCheckpoint(b);
    const c = tmpDir();
    await makeTinyCheckpoint(c, { dims, seed: seed + 1 });
    using ckc = openCheckpoint(c);
    expect(ckb.names()).toEqual(ck.names());
    let differ = 0;
    for (const n of ck.names()) {
      const x = Buffer.from((await ck.tensor(n).read()).buffer);
      expect(Buffer.from((await ckb.tensor(n).read()).buffer).equals(x), n).toBe(true);
      if (!Buffer.from((await ckc.tensor(n).read()).buffer).equals(x)) differ += 1;
    }
    expect(differ).toBeGreaterThan(ck.names().length * 0.9);
  });

  it(`e4m3Code matches the native f32 -> f8e4m3 cast bit for bit (seed ${seed})`, async () => {
    const r = rng(seed);
    const x = new Float32Array(20000);
    for (let i = 0; i < x.length; ++i) x[i] = r.normal() * 2 ** r.int(-14, 10);
    x.set([0, -0, 448, -448, 464, 465, 1e9, -1e9, Infinity, -Infinity, NaN, 2 ** -6, 2 ** -9, 2 ** -10, 3 * 2 ** -11, 2 ** -11, 1.5 * 2 ** -9, 2.5 * 2 ** -9]);
    using t = tensor(x);
    using c = ops.cast(t, 'f8e4m3');
    const want = (await c.read()) as Uint8Array;
    const bits = new Uint32Array(x.buffer);
    const got = Uint8Array.from(bits, (u) => e4m3Code(u));
    for (let i = 0; i < x.length; ++i) if (got[i] !== want[i]) expect(`${x[i]} -> ${got[i]}`).toBe(`${x[i]} -> ${want[i]}`);
  });

  it('rejects bad options with exact messages', async () => {
    const d = tmpDir();
    await expect(makeTinyCheckpoint(d, { dims: { hidden: 4 } as Partial<TinyDims> })).rejects.toThrow(
      `makeTinyCheckpoint: expected one of ${Object.keys(TINY_PRESETS.tiny).join(', ')} for a dims key but received 'hidden' of type string`,
    );
    await expect(makeTinyCheckpoint(d, { dims: { hidden_size: 0 } })).rejects.toThrow(
      'makeTinyCheckpoint: expected a positive integer for dims.hidden_size but received 0 of type number',
    );
    await expect(makeTinyCheckpoint(d, { dims: { first_k_dense_replace: -1 } })).rejects.toThrow(
      'makeTinyCheckpoint: expected a non-negative integer for dims.first_k_dense_replace but received -1 of type number',
    );
    await expect(makeTinyCheckpoint(d, { dims: { n_routed_experts: 6 } })).rejects.toThrow(
      'makeTinyCheckpoint: dims must satisfy n_routed_experts (6) divisible by n_group (4)',
    );
    // What the loader would refuse is refused before anything is written (checked by parseConfig).
    await expect(makeTinyCheckpoint(d, { dims: { hidden_size: 200 } })).rejects.toThrow(
      'makeTinyCheckpoint: dims must make a config the model loads: config.json: hidden_size is 200; allowed: a multiple of 128 (FP8 activations are quantised per 128 values)',
    );
    await expect(makeTinyCheckpoint(d, { preset: '7b' as '1b' })).rejects.toThrow(
      "makeTinyCheckpoint: expected 'tiny' or '1b' for preset but received '7b' of type string",
    );
    await expect(makeTinyCheckpoint(d, { seed: 1.5 })).rejects.toThrow('makeTinyCheckpoint: expected a non-negative integer for seed but received 1.5 of type number');
    expect(() => statSync(d)).toThrow(); // nothing written
  });

  it('parses CLI arguments', () => {
    expect(parseMakeTinyArgs(['out', '--preset', '1b', '--dims', 'hidden_size=512,num_hidden_layers=2', '--seed=7'])).toEqual({
      dir: 'out',
      options: { preset: '1b', dims: { hidden_size: 512, num_hidden_layers: 2 }, seed: 7 },
    });
    expect(() => parseMakeTinyArgs([])).toThrow('the folder to write (DIR) is missing');
    expect(() => parseMakeTinyArgs(['a', 'b'])).toThrow("one folder expected but received 'a' and 'b'");
    expect(() => parseMakeTinyArgs(['a', '--preset', 'big'])).toThrow("--preset must be tiny or 1b but received 'big'");
    expect(() => parseMakeTinyArgs(['a', '--dims', 'hidden_size=1.5'])).toThrow(
      "--dims takes key=value pairs of non-negative integers, separated by commas, but received 'hidden_size=1.5'",
    );
    expect(() => parseMakeTinyArgs(['a', '--seed', '-1'])).toThrow("--seed must be a non-negative integer but received '-1'");
    expect(() => parseMakeTinyArgs(['a', '--seed'])).toThrow('--seed needs a value');
    expect(() => parseMakeTinyArgs(['a', '--frob'])).toThrow("unknown option '--frob'");
  });

  it('deepseek-native make-tiny writes a checkpoint that reopens, and exits 2 on bad arguments', () => {
    const dir = tmpDir();
    const r = spawnSync(process.execPath, [cli, 'make-tiny', dir, '--dims', 'num_hidden_layers=2,n_routed_experts=8', '--seed', '3'], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({ dir, files: ['model-00001-of-00001.safetensors'] });
    using ck = openCheckpoint(dir);
    expect(ck.config).toMatchObject({ num_hidden_layers: 2, n_routed_experts: 8, model_type: 'deepseek_v32' });
    expect(ck.names().length).toBe(out.tensors);
    expect(ck.has('model.layers.2.eh_proj.weight')).toBe(true);

    const bad = spawnSync(process.execPath, [cli, 'make-tiny', tmpDir(), '--dims', 'n_group=3'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('deepseek-native make-tiny: makeTinyCheckpoint: dims must satisfy n_routed_experts (16) divisible by n_group (3)');
    expect(bad.stderr).toContain('Usage: deepseek-native make-tiny DIR');
  });
});
