/**
 * The GGUF writer and the exporter, without llama.cpp: files written with random metadata and
 * tensors are parsed back (the header bytes read by hand, the rest with readGguf) and every value,
 * offset and element checked against float64 references; the exporter's output for the golden
 * tiny-sparse checkpoint is checked tensor by tensor against the checkpoint decoded here.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { openCheckpoint } from '../../lib/io/checkpoint.js';
import { parseConfig } from '../../lib/model/config.js';
import {
  GGML_TYPES, type GgmlType, type GgufKv, type GgufTensor, encodeGgufHeader, ggmlByteLength, readGguf, writeGguf,
} from '../../lib/tools/gguf/container.js';
import { exportGguf } from '../../lib/tools/gguf/export.js';
import { dequantizeQ8_0, f16Bits, f16Value, quantizeQ8_0 } from '../../lib/tools/gguf/quant.js';
import { e4m3Value, rng, roundF16 } from '../helpers.js';
import { GOLDEN } from '../golden-dir.js';

const tmp = mkdtempSync(join(tmpdir(), 'dsn-gguf-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let counter = 0;
const tmpFile = () => join(tmp, `f-${counter++}.gguf`);

/**
 * The Q8_0 bound for one block of float64 values: the writer rounds d = max|x|/127 to f16 (d16) and
 * stores q = round(x/d16) clamped to ±127, so |x − d16·q| <= d16/2 (rounding), except where d16 < d
 * and the clamp cut a value: then <= max|x| − 127·d16 = 127·(d − d16). Their maximum bounds both.
 */
function q8Bound(block: ArrayLike<number>): number {
  let amax = 0;
  for (let i = 0; i < block.length; ++i) amax = Math.max(amax, Math.abs(block[i]));
  const d = amax / 127;
  const d16 = roundF16(d);
  return Math.max(d16 / 2, 127 * Math.max(0, d - d16)) * (1 + 1e-12);
}

function expectQ8Close(got: Float64Array, want: ArrayLike<number>, what: string): void {
  expect(got.length).toBe(want.length);
  for (let b = 0; b < want.length / 32; ++b) {
    const block = Array.from({ length: 32 }, (_, i) => want[b * 32 + i]);
    const bound = q8Bound(block);
    for (let i = 0; i < 32; ++i) {
      const err = Math.abs(got[b * 32 + i] - block[i]);
      if (!(err <= bound)) throw new Error(`${what}: block ${b} element ${i}: ${got[b * 32 + i]} vs ${block[i]} (error ${err} > bound ${bound})`);
    }
  }
}

describe('f16 and Q8_0 encodings', () => {
  it('f16Bits rounds to the nearest f16, ties to even, as the float64 reference', () => {
    const r = rng();
    console.log(`f16 seed ${r.seed}`);
    const values = [0, -0, 1, 65504, 65519.99, 65520, -65520, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 2 ** -14, 2 ** -14 * (1 - 2 ** -11), 1 + 2 ** -11, 1 + 3 * 2 ** -11];
    for (let i = 0; i < 20000; ++i) values.push(Math.fround(r.normal() * 2 ** r.int(-30, 17)));
    for (const x of values) {
      const want = roundF16(Math.fround(x));
      const got = f16Value(f16Bits(x));
      if (!Object.is(got, want) && !(got === 0 && want === 0)) throw new Error(`f16Bits(${x}): ${got} vs ${want} (seed ${r.seed})`);
    }
    expect(Number.isNaN(f16Value(f16Bits(NaN)))).toBe(true);
  });

  it('Q8_0 round trip stays within the bound of each block, over scales from 1e-6 to 1e4', () => {
    const r = rng();
    console.log(`q8_0 seed ${r.seed}`);
    for (const scale of [1e-6, 1e-3, 0.02, 1, 300, 1e4]) {
      const x = new Float64Array(32 * 64);
      for (let i = 0; i < x.length; ++i) x[i] = r.normal() * scale * (i % 97 === 0 ? 8 : 1);
      x.fill(0, 64, 96); // an all-zero block stays zero
      const back = dequantizeQ8_0(quantizeQ8_0(x), x.length);
      expectQ8Close(back, x, `scale ${scale} (seed ${r.seed})`);
      expect(Array.from(back.subarray(64, 96)).every((v) => v === 0)).toBe(true);
      // the error is a real rounding, not zero (the test would pass a lossless copy too, but not a wrong scale)
      let worst = 0;
      for (let i = 0; i < x.length; ++i) worst = Math.max(worst, Math.abs(back[i] - x[i]) / scale);
      expect(worst).toBeGreaterThan(1e-4);
    }
    expect(() => quantizeQ8_0(new Float32Array(33))).toThrow(/whole number of 32-blocks/);
  });
});

