/**
 * Tensor: a typed handle over native device memory. Creation copies host data in; `read()` and
 * `toFloat32Array()` are the sync points (they resolve once every op queued before them has run,
 * and reject with the first error those ops raised). `dispose()` (or `using`) hands the storage back
 * once queued ops are done with it; a garbage-collection finalizer is only the backstop.
 */
import { DisposedError, invalidArgument, isNonNegativeInteger } from './errors.js';
import { type NativeTensor, native } from './native.js';

export type DType = 'f32' | 'bf16' | 'f16' | 'f8e4m3' | 'i32' | 'i64' | 'u8';
export const DTYPES: readonly DType[] = ['f32', 'bf16', 'f16', 'f8e4m3', 'i32', 'i64', 'u8'];

/** An activation dtype: what the model stores between ops, 'bf16' (as the reference) or 'f32' (the
 *  accuracy yardstick); also what the products that write activations may produce. */
export type Act = Extract<DType, 'bf16' | 'f32'>;

/** A device name: 'cpu', 'cuda' (= 'cuda:0') or 'cuda:N'. */
export type DeviceName = 'cpu' | 'cuda' | `cuda:${number}`;

/** The host array a dtype reads back as: bf16/f16 as raw Uint16Array bits, f8e4m3 as Uint8Array codes. */
export interface HostArrays {
  f32: Float32Array;
  bf16: Uint16Array;
  f16: Uint16Array;
  f8e4m3: Uint8Array;
  i32: Int32Array;
  i64: BigInt64Array;
  u8: Uint8Array;
}
export type HostArray = HostArrays[DType];

/** Bytes of one element of each dtype. */
export const DTYPE_BYTES: Readonly<Record<DType, number>> = Object.freeze({ f32: 4, bf16: 2, f16: 2, f8e4m3: 1, i32: 4, i64: 8, u8: 1 });

function hostView(dtype: DType, buf: ArrayBuffer): HostArray {
  switch (dtype) {
    case 'f32': return new Float32Array(buf);
    case 'bf16': case 'f16': return new Uint16Array(buf);
    case 'i32': return new Int32Array(buf);
    case 'i64': return new BigInt64Array(buf);
    default: return new Uint8Array(buf);
  }
}

export interface TensorOptions {
  /** Element type; default 'f32' for Float32Array data, else required for raw bytes. */
  dtype?: DType;
  /** Dimensions; default: one dimension of the data's length. */
  shape?: readonly number[];
  /** Device; default 'cpu'. */
  device?: DeviceName | string;
}

export class Tensor {
  #handle: NativeTensor | undefined;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly device: string;

  /** @internal Wraps a native handle; use `tensor()` / `zeros()` or an op to make tensors. */
  constructor(handle: NativeTensor) {
    this.#handle = handle;
    this.dtype = handle.dtype as DType;
    this.shape = Object.freeze(handle.shape);
    this.device = handle.device;
  }

