/**
 * The GGUF container (version 3, little-endian), as llama.cpp reads it: a header (magic "GGUF",
 * version, tensor count, metadata count), the metadata key/value pairs, one info record per tensor
 * (name, dimensions with ne[0] the contiguous one, ggml type, offset into the data section), padding
 * to `general.alignment` (32 by default), then each tensor's bytes at its offset, every offset a
 * multiple of the alignment. Strings are a u64 byte length and UTF-8 bytes, no terminator.
 *
 * writeGguf streams the file: the header is built from the tensors' shapes and types, then each
 * tensor's bytes are produced one at a time (a 1 GB model never sits in memory whole).
 * readGguf is the inverse, kept small: it parses a whole file in memory (tests, small files).
 */
import { closeSync, openSync, readFileSync } from 'node:fs';

import { writeAll } from '../../io/safetensors.js';

export const GGUF_MAGIC = 'GGUF';
export const GGUF_VERSION = 3;
/** general.alignment when the file does not say otherwise. */
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** Metadata value types and their codes in the file. */
export const GGUF_VALUE_TYPES = Object.freeze({
  u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12,
});
export type GgufScalarType = Exclude<keyof typeof GGUF_VALUE_TYPES, 'array'>;

/** One metadata entry; 64-bit integers as bigint, arrays of one scalar type. */
export type GgufKv =
  | { key: string; type: Exclude<GgufScalarType, 'u64' | 'i64' | 'string' | 'bool'>; value: number }
  | { key: string; type: 'u64' | 'i64'; value: bigint }
  | { key: string; type: 'string'; value: string }
  | { key: string; type: 'bool'; value: boolean }
  | { key: string; type: 'array'; itemType: GgufScalarType; value: readonly (number | bigint | string | boolean)[] };

/** The ggml tensor types this writer knows: their codes, and the bytes of a block of elements. */
export const GGML_TYPES = Object.freeze({
  f32: { code: 0, blockElements: 1, blockBytes: 4 },
  f16: { code: 1, blockElements: 1, blockBytes: 2 },
  /** 32 weights: an f16 scale d, then 32 int8 q; weight = d · q. */
  q8_0: { code: 8, blockElements: 32, blockBytes: 34 },
});
export type GgmlType = keyof typeof GGML_TYPES;

export interface GgufTensor {
  name: string;
  type: GgmlType;
  /** ggml order: ne[0] is the contiguous dimension (a [rows, cols] row-major matrix is [cols, rows]). */
  ne: readonly number[];
  /** The tensor's bytes (exactly ggmlByteLength(type, ne) of them), asked for once, in file order. */
  data: () => Uint8Array | Promise<Uint8Array>;
}

/** Bytes of a tensor of `type` and dimensions `ne`; throws when ne[0] is not a whole number of blocks. */
export function ggmlByteLength(type: GgmlType, ne: readonly number[]): number {
  const t = GGML_TYPES[type];
  if (!t) throw new TypeError(`ggml type must be one of ${Object.keys(GGML_TYPES).join(', ')} but received '${type}'`);
  if (ne.length < 1 || ne.length > 4 || ne.some((n) => !Number.isSafeInteger(n) || n < 1))
    throw new RangeError(`ggml dimensions must be 1 to 4 positive integers but received [${ne.join(', ')}]`);
  if (ne[0] % t.blockElements !== 0)
    throw new RangeError(`${type}: ne[0] (${ne[0]}) must be a multiple of the block size ${t.blockElements}`);
  return (ne.reduce((a, b) => a * b, 1) / t.blockElements) * t.blockBytes;
}

/** Bytes of each fixed-size scalar type, and the range of each integer one. */
const SCALAR_BYTES: Record<Exclude<GgufScalarType, 'string'>, number> = { u8: 1, i8: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, bool: 1, u64: 8, i64: 8, f64: 8 };
const INT_RANGE: Record<'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32', [number, number]> = {
  u8: [0, 0xff], i8: [-0x80, 0x7f], u16: [0, 0xffff], i16: [-0x8000, 0x7fff], u32: [0, 0xffffffff], i32: [-0x80000000, 0x7fffffff],
};

