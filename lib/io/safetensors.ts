/**
 * Safetensors files, memory-mapped. `openSafetensors(path)` maps the file read-only, validates its
 * header completely before anything is used, and `tensor(name)` returns a Tensor that on the CPU
 * points into the mapping (no copy; the mapping lives as long as any such tensor) and on a CUDA
 * device is copied into fresh device memory.
 *
 * Layout: 8 bytes little-endian u64 header length N, N bytes of UTF-8 JSON
 * `{ "<name>": { "dtype": "BF16", "shape": [..], "data_offsets": [begin, end] }, …, "__metadata__": {..} }`,
 * then the data region; offsets are relative to the data region's start (8 + N).
 *
 * Every error names the file, and the tensor where there is one:
 * `<file>: tensor '<name>': <what> (expected …, received …)`.
 * The native side re-checks every range it is handed, so a bug here cannot read out of bounds.
 * CPU tensors that borrow the mapping are read-only memory: ops read them, nothing may write them.
 */
import { closeSync, openSync, statSync, writeSync } from 'node:fs';

import { DisposedError, invalidArgument, isPlainObject } from '../runtime/errors.js';
import { native } from '../runtime/native.js';
import { DTYPE_BYTES, type DType, type DeviceName, Tensor } from '../runtime/tensor.js';

/** Thrown when a safetensors file (or a checkpoint's index) is malformed or cannot be read. */
export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

/** Safetensors dtype names accepted, and the dtype each becomes. Anything else is rejected. */
export const SAFETENSORS_DTYPES: Readonly<Record<string, DType>> = Object.freeze({
  F8_E4M3: 'f8e4m3',
  BF16: 'bf16',
  F16: 'f16',
  F32: 'f32',
  I32: 'i32',
  I64: 'i64',
  U8: 'u8',
});

/** Largest header accepted: 100 MiB (as the native side checks). */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

/** One tensor as the header describes it. */
export interface SafetensorsTensorInfo {
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** numel × element size. */
  readonly byteLength: number;
  /** [begin, end) in bytes, relative to the start of the data region. */
  readonly dataOffsets: readonly [number, number];
}

/** A parsed and validated header. */
export interface SafetensorsHeader {
  tensors: Map<string, SafetensorsTensorInfo>;
  metadata: Record<string, string>;
}

interface NativeOpenResult {
  handle: unknown;
  fileBytes: number;
  dataBytes: number;
  header: Uint8Array;
}

function show(value: unknown): string {
  let s: string;
  try {
    s = value === undefined ? 'undefined' : JSON.stringify(value);
  } catch {
    s = String(value);
  }
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/**
 * Parses and validates a header: UTF-8 JSON object; per tensor a supported dtype, a shape of
 * non-negative integers, data_offsets [begin, end] with end − begin = numel × size inside the data
 * region of `dataBytes` bytes; no two tensors overlapping; `__metadata__` a map of strings.
 * @internal Exported for tests and tools; `openSafetensors` is the API.
 */
export function parseSafetensorsHeader(file: string, bytes: Uint8Array, dataBytes: number): SafetensorsHeader {
  const fail = (what: string) => new SafetensorsError(`${file}: ${what}`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw fail('header is not valid UTF-8 (expected UTF-8 JSON, received invalid byte sequences)');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw fail(`header is not valid JSON (expected a JSON object, received a parse error: ${(e as Error).message})`);
  }
  if (!isPlainObject(json))
    throw fail(`header is not a JSON object (expected an object, received ${Array.isArray(json) ? 'an array' : show(json)})`);

  const metadata: Record<string, string> = {};
  const tensors = new Map<string, SafetensorsTensorInfo>();
  for (const [name, entry] of Object.entries(json)) {
    if (name === '__metadata__') {
      if (!isPlainObject(entry)) throw fail(`__metadata__ is not an object (expected a map of strings, received ${show(entry)})`);
      for (const [k, v] of Object.entries(entry)) {
        if (typeof v !== 'string') throw fail(`__metadata__ '${k}' is not a string (expected a string, received ${show(v)})`);
        Object.defineProperty(metadata, k, { value: v, enumerable: true, writable: true, configurable: true });
      }
      continue;
    }
    const bad = (what: string) => fail(`tensor '${name}': ${what}`);
    if (!isPlainObject(entry)) throw bad(`entry is not an object (expected {dtype, shape, data_offsets}, received ${show(entry)})`);
    const { dtype: st, shape, data_offsets: offsets } = entry;
    const dtype = typeof st === 'string' && Object.hasOwn(SAFETENSORS_DTYPES, st) ? SAFETENSORS_DTYPES[st] : undefined;
    if (!dtype) throw bad(`unsupported dtype (expected one of ${Object.keys(SAFETENSORS_DTYPES).join(', ')}, received ${show(st)})`);
    if (!Array.isArray(shape) || !shape.every(isCount))
      throw bad(`shape is not an array of non-negative integers (expected e.g. [4096, 7168], received ${show(shape)})`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount))
      throw bad(`data_offsets are not two non-negative integers (expected [begin, end], received ${show(offsets)})`);
    const [begin, end] = offsets as [number, number];
    if (end < begin) throw bad(`data_offsets end before begin (expected end >= ${begin}, received ${end})`);
    if (end > dataBytes) throw bad(`data_offsets past the data region (expected end <= ${dataBytes}, received ${end})`);
    const want = shape.reduce((n: bigint, d: number) => n * BigInt(d), BigInt(DTYPE_BYTES[dtype]));
    if (want !== BigInt(end - begin))
      throw bad(
        `byte length does not match shape and dtype (expected ${want} bytes for ${st} [${shape.join(', ')}], received ${end - begin})`,
      );
    tensors.set(name, {
      dtype,
      shape: Object.freeze([...shape]),
      byteLength: end - begin,
      dataOffsets: Object.freeze([begin, end]) as readonly [number, number],
    });
  }

  // No two non-empty ranges may share a byte.
  const ranges = [...tensors].filter(([, t]) => t.byteLength > 0).sort((a, b) => a[1].dataOffsets[0] - b[1].dataOffsets[0]);
  for (let i = 1; i < ranges.length; ++i) {
    const [prevName, prev] = ranges[i - 1];
    const [name, t] = ranges[i];
    if (t.dataOffsets[0] < prev.dataOffsets[1])
      throw fail(
        `tensor '${name}': data_offsets overlap tensor '${prevName}' (expected begin >= ${prev.dataOffsets[1]}, received ${t.dataOffsets[0]})`,
      );
  }
  return { tensors, metadata };
}