  /** @internal The native handle; throws DisposedError after dispose(). */
  handle(where = 'Tensor'): NativeTensor {
    if (!this.#handle) throw new DisposedError(`${where}: the tensor was disposed and cannot be used`);
    return this.#handle;
  }

  get disposed(): boolean {
    return this.#handle === undefined;
  }

  /** Number of elements. */
  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  get byteLength(): number {
    return this.size * DTYPE_BYTES[this.dtype];
  }

  /** The elements, after every op queued before this call has run (raw bits for bf16/f16/f8e4m3). */
  async read<D extends DType = DType>(): Promise<HostArrays[D]> {
    const buf = await this.handle('Tensor.read').read(false);
    return hostView(this.dtype, buf) as HostArrays[D];
  }

  /** The elements converted to f32 (bf16, f16 and f8e4m3 decoded exactly). */
  async toFloat32Array(): Promise<Float32Array> {
    return new Float32Array(await this.handle('Tensor.toFloat32Array').read(true));
  }

  /**
   * Overwrites the elements in stream order: ops queued before this call see the old values, ops
   * queued after it the new ones. `data` as `tensor()` takes it, with as many elements; a float
   * dtype narrower than f32 takes raw bits (Uint16Array for bf16/f16, Uint8Array codes for f8e4m3).
   * The data is copied before this returns. How a captured graph gets each step's inputs.
   */
  write(data: ArrayBufferView | readonly number[]): void {
    const h = this.handle('Tensor.write');
    const view = hostData('Tensor.write', this.dtype, data);
    if (view instanceof Float32Array && this.dtype !== 'f32')
      throw invalidArgument('Tensor.write', 'data', `raw ${this.dtype} bits (${accepted(this.dtype)}), not f32 numbers`, data);
    h.write(view);
  }

  /** A view with another shape over the same storage (one dimension may be -1). */
  reshape(shape: readonly number[]): Tensor {
    return new Tensor(this.handle('Tensor.reshape').reshape([...shape]));
  }

  /** A view of rows [start, start + count) of dimension 0, over the same storage. */
  rows(start: number, count: number): Tensor {
    return new Tensor(this.handle('Tensor.rows').rows(start, count));
  }

  /** Returns the storage to the device's pool once queued ops no longer need it. Safe twice. */
  dispose(): void {
    this.#handle?.dispose();
    this.#handle = undefined;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  toString(): string {
    return `Tensor(${this.dtype}, [${this.shape.join(', ')}], ${this.device}${this.disposed ? ', disposed' : ''})`;
  }
}

function checkShape(where: string, shape: readonly number[]): void {
  if (!Array.isArray(shape) || !shape.every(isNonNegativeInteger))
    throw invalidArgument(where, 'shape', 'an array of non-negative integers', shape);
}

function inferDtype(data: ArrayBufferView): DType | undefined {
  if (data instanceof Float32Array || data instanceof Float64Array) return 'f32';
  if (data instanceof Int32Array) return 'i32';
  if (data instanceof BigInt64Array) return 'i64';
  return undefined;
}

const FLOAT_DTYPES: readonly DType[] = ['f32', 'bf16', 'f16', 'f8e4m3'];

/** What `tensor()` accepts as data for each dtype, as its error message words it. */
function accepted(dtype: DType): string {
  const byValue = 'a Float32Array, a Float64Array or an array of numbers (converted by value)';
  switch (dtype) {
    case 'f32': return `${byValue}, or a Uint8Array of raw bytes`;
    case 'bf16': case 'f16': return `${byValue}, a Uint16Array of raw ${dtype} bits, or a Uint8Array of raw bytes`;
    case 'f8e4m3': return `${byValue}, or a Uint8Array of E4M3 codes`;
    case 'i32': return 'an Int32Array, an array of 32-bit integers, or a Uint8Array of raw bytes';
    case 'i64': return 'a BigInt64Array, an array of safe integers, or a Uint8Array of raw bytes';
    case 'u8': return 'a Uint8Array or an array of integers in [0, 255]';
  }
}

/**
 * The data as the array `dtype` stores (or a Float32Array to be rounded to a narrower float dtype),
 * converting by value where the data holds numbers of another type, and refusing with a message
 * naming what is accepted where a conversion would reinterpret bytes.
 */
function hostData(where: string, dtype: DType, data: unknown): ArrayBufferView {
  const refuse = () => invalidArgument(where, 'data', `for dtype ${dtype} ${accepted(dtype)}`, data);
  const float = FLOAT_DTYPES.includes(dtype);
  if (Array.isArray(data)) {
    if (float) return new Float32Array(data as number[]);
    const ok = (v: unknown, lo: number, hi: number) => typeof v === 'number' && Number.isInteger(v) && v >= lo && v <= hi;
    if (dtype === 'i32' && data.every((v) => ok(v, -(2 ** 31), 2 ** 31 - 1))) return Int32Array.from(data as number[]);
    if (dtype === 'u8' && data.every((v) => ok(v, 0, 255))) return Uint8Array.from(data as number[]);
    if (dtype === 'i64' && data.every((v) => ok(v, -Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER) || typeof v === 'bigint'))
      return BigInt64Array.from(data as (number | bigint)[], (v) => BigInt(v));
    throw refuse();
  }
  if (!ArrayBuffer.isView(data) || data instanceof DataView) throw refuse();
  if (data instanceof Uint8Array && !(data instanceof Uint8ClampedArray)) return data;  // raw bytes (Buffer too)
  if (float && data instanceof Float32Array) return data;
  if (float && data instanceof Float64Array) return Float32Array.from(data);
  if ((dtype === 'bf16' || dtype === 'f16') && data instanceof Uint16Array) return data;
  if (dtype === 'i32' && data instanceof Int32Array) return data;
  if (dtype === 'i64' && data instanceof BigInt64Array) return data;
  throw refuse();
}

/**
 * A tensor holding a copy of `data`. Float dtypes take numbers by value (a Float32Array, a
 * Float64Array or an array, rounded to the dtype exactly as `cast` does); bf16/f16 also take raw bits
 * (Uint16Array), f8e4m3 raw codes (Uint8Array); i32 an Int32Array, i64 a BigInt64Array; every dtype
 * takes a Uint8Array as raw bytes. Other typed arrays (an Int32Array for f32, say) are refused with
 * a message naming what is accepted, never reinterpreted.
 */
export function tensor(data: ArrayBufferView | readonly number[], options: TensorOptions = {}): Tensor {
  const where = 'tensor';
  if (!Array.isArray(data) && !ArrayBuffer.isView(data)) throw invalidArgument(where, 'data', 'a TypedArray or an array of numbers', data);
  const dtype = options.dtype ?? (Array.isArray(data) ? 'f32' : inferDtype(data as ArrayBufferView));
  if (!dtype || !DTYPES.includes(dtype)) throw invalidArgument(where, 'dtype', `one of ${DTYPES.join(', ')}`, options.dtype);
  const view = hostData(where, dtype, data);
  const device = options.device ?? 'cpu';
  const n = view.byteLength / (view instanceof Float32Array && dtype !== 'f32' ? 4 : DTYPE_BYTES[dtype]);
  const shape = options.shape ?? [Number.isInteger(n) ? n : view.byteLength];
  checkShape(where, shape);
  if (view instanceof Float32Array && dtype !== 'f32') {
    // Round f32 data to the target float dtype on the device, exactly as `cast` does.
    const f = new Tensor(native().createTensor('f32', [...shape], device, view));
    try {
      return new Tensor(native().ops.cast(f.handle(), dtype));
    } finally {
      f.dispose();
    }
  }
  return new Tensor(native().createTensor(dtype, [...shape], device, view));
}

/** A zero-filled tensor. */
export function zeros(shape: readonly number[], options: Omit<TensorOptions, 'shape'> = {}): Tensor {
  checkShape('zeros', shape);
  return new Tensor(native().createTensor(options.dtype ?? 'f32', [...shape], options.device ?? 'cpu'));
}

/** @internal The native handle of a tensor argument, with the op and argument named on misuse. */
export function handleOf(t: Tensor, op: string, arg: string): NativeTensor {
  if (!(t instanceof Tensor)) throw invalidArgument(op, arg, 'a Tensor', t);
  return t.handle(`${op}: ${arg}`);
}

/** @internal Wraps what a native op returned. */
export function wrap(h: NativeTensor): Tensor {
  return new Tensor(h);
}