/** Appends little-endian values to a growing byte buffer. */
class ByteSink {
  #buf = new Uint8Array(1 << 16);
  #view = new DataView(this.#buf.buffer);
  length = 0;
  #room(n: number): number {
    if (this.length + n > this.#buf.length) {
      const next = new Uint8Array(Math.max(this.#buf.length * 2, this.length + n));
      next.set(this.#buf.subarray(0, this.length));
      this.#buf = next;
      this.#view = new DataView(next.buffer);
    }
    const at = this.length;
    this.length += n;
    return at;
  }
  // Each write takes its room first: #room may replace the buffer and its view.
  u32(v: number): void {
    const at = this.#room(4);
    this.#view.setUint32(at, v, true);
  }
  u64(v: number | bigint): void {
    const at = this.#room(8);
    this.#view.setBigUint64(at, BigInt(v), true);
  }
  bytes(b: Uint8Array): void {
    const at = this.#room(b.length);
    this.#buf.set(b, at);
  }
  string(s: string): void {
    const b = new TextEncoder().encode(s);
    this.u64(b.length);
    this.bytes(b);
  }
  scalar(type: GgufScalarType, v: number | bigint | string | boolean, key: string): void {
    const bad = () => new TypeError(`gguf: metadata '${key}': ${JSON.stringify(typeof v === 'bigint' ? String(v) : v)} is not a ${type}`);
    if (type === 'string') {
      if (typeof v !== 'string') throw bad();
      return this.string(v);
    }
    const ok =
      type === 'bool' ? typeof v === 'boolean'
      : type === 'u64' || type === 'i64' ? typeof v === 'bigint'
      : typeof v === 'number' && Number.isFinite(v) && (type === 'f32' || type === 'f64' || (Number.isInteger(v) && v >= INT_RANGE[type][0] && v <= INT_RANGE[type][1]));
    if (!ok) throw bad();
    const at = this.#room(SCALAR_BYTES[type]);
    const view = this.#view;
    switch (type) {
      case 'bool': view.setUint8(at, v ? 1 : 0); break;
      case 'u64': view.setBigUint64(at, v as bigint, true); break;
      case 'i64': view.setBigInt64(at, v as bigint, true); break;
      case 'u8': view.setUint8(at, v as number); break;
      case 'i8': view.setInt8(at, v as number); break;
      case 'u16': view.setUint16(at, v as number, true); break;
      case 'i16': view.setInt16(at, v as number, true); break;
      case 'u32': view.setUint32(at, v as number, true); break;
      case 'i32': view.setInt32(at, v as number, true); break;
      case 'f32': view.setFloat32(at, v as number, true); break;
      case 'f64': view.setFloat64(at, v as number, true); break;
    }
  }
  pad(alignment: number): void {
    const n = (alignment - (this.length % alignment)) % alignment;
    this.#room(n);
    this.#buf.fill(0, this.length - n, this.length);
  }
  get view(): Uint8Array {
    return this.#buf.subarray(0, this.length);
  }
}

/** The alignment a metadata list asks for (general.alignment, a u32 power of two), or the default. */
function alignmentOf(kvs: readonly GgufKv[]): number {
  const a = kvs.find((kv) => kv.key === 'general.alignment');
  if (!a) return GGUF_DEFAULT_ALIGNMENT;
  if (a.type !== 'u32' || a.value < 1 || (a.value & (a.value - 1)) !== 0)
    throw new RangeError(`gguf: general.alignment must be a u32 power of two but received ${JSON.stringify(a.value)}`);
  return a.value;
}

/** The header, metadata and tensor infos, padded to the alignment; and each tensor's data offset. */
export function encodeGgufHeader(kvs: readonly GgufKv[], tensors: readonly Omit<GgufTensor, 'data'>[]): { header: Uint8Array; offsets: number[]; dataBytes: number } {
  const alignment = alignmentOf(kvs);
  const keys = new Set<string>();
  for (const kv of kvs) {
    if (keys.has(kv.key)) throw new RangeError(`gguf: metadata key '${kv.key}' given twice`);
    keys.add(kv.key);
  }
  const names = new Set<string>();
  const s = new ByteSink();
  s.bytes(new TextEncoder().encode(GGUF_MAGIC));
  s.u32(GGUF_VERSION);
  s.u64(tensors.length);
  s.u64(kvs.length);
  for (const kv of kvs) {
    s.string(kv.key);
    s.u32(GGUF_VALUE_TYPES[kv.type]);
    if (kv.type === 'array') {
      if (!(kv.itemType in GGUF_VALUE_TYPES) || kv.itemType === ('array' as string)) throw new TypeError(`gguf: metadata '${kv.key}': array item type '${kv.itemType}'`);
      s.u32(GGUF_VALUE_TYPES[kv.itemType]);
      s.u64(kv.value.length);
      for (const v of kv.value) s.scalar(kv.itemType, v, kv.key);
    } else {
      s.scalar(kv.type, kv.value, kv.key);
    }
  }
  const offsets: number[] = [];
  let offset = 0;
  for (const t of tensors) {
    if (names.has(t.name)) throw new RangeError(`gguf: tensor '${t.name}' given twice`);
    names.add(t.name);
    const bytes = ggmlByteLength(t.type, t.ne);
    s.string(t.name);
    s.u32(t.ne.length);
    for (const n of t.ne) s.u64(n);
    s.u32(GGML_TYPES[t.type].code);
    s.u64(offset);
    offsets.push(offset);
    offset += Math.ceil(bytes / alignment) * alignment;
  }
  s.pad(alignment);
  return { header: s.view, offsets, dataBytes: offset };
}

/** Writes a GGUF file to `path`; returns its size in bytes. */
export async function writeGguf(path: string, kvs: readonly GgufKv[], tensors: readonly GgufTensor[]): Promise<number> {
  const { header, offsets, dataBytes } = encodeGgufHeader(kvs, tensors);
  const alignment = alignmentOf(kvs);
  const fd = openSync(path, 'w');
  try {
    writeAll(fd, header);
    let at = 0;
    for (let i = 0; i < tensors.length; ++i) {
      const t = tensors[i];
      if (at !== offsets[i]) writeAll(fd, new Uint8Array(offsets[i] - at));
      const bytes = await t.data();
      const want = ggmlByteLength(t.type, t.ne);
      if (!(bytes instanceof Uint8Array) || bytes.length !== want)
        throw new RangeError(`gguf: tensor '${t.name}' produced ${bytes?.length} bytes, expected ${want} (${t.type} [${t.ne.join(', ')}])`);
      writeAll(fd, bytes);
      at = offsets[i] + bytes.length;
    }
    const end = Math.ceil(at / alignment) * alignment;
    if (end > at) writeAll(fd, new Uint8Array(end - at));
    return header.length + Math.max(end, dataBytes);
  } finally {
    closeSync(fd);
  }
}

export interface GgufTensorInfo {
  name: string;
  type: number;
  ne: number[];
  /** From the start of the data section. */
  offset: number;
}

export interface ParsedGguf {
  version: number;
  /** Every metadata entry, in file order; 64-bit integers as bigint. */
  kvs: Map<string, { type: number; itemType?: number; value: unknown }>;
  tensors: GgufTensorInfo[];
  alignment: number;
  /** Where the data section starts in the file. */
  dataOffset: number;
  /** The whole file. */
  bytes: Uint8Array;
}

export class GgufFormatError extends Error {
  override name = 'GgufFormatError';
}

/** Parses a GGUF file (read whole into memory) written by writeGguf or anyone else. */
export function readGguf(path: string): ParsedGguf {
  const bytes = new Uint8Array(readFileSync(path));
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  const need = (n: number, what: string) => {
    if (at + n > bytes.length) throw new GgufFormatError(`${path}: truncated reading ${what} at byte ${at}`);
  };
  const u32 = (what: string) => (need(4, what), (at += 4), view.getUint32(at - 4, true));
  const u64 = (what: string) => (need(8, what), (at += 8), view.getBigUint64(at - 8, true));
  const len = (what: string) => {
    const n = u64(what);
    if (n > BigInt(bytes.length)) throw new GgufFormatError(`${path}: ${what}: length ${n} past the end of the file`);
    return Number(n);
  };
  const str = (what: string) => {
    const n = len(what);
    need(n, what);
    at += n;
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(at - n, at));
  };
  const scalar = (code: number, what: string): unknown => {
    const size = [1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8][code];
    if (code === GGUF_VALUE_TYPES.string) return str(what);
    if (size === undefined || size === 0) throw new GgufFormatError(`${path}: ${what}: value type ${code} unknown`);
    need(size, what);
    at += size;
    const p = at - size;
    switch (code) {
      case 0: return view.getUint8(p);
      case 1: return view.getInt8(p);
      case 2: return view.getUint16(p, true);
      case 3: return view.getInt16(p, true);
      case 4: return view.getUint32(p, true);
      case 5: return view.getInt32(p, true);
      case 6: return view.getFloat32(p, true);
      case 7: return view.getUint8(p) !== 0;
      case 10: return view.getBigUint64(p, true);
      case 11: return view.getBigInt64(p, true);
      default: return view.getFloat64(p, true);
    }
  };
  need(4, 'magic');
  const magic = new TextDecoder().decode(bytes.subarray(0, 4));
  if (magic !== GGUF_MAGIC) throw new GgufFormatError(`${path}: not a GGUF file (magic ${JSON.stringify(magic)})`);
  at = 4;
  const version = u32('version');
  if (version !== 2 && version !== 3) throw new GgufFormatError(`${path}: GGUF version ${version} (expected 2 or 3)`);
  const nTensors = Number(u64('tensor count'));
  const nKv = Number(u64('metadata count'));
  const kvs: ParsedGguf['kvs'] = new Map();
  for (let i = 0; i < nKv; ++i) {
    const key = str(`metadata key ${i}`);
    const type = u32(`'${key}' type`);
    if (type === GGUF_VALUE_TYPES.array) {
      const itemType = u32(`'${key}' item type`);
      const n = len(`'${key}' length`);
      const value = [];
      for (let j = 0; j < n; ++j) value.push(scalar(itemType, `'${key}'[${j}]`));
      kvs.set(key, { type, itemType, value });
    } else {
      kvs.set(key, { type, value: scalar(type, `'${key}'`) });
    }
  }
  const tensors: GgufTensorInfo[] = [];
  for (let i = 0; i < nTensors; ++i) {
    const name = str(`tensor ${i} name`);
    const nDims = u32(`'${name}' dimension count`);
    if (nDims < 1 || nDims > 4) throw new GgufFormatError(`${path}: tensor '${name}': ${nDims} dimensions`);
    const ne = Array.from({ length: nDims }, () => Number(u64(`'${name}' dimensions`)));
    const type = u32(`'${name}' type`);
    const offset = Number(u64(`'${name}' offset`));
    tensors.push({ name, type, ne, offset });
  }
  const a = kvs.get('general.alignment');
  const alignment = a ? Number(a.value) : GGUF_DEFAULT_ALIGNMENT;
  const dataOffset = Math.ceil(at / alignment) * alignment;
  return { version, kvs, tensors, alignment, dataOffset, bytes };
}