/** An open, validated safetensors file. Close it (or `using`) when done; tensors made from it stay valid. */
export class SafetensorsFile {
  /** The path as given to openSafetensors. */
  readonly path: string;
  /** Every tensor, by name, in header order. */
  readonly tensors: ReadonlyMap<string, SafetensorsTensorInfo>;
  /** The `__metadata__` map ({} when absent). */
  readonly metadata: Readonly<Record<string, string>>;
  /** Size of the file in bytes. */
  readonly byteLength: number;
  #handle: unknown;
  /** The file as mapped: inode and modification time, to notice a change in place. */
  readonly #ino: number;
  readonly #mtimeMs: number;

  /** @internal Use openSafetensors(). */
  constructor(path: string, opened: NativeOpenResult, header: SafetensorsHeader) {
    this.path = path;
    this.#handle = opened.handle;
    this.tensors = header.tensors;
    this.metadata = Object.freeze(header.metadata);
    this.byteLength = opened.fileBytes;
    const st = statSync(path);
    this.#ino = st.ino;
    this.#mtimeMs = st.mtimeMs;
  }

  /**
   * Why the mapped bytes can no longer be trusted, or undefined: a read of the mapping faulted
   * because the file shrank (the kernel read zeros there), or the file was changed in place (same
   * inode, another size or modification time). A file replaced by another (a new inode) or removed
   * is no change: the mapping still holds the old file, whole. One stat call (about a microsecond).
   */
  changedOnDisk(): string | undefined {
    if (this.#handle === undefined) return undefined;
    const changed = (what: string) => `${this.path}: changed on disk while loaded (${what}); reload the model`;
    if (native().ops.safetensorsFaulted(this.#handle)) return changed('truncated');
    let st;
    try {
      st = statSync(this.path);
    } catch {
      return undefined;  // removed: the mapping keeps the old file
    }
    if (st.ino !== this.#ino) return undefined;
    if (st.size !== this.byteLength) return changed(`${this.byteLength} bytes when loaded, ${st.size} now`);
    if (st.mtimeMs !== this.#mtimeMs) return changed('modified in place');
    return undefined;
  }

  get closed(): boolean {
    return this.#handle === undefined;
  }

  /**
   * The tensor `name` on `device`. On the CPU it borrows the mapped bytes (no copy; read-only
   * memory) unless its offset is not a multiple of its element size, in which case it is copied;
   * on a CUDA device it is copied into fresh device memory.
   */
  tensor(name: string, device: DeviceName | string = 'cpu'): Tensor {
    if (typeof name !== 'string') throw invalidArgument(`${this.path}: tensor`, 'name', 'a string', name);
    if (typeof device !== 'string') throw invalidArgument(`${this.path}: tensor '${name}'`, 'device', "'cpu' or 'cuda:N'", device);
    if (this.#handle === undefined) throw new DisposedError(`${this.path}: tensor '${name}': the file was closed`);
    const info = this.tensors.get(name);
    if (!info)
      throw new SafetensorsError(`${this.path}: tensor '${name}': not in this file (expected one of its ${this.tensors.size} tensors)`);
    const [begin, end] = info.dataOffsets;
    return new Tensor(native().ops.safetensorsTensor(this.#handle, name, info.dtype, [...info.shape], begin, end, device));
  }

  /** Drops this file's mapping once no tensor made from it is alive. Safe twice. */
  close(): void {
    if (this.#handle === undefined) return;
    native().ops.safetensorsClose(this.#handle);
    this.#handle = undefined;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** Maps `path` read-only and validates its header; throws SafetensorsError naming the file (and tensor). */
export function openSafetensors(path: string): SafetensorsFile {
  if (typeof path !== 'string' || path === '') throw invalidArgument('openSafetensors', 'path', 'a file path', path);
  let opened: NativeOpenResult;
  try {
    opened = native().ops.safetensorsOpen(path) as NativeOpenResult;
  } catch (e) {
    throw new SafetensorsError((e as Error).message, { cause: e });
  }
  try {
    return new SafetensorsFile(path, opened, parseSafetensorsHeader(path, opened.header, opened.dataBytes));
  } catch (e) {
    native().ops.safetensorsClose(opened.handle);
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Writing

/** The safetensors name of each dtype (the inverse of SAFETENSORS_DTYPES). */
export const SAFETENSORS_NAMES: Readonly<Record<DType, string>> = Object.freeze(
  Object.fromEntries(Object.entries(SAFETENSORS_DTYPES).map(([k, v]) => [v, k])) as Record<DType, string>,
);

/** What the header of a tensor to be written needs. */
export interface SafetensorsTensorSpec {
  dtype: DType;
  shape: readonly number[];
}

/** A tensor to write: dtype, shape and its raw little-endian bytes. */
export interface SafetensorsTensorData extends SafetensorsTensorSpec {
  data: ArrayBufferView;
}

/** Byte length of a tensor of this dtype and shape. */
export function tensorByteLength(spec: SafetensorsTensorSpec): number {
  return spec.shape.reduce((n, d) => n * d, DTYPE_BYTES[spec.dtype]);
}

/**
 * The first bytes of a safetensors file holding `tensors` laid out back to back in the order
 * given: the u64 length and the JSON header, padded with spaces so the data region starts at a
 * multiple of 8. Returns those bytes and each tensor's [begin, end) in the data region.
 */
export function encodeSafetensorsHeader(
  tensors: Iterable<readonly [string, SafetensorsTensorSpec]>,
  metadata: Record<string, string> = { format: 'pt' },
): { prefix: Uint8Array; offsets: Map<string, [number, number]>; dataBytes: number } {
  const json: Record<string, unknown> = { __metadata__: metadata };
  const offsets = new Map<string, [number, number]>();
  let at = 0;
  for (const [name, spec] of tensors) {
    if (name === '__metadata__' || offsets.has(name)) throw invalidArgument('encodeSafetensorsHeader', 'tensor name', 'unique names other than __metadata__', name);
    const n = tensorByteLength(spec);
    offsets.set(name, [at, at + n]);
    json[name] = { dtype: SAFETENSORS_NAMES[spec.dtype], shape: [...spec.shape], data_offsets: [at, at + n] };
    at += n;
  }
  const text = new TextEncoder().encode(JSON.stringify(json));
  const headerBytes = Math.ceil(text.length / 8) * 8;
  const prefix = new Uint8Array(8 + headerBytes).fill(0x20);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(headerBytes), true);
  prefix.set(text, 8);
  return { prefix, offsets, dataBytes: at };
}

/** Writes every byte of `bytes` to `fd` (writeSync may write less than asked). @internal */
export function writeAll(fd: number, bytes: Uint8Array): void {
  for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at, Math.min(bytes.length - at, 1 << 30));
}

/** Writes a safetensors file holding `tensors` (in the order given) and `metadata`. */
export function writeSafetensors(
  path: string,
  tensors: Iterable<readonly [string, SafetensorsTensorData]>,
  metadata?: Record<string, string>,
): void {
  const list = [...tensors];
  for (const [name, t] of list) {
    if (t.data.byteLength !== tensorByteLength(t))
      throw new RangeError(`writeSafetensors: tensor '${name}': data has ${t.data.byteLength} bytes (expected ${tensorByteLength(t)} for ${t.dtype} [${t.shape.join(', ')}])`);
  }
  const { prefix } = encodeSafetensorsHeader(list, metadata);
  const fd = openSync(path, 'w');
  try {
    writeAll(fd, prefix);
    for (const [, t] of list) writeAll(fd, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  } finally {
    closeSync(fd);
  }
}