describe('GGUF container', () => {
  it('writes what readGguf and a hand-read header parse back: every key, tensor info, aligned offset and element', async () => {
    const r = rng();
    console.log(`gguf container seed ${r.seed}`);
    const kvs: GgufKv[] = [
      { key: 'general.architecture', type: 'string', value: 'test-arch' },
      { key: 'general.alignment', type: 'u32', value: 64 },
      { key: 'k.u8', type: 'u8', value: r.int(0, 256) },
      { key: 'k.i8', type: 'i8', value: r.int(-128, 128) },
      { key: 'k.u16', type: 'u16', value: r.int(0, 65536) },
      { key: 'k.i16', type: 'i16', value: r.int(-32768, 32768) },
      { key: 'k.u32', type: 'u32', value: r.int(0, 2 ** 31) * 2 + 1 },
      { key: 'k.i32', type: 'i32', value: r.int(-(2 ** 31), 2 ** 31) },
      { key: 'k.f32', type: 'f32', value: r.normal() },
      { key: 'k.f64', type: 'f64', value: r.normal() },
      { key: 'k.bool', type: 'bool', value: r.next() < 0.5 },
      { key: 'k.u64', type: 'u64', value: 2n ** 63n + BigInt(r.int(0, 1000)) },
      { key: 'k.i64', type: 'i64', value: -(2n ** 62n) - BigInt(r.int(0, 1000)) },
      { key: 'k.string', type: 'string', value: `ünïcödé ${r.int(0, 1e6)}` },
      // thousands of strings: a header past the writer's first 64 KiB buffer (it grows)
      { key: 'k.strings', type: 'array', itemType: 'string', value: Array.from({ length: r.int(6000, 9000) }, (_, i) => `<token ${i}>`) },
      { key: 'k.f32s', type: 'array', itemType: 'f32', value: Array.from({ length: r.int(1, 50) }, () => r.normal()) },
      { key: 'k.i32s', type: 'array', itemType: 'i32', value: Array.from({ length: r.int(0, 50) }, () => r.int(-1000, 1000)) },
    ];
    const source = new Map<string, Float32Array>();
    const tensors: GgufTensor[] = [];
    const types: GgmlType[] = ['f32', 'f16', 'q8_0'];
    for (let i = 0; i < 9; ++i) {
      const type = types[i % 3];
      const ne = [32 * r.int(1, 6), r.int(1, 5), ...(i % 2 ? [r.int(1, 4)] : [])];
      const values = r.floats(ne.reduce((a, b) => a * b, 1), 10 ** r.uniform(-3, 2));
      source.set(`t.${i}`, values);
      tensors.push({
        name: `t.${i}`, type, ne,
        data: () =>
          type === 'q8_0' ? quantizeQ8_0(values)
          : type === 'f16' ? new Uint8Array(Uint16Array.from(values, f16Bits).buffer)
          : new Uint8Array(values.slice().buffer),
      });
    }
    const path = tmpFile();
    const size = await writeGguf(path, kvs, tensors);
    const raw = readFileSync(path);
    expect(raw.length).toBe(size);
    // the header by hand: magic, version 3, tensor count, metadata count
    expect(raw.subarray(0, 4).toString('latin1')).toBe('GGUF');
    expect(raw.readUInt32LE(4)).toBe(3);
    expect(raw.readBigUInt64LE(8)).toBe(BigInt(tensors.length));
    expect(raw.readBigUInt64LE(16)).toBe(BigInt(kvs.length));
    // first key: u64 length, bytes, then the value type (string = 8)
    expect(Number(raw.readBigUInt64LE(24))).toBe('general.architecture'.length);
    expect(raw.subarray(32, 32 + 20).toString('utf8')).toBe('general.architecture');
    expect(raw.readUInt32LE(52)).toBe(8);

    const g = readGguf(path);
    expect(g.version).toBe(3);
    expect(g.alignment).toBe(64);
    expect(g.dataOffset % 64).toBe(0);
    expect([...g.kvs.keys()]).toEqual(kvs.map((kv) => kv.key));
    for (const kv of kvs) {
      const got = g.kvs.get(kv.key)!;
      const f32 = (v: number) => Math.fround(v);
      if (kv.type === 'array') {
        const want = kv.itemType === 'f32' ? kv.value.map((v) => f32(v as number)) : kv.value;
        expect(got.value, kv.key).toEqual(want);
      } else {
        expect(got.value, kv.key).toEqual(kv.type === 'f32' ? f32(kv.value) : kv.value);
      }
    }
    expect(g.tensors.map((t) => t.name)).toEqual(tensors.map((t) => t.name));
    let end = 0;
    for (const [i, t] of g.tensors.entries()) {
      const spec = tensors[i];
      expect(t.ne).toEqual(spec.ne);
      expect(t.type).toBe(GGML_TYPES[spec.type].code);
      expect(t.offset % 64, `${t.name} offset`).toBe(0);
      expect(t.offset).toBeGreaterThanOrEqual(end);
      const bytes = ggmlByteLength(spec.type, spec.ne);
      end = t.offset + bytes;
      expect(g.dataOffset + end).toBeLessThanOrEqual(raw.length);
      const at = g.dataOffset + t.offset;
      const data = g.bytes.slice(at, at + bytes);
      const want = source.get(t.name)!;
      if (spec.type === 'f32') expect(new Float32Array(data.buffer)).toEqual(want);
      else if (spec.type === 'f16') expect(Array.from(new Uint16Array(data.buffer), f16Value)).toEqual(Array.from(want, (v) => roundF16(v)));
      else expectQ8Close(dequantizeQ8_0(data, want.length), want, `${t.name} (seed ${r.seed})`);
    }
  });

  it('refuses what llama.cpp could not read: a key or tensor twice, a Q8_0 row not of whole blocks, a wrong byte count', async () => {
    const t = (name: string, ne: number[], type: GgmlType = 'f32', bytes?: number): GgufTensor =>
      ({ name, type, ne, data: () => new Uint8Array(bytes ?? ggmlByteLength(type, ne)) });
    const arch: GgufKv = { key: 'general.architecture', type: 'string', value: 'x' };
    expect(() => encodeGgufHeader([arch, arch], [])).toThrow("gguf: metadata key 'general.architecture' given twice");
    expect(() => encodeGgufHeader([arch], [t('a', [4]), t('a', [4])])).toThrow("gguf: tensor 'a' given twice");
    expect(() => encodeGgufHeader([arch], [t('a', [48], 'q8_0')])).toThrow('q8_0: ne[0] (48) must be a multiple of the block size 32');
    expect(() => encodeGgufHeader([{ key: 'general.alignment', type: 'u32', value: 24 }], [])).toThrow(/power of two/);
    expect(() => encodeGgufHeader([{ key: 'n', type: 'u8', value: 256 }], [])).toThrow("gguf: metadata 'n': 256 is not a u8");
    await expect(writeGguf(tmpFile(), [arch], [t('a', [4], 'f32', 12)])).rejects.toThrow("gguf: tensor 'a' produced 12 bytes, expected 16 (f32 [4])");
  });
});

