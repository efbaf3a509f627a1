import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { DisposedError, memoryStats, ops, tensor } from '../../lib/index.js';
import { type LoadProgress, openCheckpoint } from '../../lib/io/checkpoint.js';
import {
  type SafetensorsTensorData,
  SafetensorsError,
  openSafetensors,
  writeSafetensors,
} from '../../lib/io/safetensors.js';
import { native } from '../../lib/runtime/native.js';
import type { DType } from '../../lib/runtime/tensor.js';
import { rng } from '../helpers.js';
import { GOLDEN } from '../golden-dir.js';

const SHARD = join(GOLDEN, 'tiny-sparse', 'model-00001-of-00002.safetensors');
const tmp = mkdtempSync(join(tmpdir(), 'dsn-safetensors-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let counter = 0;
const tmpPath = (name = 'f.safetensors') => join(tmp, `${counter++}-${name}`);

const BYTES: Record<DType, number> = { f32: 4, bf16: 2, f16: 2, f8e4m3: 1, i32: 4, i64: 8, u8: 1 };

/** A file with the given header text (or bytes) and `dataBytes` bytes of data, header length as written. */
function rawFile(header: string | Uint8Array, dataBytes = 0, lengthField?: bigint): string {
  const h = typeof header === 'string' ? new TextEncoder().encode(header) : header;
  const b = Buffer.alloc(8 + h.length + dataBytes, 0x5a);
  b.writeBigUInt64LE(lengthField ?? BigInt(h.length), 0);
  b.set(h, 8);
  const p = tmpPath();
  writeFileSync(p, b);
  return p;
}

/** The message openSafetensors throws for `path` (and fails the test when it does not throw). */
function openError(path: string): Error {
  try {
    openSafetensors(path).close();
  } catch (e) {
    return e as Error;
  }
  throw new Error(`expected ${path} to be rejected`);
}

function randomBytes(r: ReturnType<typeof rng>, n: number): Uint8Array {
  const a = new Uint8Array(n);
  for (let i = 0; i < n; ++i) a[i] = r.int(0, 256);
  return a;
}

describe('openSafetensors', () => {
  it('maps a golden shard: every tensor reads back the bytes of the file, without a copy', async () => {
    const raw = readFileSync(SHARD);
    const dataStart = 8 + Number(raw.readBigUInt64LE(0));
    const index = JSON.parse(readFileSync(join(GOLDEN, 'tiny-sparse', 'model.safetensors.index.json'), 'utf8'));
    const inShard = Object.entries(index.weight_map as Record<string, string>).filter(([, f]) => f === 'model-00001-of-00002.safetensors');
    using f = openSafetensors(SHARD);
    expect(f.tensors.size).toBe(inShard.length);
    expect(f.metadata).toEqual({ format: 'pt' });
    expect(f.byteLength).toBe(raw.length);
    const before = memoryStats('cpu').inUseBytes;
    const ts = [...f.tensors.keys()].map((n) => [n, f.tensor(n)] as const);
    expect(memoryStats('cpu').inUseBytes).toBe(before); // borrowed from the mapping, nothing allocated
    for (const [name, t] of ts) {
      const info = f.tensors.get(name)!;
      expect(t.dtype).toBe(info.dtype);
      expect(t.shape).toEqual(info.shape);
      const got = new Uint8Array((await t.read()).buffer);
      const want = raw.subarray(dataStart + info.dataOffsets[0], dataStart + info.dataOffsets[1]);
      expect(Buffer.compare(Buffer.from(got), want)).toBe(0);
      t.dispose();
    }
    expect(f.tensors.get('model.layers.1.mlp.gate.e_score_correction_bias')).toMatchObject({ dtype: 'f32', shape: [16], byteLength: 64 });
    expect(f.tensors.get('model.layers.0.self_attn.q_b_proj.weight')).toMatchObject({ dtype: 'f8e4m3', shape: [384, 128] });
  });

  const seed = rng().seed;
  it(`round-trips every dtype, odd shapes, scalars and empty tensors (seed ${seed})`, async () => {
    const r = rng(seed);
    const dtypes: DType[] = ['f32', 'bf16', 'f16', 'f8e4m3', 'i32', 'i64', 'u8'];
    const tensors = new Map<string, SafetensorsTensorData>();
    for (const dtype of dtypes) {
      const shape = [r.int(1, 7), r.int(1, 13)];
      tensors.set(`w.${dtype}`, { dtype, shape, data: randomBytes(r, shape[0] * shape[1] * BYTES[dtype]) });
    }
    tensors.set('scalar', { dtype: 'f32', shape: [], data: new Float32Array([r.normal()]) });
    tensors.set('empty', { dtype: 'bf16', shape: [3, 0], data: new Uint8Array(0) });
    tensors.set('odd.u8', { dtype: 'u8', shape: [r.int(1, 5) * 2 + 1], data: randomBytes(r, 0) });
    const odd = tensors.get('odd.u8')!;
    odd.data = randomBytes(r, odd.shape[0]);
    const p = tmpPath();
    writeSafetensors(p, tensors, { format: 'pt', note: 'ünïcode' });
    using f = openSafetensors(p);
    expect([...f.tensors.keys()]).toEqual([...tensors.keys()]);
    expect(f.metadata).toEqual({ format: 'pt', note: 'ünïcode' });
    for (const [name, want] of tensors) {
      using t = f.tensor(name);
      expect(t.shape).toEqual(want.shape);
      expect(t.dtype).toBe(want.dtype);
      // Reading a 0-byte tensor is a known runtime issue (detached ArrayBuffer), not a loader one.
      if (want.data.byteLength === 0) continue;
      const got = await t.read();
      expect(Buffer.from(got.buffer, got.byteOffset, got.byteLength)).toEqual(Buffer.from(want.data.buffer, want.data.byteOffset, want.data.byteLength));
    }
  });

  it(`copies a tensor whose offset is not a multiple of its element size (seed ${seed})`, async () => {
    const r = rng(seed);
    const x = new Float32Array(r.int(3, 40)).map(() => r.normal());
    // A 1-byte u8 first puts the f32 tensor at an odd address.
    const p = tmpPath();
    writeSafetensors(p, [['pad', { dtype: 'u8', shape: [1], data: new Uint8Array([7]) }], ['x', { dtype: 'f32', shape: [x.length], data: x }]]);
    using f = openSafetensors(p);
    expect(f.tensors.get('x')!.dataOffsets).toEqual([1, 1 + 4 * x.length]);
    using t = f.tensor('x');
    expect(await t.toFloat32Array()).toEqual(x);
  });

  it('tensors outlive close(); tensor() after close() throws DisposedError; close() is safe twice', async () => {
    const f = openSafetensors(SHARD);
    const t = f.tensor('model.layers.0.input_layernorm.weight');
    f.close();
    f.close();
    expect(f.closed).toBe(true);
    expect((await t.toFloat32Array()).length).toBe(256);
    t.dispose();
    expect(() => f.tensor('lm_head.weight')).toThrow(DisposedError);
    expect(() => f.tensor('lm_head.weight')).toThrow(`${SHARD}: tensor 'lm_head.weight': the file was closed`);
  });

  it('names the file and tensor for an unknown tensor or a bad argument', () => {
    using f = openSafetensors(SHARD);
    expect(() => f.tensor('nope')).toThrow(new SafetensorsError(`${SHARD}: tensor 'nope': not in this file (expected one of its ${f.tensors.size} tensors)`));
    expect(() => f.tensor('lm_head.weight', 'tpu')).toThrow(TypeError);
    expect(() => openSafetensors(42 as unknown as string)).toThrow('openSafetensors: expected a file path for path but received 42 of type number');
  });

  it('rejects unreadable files with the path and the reason', () => {
    const missing = join(tmp, 'missing.safetensors');
    expect(openError(missing).message).toMatch(new RegExp(`^${missing}: cannot open: No such file or directory \\(errno 2\\)$`));
    expect(openError(missing)).toBeInstanceOf(SafetensorsError);
    expect(openError(tmp).message).toBe(`${tmp}: not a regular file`);
  });

  it('rejects bad header lengths with expected and received values', () => {
    const small = tmpPath();
    writeFileSync(small, Buffer.from([1, 2, 3]));
    expect(openError(small).message).toBe(`${small}: file too small for a safetensors header (expected at least 8 bytes, received 3 bytes)`);
    const empty = tmpPath();
    writeFileSync(empty, Buffer.alloc(0));
    expect(openError(empty).message).toBe(`${empty}: file too small for a safetensors header (expected at least 8 bytes, received 0 bytes)`);
    const big = rawFile('{}', 4, 7n);
    expect(openError(big).message).toBe(`${big}: header length exceeds the file (expected at most 6 bytes, received 7)`);
    const neg = rawFile('{}', 0, 0xffff_ffff_ffff_fffen);
    expect(openError(neg).message).toBe(`${neg}: header length exceeds the file (expected at most 2 bytes, received 18446744073709551614)`);
  });

  it('rejects a header over 100 MiB even when the file is that large', () => {
    const p = tmpPath();
    const n = 100 * 1024 * 1024 + 1;
    const b = Buffer.alloc(10);
    b.writeBigUInt64LE(BigInt(n), 0);
    b.write('{}', 8);
    writeFileSync(p, b);
    truncateSync(p, 8 + n); // sparse: no data written
    expect(openError(p).message).toBe(`${p}: header length too large (expected at most 104857600 bytes, received 104857601)`);
    rmSync(p);
  });

  it('rejects malformed headers with one exact message each', () => {
    const cases: [string | Uint8Array, number, string][] = [
      [new Uint8Array([0x7b, 0xff, 0x7d]), 0, 'header is not valid UTF-8 (expected UTF-8 JSON, received invalid byte sequences)'],
      ['[1, 2]', 0, 'header is not a JSON object (expected an object, received an array)'],
      ['null', 0, 'header is not a JSON object (expected an object, received null)'],
      ['{"__metadata__": [1]}', 0, '__metadata__ is not an object (expected a map of strings, received [1])'],
      ['{"__metadata__": {"a": 1}}', 0, "__metadata__ 'a' is not a string (expected a string, received 1)"],
      ['{"w": 3}', 0, "tensor 'w': entry is not an object (expected {dtype, shape, data_offsets}, received 3)"],
      ['{"w": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]}}', 8,
        "tensor 'w': unsupported dtype (expected one of F8_E4M3, BF16, F16, F32, I32, I64, U8, received \"F64\")"],
      ['{"w": {"dtype": "F32", "shape": [2.5], "data_offsets": [0, 8]}}', 8,
        "tensor 'w': shape is not an array of non-negative integers (expected e.g. [4096, 7168], received [2.5])"],
      ['{"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 8]}}', 8,
        "tensor 'w': shape is not an array of non-negative integers (expected e.g. [4096, 7168], received [-1])"],
      ['{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0]}}', 8,
        "tensor 'w': data_offsets are not two non-negative integers (expected [begin, end], received [0])"],
      ['{"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}', 8,
        "tensor 'w': data_offsets end before begin (expected end >= 8, received 0)"],
      ['{"w": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}', 8,
        "tensor 'w': data_offsets past the data region (expected end <= 8, received 12)"],
      ['{"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}', 8,
        "tensor 'w': byte length does not match shape and dtype (expected 12 bytes for F32 [3], received 8)"],
      ['{"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}, "b": {"dtype": "U8", "shape": [4], "data_offsets": [3, 7]}}', 8,
        "tensor 'b': data_offsets overlap tensor 'a' (expected begin >= 4, received 3)"],
    ];
    for (const [header, data, what] of cases) {
      const p = rawFile(header, data);
      const e = openError(p);
      expect(e).toBeInstanceOf(SafetensorsError);
      expect(e.message).toBe(`${p}: ${what}`);
    }
    const p = rawFile('{"a": ', 0);
    expect(openError(p).message).toMatch(new RegExp(`^${p}: header is not valid JSON \\(expected a JSON object, received a parse error: .+\\)$`));
  });

  it('accepts empty tensors anywhere, adjacent ranges, gaps and a header with no tensors', () => {
    const p = rawFile('{"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}, "z": {"dtype": "F32", "shape": [0, 5], "data_offsets": [2, 2]}, "b": {"dtype": "U8", "shape": [2], "data_offsets": [4, 6]}, "c": {"dtype": "U8", "shape": [1], "data_offsets": [9, 10]}}', 12);
    using f = openSafetensors(p);
    expect([...f.tensors.keys()]).toEqual(['a', 'z', 'b', 'c']);
    using z = f.tensor('z');
    expect(z.shape).toEqual([0, 5]);
    using g = openSafetensors(rawFile('{}', 0));
    expect(g.tensors.size).toBe(0);
  });

  it('the native side re-checks every range it is handed, naming file and tensor', () => {
    const p = rawFile('{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}', 8);
    const { handle } = native().ops.safetensorsOpen(p);
    const t = native().ops.safetensorsTensor;
    expect(() => t(handle, 'w', 'f32', [2], 4, 12, 'cpu')).toThrow(`${p}: tensor 'w': data_offsets past the data region (expected end <= 8, received 12)`);
    expect(() => t(handle, 'w', 'f32', [3], 0, 8, 'cpu')).toThrow(`${p}: tensor 'w': byte length does not match shape and dtype (expected 12 bytes, received 8)`);
    expect(() => t(handle, 'w', 'f32', [2], 8, 0, 'cpu')).toThrow(`${p}: tensor 'w': data_offsets end before begin (expected end >= 8, received 0)`);
    expect(() => t(handle, 'w', 'f32', [2 ** 40, 2 ** 40], 0, 8, 'cpu')).toThrow(`${p}: tensor 'w': shape too large (expected at most 2^62 bytes)`);
    expect(() => t(handle, 'w', 'f32', [-1], 0, 8, 'cpu')).toThrow('safetensorsTensor: dimension 0 of shape must be a non-negative integer');
    expect(() => t(handle, 'w', 'f32', [2], -1, 8, 'cpu')).toThrow(RangeError);
    expect(() => t({}, 'w', 'f32', [2], 0, 8, 'cpu')).toThrow('safetensorsTensor: expected a safetensors handle for handle');
    expect(() => t(handle, 'w', 'f64', [2], 0, 8, 'cpu')).toThrow("safetensorsTensor: expected a dtype (f32, bf16, f16, f8e4m3, i32, i64, u8) for dtype but received 'f64'");
    native().ops.safetensorsTensor(handle, 'w', 'f32', [2], 0, 8, 'cpu').dispose();
    native().ops.safetensorsClose(handle);
    expect(() => t(handle, 'w', 'f32', [2], 0, 8, 'cpu')).toThrow("safetensorsTensor: tensor 'w': the file was closed");
  });
});

describe('openCheckpoint', () => {
  for (const name of ['tiny-dense', 'tiny-sparse']) {
    it(`opens golden ${name}: config, names, info, tensors and progress`, async () => {
      const dir = join(GOLDEN, name);
      const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8'));
      const seen: LoadProgress[] = [];
      using ck = openCheckpoint(dir, { onProgress: (p) => seen.push(p) });
      expect(ck.config).toEqual(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')));
      expect(ck.names()).toEqual(Object.keys(index.weight_map));
      expect(ck.files).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
      expect(ck.has('model.norm.weight')).toBe(true);
      expect(ck.has('model.nope')).toBe(false);
      expect(ck.info('model.layers.1.mlp.gate.e_score_correction_bias')).toMatchObject({ dtype: 'f32', file: index.weight_map['model.layers.1.mlp.gate.e_score_correction_bias'] });
      let bytesTotal = 0;
      for (const n of ck.names()) bytesTotal += ck.info(n).byteLength;
      expect(bytesTotal).toBe(index.metadata.total_size);
      const names = ck.names();
      for (const n of names) ck.tensor(n).dispose();
      ck.tensor(names[0]).dispose(); // a second time counts nothing
      expect(seen.length).toBe(names.length);
      expect(seen.at(-1)).toEqual({ tensorsLoaded: names.length, tensorsTotal: names.length, bytesLoaded: bytesTotal, bytesTotal });
      expect(seen[0]).toEqual({ tensorsLoaded: 1, tensorsTotal: names.length, bytesLoaded: ck.info(names[0]).byteLength, bytesTotal });
      const w = ck.tensor('model.layers.0.self_attn.kv_a_layernorm.weight');
      ck.close();
      ck.close();
      expect((await w.toFloat32Array()).length).toBe(128);
      w.dispose();
      expect(() => ck.names()).toThrow(DisposedError);
      expect(() => ck.tensor('model.norm.weight')).toThrow(`${dir}: tensor('model.norm.weight'): the checkpoint was closed`);
    });
  }

  /** A copy of golden tiny-dense to break. */
  function copyDense(): string {
    const dir = tmpPath('ck');
    mkdirSync(dir);
    for (const f of ['config.json', 'model.safetensors.index.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'])
      copyFileSync(join(GOLDEN, 'tiny-dense', f), join(dir, f));
    return dir;
  }
  const editIndex = (dir: string, edit: (index: { weight_map: Record<string, string> }) => void) => {
    const p = join(dir, 'model.safetensors.index.json');
    const index = JSON.parse(readFileSync(p, 'utf8'));
    edit(index);
    writeFileSync(p, JSON.stringify(index));
  };

  it('opens a single model.safetensors', () => {
    const dir = tmpPath('single');
    mkdirSync(dir);
    writeFileSync(join(dir, 'config.json'), '{"model_type": "x"}');
    writeSafetensors(join(dir, 'model.safetensors'), [['a', { dtype: 'f32', shape: [2], data: new Float32Array([1, 2]) }]]);
    using ck = openCheckpoint(dir);
    expect(ck.names()).toEqual(['a']);
    expect(ck.info('a')).toEqual({ dtype: 'f32', shape: [2], byteLength: 8, file: 'model.safetensors' });
    expect(ck.config).toEqual({ model_type: 'x' });
  });

  it('rejects missing folders, files and tensors with the path at fault', () => {
    const none = join(tmp, 'no-such-dir');
    expect(() => openCheckpoint(none)).toThrow(new RegExp(`^${none}: checkpoint folder not found \\(ENOENT`));
    expect(() => openCheckpoint(SHARD)).toThrow(`${SHARD}: not a folder (expected a checkpoint folder)`);

    const empty = tmpPath('empty');
    mkdirSync(empty);
    expect(() => openCheckpoint(empty)).toThrow(new RegExp(`^${empty}/config.json: cannot read \\(ENOENT`));
    writeFileSync(join(empty, 'config.json'), '{}');
    expect(() => openCheckpoint(empty)).toThrow(`${empty}: no model.safetensors.index.json or model.safetensors in the checkpoint folder`);
    writeFileSync(join(empty, 'config.json'), '{oops');
    expect(() => openCheckpoint(empty)).toThrow(new RegExp(`^${empty}/config.json: not valid JSON`));

    const a = copyDense();
    rmSync(join(a, 'model-00002-of-00002.safetensors'));
    expect(() => openCheckpoint(a)).toThrow(new RegExp(`^${a}/model-00002-of-00002.safetensors: cannot open: No such file or directory`));

    const b = copyDense();
    editIndex(b, (i) => (i.weight_map['model.norm.weight'] = i.weight_map['model.norm.weight'].includes('00001') ? 'model-00002-of-00002.safetensors' : 'model-00001-of-00002.safetensors'));
    expect(() => openCheckpoint(b)).toThrow(new RegExp(`^${b}/model.safetensors.index.json: tensor 'model.norm.weight': mapped to model-0000[12]-of-00002.safetensors, which does not hold it$`));

    const c = copyDense();
    editIndex(c, (i) => (i.weight_map['model.norm.weight'] = '../model-00001-of-00002.safetensors'));
    expect(() => openCheckpoint(c)).toThrow(
      `${c}/model.safetensors.index.json: tensor 'model.norm.weight': weight_map entry is not a file name in the folder (expected e.g. 'model-00001-of-00002.safetensors', received "../model-00001-of-00002.safetensors")`,
    );

    const d = copyDense();
    editIndex(d, (i) => (i.weight_map = 5 as unknown as Record<string, string>));
    expect(() => openCheckpoint(d)).toThrow(`${d}/model.safetensors.index.json: no weight_map object (expected {"weight_map": {name: file}})`);

    const e = copyDense();
    const shard = join(e, 'model-00001-of-00002.safetensors');
    writeFileSync(shard, readFileSync(shard).subarray(0, 1000));
    expect(() => openCheckpoint(e)).toThrow(SafetensorsError);

    using ck = openCheckpoint(copyDense());
    expect(() => ck.tensor('model.nope')).toThrow(`${ck.dir}: tensor 'model.nope': not in this checkpoint (expected one of its ${ck.names().length} tensors)`);
  });
});

describe('mapped tensors are read-only', () => {
  it('an op that writes in place refuses a tensor mapped from a checkpoint', async () => {
    using ck = openCheckpoint(join(GOLDEN, 'tiny-dense'));
    using w = ck.tensor('model.layers.0.self_attn.o_proj.weight', 'cpu'); // [256, 256] f8e4m3
    using cache = w.reshape([1, 64, 1024]);
    using rows = tensor(new Uint8Array(1024), { shape: [1, 1024], dtype: 'f8e4m3' });
    using slots = tensor(Int32Array.from([0]));
    expect(() => ops.pagedWrite(cache, rows, slots)).toThrow('pagedWrite: cache is read-only memory (a tensor mapped from a checkpoint file)');
  });
});