describe('export-gguf', () => {
  it('writes the golden tiny-sparse checkpoint as deepseek32: metadata from its config, every tensor from the checkpoint', async () => {
    const dir = join(GOLDEN, 'tiny-sparse');
    const path = tmpFile();
    const done = await exportGguf(dir, path);
    const g = readGguf(path);
    using ckpt = openCheckpoint(dir);
    const c = parseConfig(ckpt.config as Record<string, unknown>);
    const kv = (k: string) => g.kvs.get(k)?.value;
    expect(kv('general.architecture')).toBe('deepseek32');
    expect(kv('tokenizer.ggml.model')).toBe('llama');
    const tokens = kv('tokenizer.ggml.tokens') as string[];
    expect(tokens.length).toBe(c.vocabSize);
    expect(new Set(tokens).size).toBe(c.vocabSize);
    expect(tokens.slice(0, 4)).toEqual(['<s>', '</s>', '<unk>', '<0x00>']);
    expect((kv('tokenizer.ggml.token_type') as number[]).length).toBe(c.vocabSize);
    expect(kv('deepseek32.vocab_size')).toBe(c.vocabSize);
    expect(kv('deepseek32.block_count')).toBe(c.nLayers);
    expect(kv('deepseek32.attention.key_length')).toBe(c.kvLoraRank + c.qkRopeHeadDim);
    expect(kv('deepseek32.attention.key_length_mla')).toBe(c.qkNopeHeadDim + c.qkRopeHeadDim);
    expect(kv('deepseek32.attention.indexer.top_k')).toBe(c.indexTopk);
    expect(kv('deepseek32.expert_weights_scale')).toBe(Math.fround(c.routeScale));
    expect(kv('deepseek32.rope.scaling.factor')).toBe(Math.fround(c.rope.factor));
    expect(kv('deepseek32.expert_group_used_count')).toBe(c.nLimitedGroups);
    expect(g.tensors.length).toBe(done.tensors);
    const byName = new Map(g.tensors.map((t) => [t.name, t]));
    const elements = (name: string): Float64Array => {
      const t = byName.get(name)!;
      const n = t.ne.reduce((a, b) => a * b, 1);
      const at = g.dataOffset + t.offset;
      if (t.type === GGML_TYPES.q8_0.code) return dequantizeQ8_0(g.bytes.subarray(at, at + (n / 32) * 34), n);
      const bytes = g.bytes.slice(at, at + n * (t.type === GGML_TYPES.f32.code ? 4 : 2));
      return t.type === GGML_TYPES.f32.code ? Float64Array.from(new Float32Array(bytes.buffer)) : Float64Array.from(new Uint16Array(bytes.buffer), f16Value);
    };
    /** An FP8 weight decoded here from its codes and block scales, in float64: [rows][cols]. */
    const fp8 = async (name: string) => {
      using w = ckpt.tensor(`${name}.weight`);
      using s = ckpt.tensor(`${name}.weight_scale_inv`);
      const codes = await w.read<'f8e4m3'>();
      const scales = await s.toFloat32Array();
      const [rows, cols] = w.shape;
      const sCols = Math.ceil(cols / 128);
      return { rows, cols, at: (i: number, j: number) => e4m3Value(codes[i * cols + j]) * scales[Math.floor(i / 128) * sCols + Math.floor(j / 128)] };
    };
    const l = c.nLayers - 1; // a MoE layer
    const a = `model.layers.${l}.self_attn`;
    // kv_b split: k_b[h][j][n] = W_kv_b[h·(nope+v) + n][j], v_b[h][i][j] = W_kv_b[h·(nope+v) + nope + i][j]
    const kvb = await fp8(`${a}.kv_b_proj`);
    const H = c.nHeads, nope = c.qkNopeHeadDim, v = c.vHeadDim, R = c.kvLoraRank;
    expect(byName.get(`blk.${l}.attn_k_b.weight`)!.ne).toEqual([nope, R, H]);
    expect(byName.get(`blk.${l}.attn_v_b.weight`)!.ne).toEqual([R, v, H]);
    const kb = new Float64Array(H * R * nope), vb = new Float64Array(H * v * R);
    for (let h = 0; h < H; ++h)
      for (let j = 0; j < R; ++j) {
        for (let n = 0; n < nope; ++n) kb[(h * R + j) * nope + n] = kvb.at(h * (nope + v) + n, j);
        for (let i = 0; i < v; ++i) vb[(h * v + i) * R + j] = kvb.at(h * (nope + v) + nope + i, j);
      }
    expectQ8Close(elements(`blk.${l}.attn_k_b.weight`), kb, 'attn_k_b');
    expectQ8Close(elements(`blk.${l}.attn_v_b.weight`), vb, 'attn_v_b');
    // routed experts stacked [E][out][in]: expert 0 and the last
    const E = c.nRoutedExperts;
    const down = elements(`blk.${l}.ffn_down_exps.weight`);
    expect(byName.get(`blk.${l}.ffn_down_exps.weight`)!.ne).toEqual([c.moeInterDim, c.dim, E]);
    for (const e of [0, E - 1]) {
      const w = await fp8(`model.layers.${l}.mlp.experts.${e}.down_proj`);
      const want = new Float64Array(w.rows * w.cols);
      for (let i = 0; i < w.rows; ++i) for (let j = 0; j < w.cols; ++j) want[i * w.cols + j] = w.at(i, j);
      expectQ8Close(down.subarray(e * want.length, (e + 1) * want.length), want, `expert ${e} down`);
    }
    // a plain FP8 linear, the router (f32) and the embedding (f16)
    const qa = await fp8(`${a}.q_a_proj`);
    const qaWant = new Float64Array(qa.rows * qa.cols);
    for (let i = 0; i < qa.rows; ++i) for (let j = 0; j < qa.cols; ++j) qaWant[i * qa.cols + j] = qa.at(i, j);
    expectQ8Close(elements(`blk.${l}.attn_q_a.weight`), qaWant, 'attn_q_a');
    {
      using gate = ckpt.tensor(`model.layers.${l}.mlp.gate.weight`);
      expect(Array.from(elements(`blk.${l}.ffn_gate_inp.weight`))).toEqual(Array.from(await gate.toFloat32Array()));
      using emb = ckpt.tensor('model.embed_tokens.weight');
      expect(Array.from(elements('token_embd.weight'))).toEqual(Array.from(await emb.toFloat32Array(), (x) => roundF16(x)));
    }
    // the indexer is there (deepseek32), the MTP layer is not
    expect(byName.has(`blk.${l}.indexer.attn_q_b.weight`)).toBe(true);
    expect(byName.has(`blk.${c.nLayers}.attn_norm.weight`)).toBe(false);
  });

  it('deepseek2 drops the indexer and its keys', async () => {
    const path = tmpFile();
    await exportGguf(join(GOLDEN, 'tiny-sparse'), path, { arch: 'deepseek2' });
    const g = readGguf(path);
    expect(g.kvs.get('general.architecture')?.value).toBe('deepseek2');
    expect([...g.kvs.keys()].some((k) => k.includes('indexer'))).toBe(false);
    expect(g.tensors.some((t) => t.name.includes('indexer'))).toBe(false);
  });
});
