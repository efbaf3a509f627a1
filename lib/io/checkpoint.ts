/**
 * A Hugging Face checkpoint folder: `config.json` plus either `model.safetensors.index.json`
 * (`weight_map`: tensor name → shard file) and its shards, or one `model.safetensors`.
 *
 * `openCheckpoint(dir)` reads the config and the index, maps every shard and validates its header,
 * and checks that every tensor the index lists is in the shard it is mapped to, all before any
 * tensor is used. `tensor(name, device)` then materialises one tensor (no copy on the CPU, see
 * SafetensorsFile.tensor) and reports progress.
 */
import { readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';

import { DisposedError, invalidArgument, isPlainObject } from '../runtime/errors.js';
import type { DType, DeviceName, Tensor } from '../runtime/tensor.js';
import { SafetensorsError, type SafetensorsFile, openSafetensors } from './safetensors.js';

export { SafetensorsError } from './safetensors.js';

/** A shard of a loaded checkpoint changed on disk (truncated, or written in place): the model's
 *  weights are no longer what was loaded. Reload the model. */
export class CheckpointChangedError extends Error {
  override name = 'CheckpointChangedError';
}

/** Where a checkpoint tensor lies and what it is. */
export interface CheckpointTensorInfo {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly byteLength: number;
  /** The shard's file name inside the checkpoint folder. */
  readonly file: string;
}

/** Progress of materialising tensors, counted once per distinct tensor name. */
export interface LoadProgress {
  tensorsLoaded: number;
  tensorsTotal: number;
  bytesLoaded: number;
  bytesTotal: number;
}

export interface OpenCheckpointOptions {
  /** Called by tensor() each time a tensor is materialised for the first time. */
  onProgress?: (progress: LoadProgress) => void;
}

export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';
export const CONFIG_FILE = 'config.json';

function readJson(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new SafetensorsError(`${path}: cannot read (${(e as Error).message})`, { cause: e });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError(`${path}: not valid JSON (${(e as Error).message})`, { cause: e });
  }
}

/** An open checkpoint. Close it (or `using`) when done; tensors made from it stay valid. */
export class Checkpoint {
  /** The folder as given to openCheckpoint. */
  readonly dir: string;
  /** config.json as parsed, unchanged. */
  readonly config: Readonly<Record<string, unknown>>;
  /** The shard file names, in the order first listed. */
  readonly files: readonly string[];
  #files: Map<string, SafetensorsFile> | undefined;
  #where: Map<string, string>;
  #loaded = new Set<string>();
  #progress: LoadProgress;
  #onProgress?: (progress: LoadProgress) => void;

  /** @internal Use openCheckpoint(). */
  constructor(dir: string, config: Record<string, unknown>, files: Map<string, SafetensorsFile>, where: Map<string, string>, options: OpenCheckpointOptions) {
    this.dir = dir;
    this.config = config;
    this.files = Object.freeze([...files.keys()]);
    this.#files = files;
    this.#where = where;
    this.#onProgress = options.onProgress;
    let bytesTotal = 0;
    for (const [name, file] of where) bytesTotal += files.get(file)!.tensors.get(name)!.byteLength;
    this.#progress = { tensorsLoaded: 0, tensorsTotal: where.size, bytesLoaded: 0, bytesTotal };
  }

  get closed(): boolean {
    return this.#files === undefined;
  }

  #live(where: string): Map<string, SafetensorsFile> {
    if (!this.#files) throw new DisposedError(`${this.dir}: ${where}: the checkpoint was closed`);
    return this.#files;
  }

  /** Every tensor name, in index order. */
  names(): string[] {
    this.#live('names');
    return [...this.#where.keys()];
  }

  has(name: string): boolean {
    this.#live('has');
    return this.#where.has(name);
  }

  /** dtype, shape, byteLength and shard file of `name`; throws when the checkpoint has no such tensor. */
  info(name: string): CheckpointTensorInfo {
    const files = this.#live(`info('${name}')`);
    const file = this.#file(name);
    const t = files.get(file)!.tensors.get(name)!;
    return { dtype: t.dtype, shape: t.shape, byteLength: t.byteLength, file };
  }

  /** The tensor `name` on `device` (CPU: borrows the mapped bytes; CUDA: copied to the device). */
  tensor(name: string, device: DeviceName | string = 'cpu'): Tensor {
    const files = this.#live(`tensor('${name}')`);
    const file = this.#file(name);
    const t = files.get(file)!.tensor(name, device);
    if (!this.#loaded.has(name)) {
      this.#loaded.add(name);
      this.#progress.tensorsLoaded += 1;
      this.#progress.bytesLoaded += t.byteLength;
      this.#onProgress?.({ ...this.#progress });
    }
    return t;
  }

  /** Why a shard can no longer be trusted (SafetensorsFile.changedOnDisk), or undefined: one stat
   *  per shard, run before each model step. */
  changedOnDisk(): string | undefined {
    if (!this.#files) return undefined;
    for (const f of this.#files.values()) {
      const why = f.changedOnDisk();
      if (why) return why;
    }
    return undefined;
  }

  /** How many tensors and bytes tensor() has materialised so far. */
  progress(): LoadProgress {
    return { ...this.#progress };
  }

  /** Closes every shard (their mappings go once no tensor made from them is alive). Safe twice. */
  close(): void {
    if (!this.#files) return;
    for (const f of this.#files.values()) f.close();
    this.#files = undefined;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #file(name: string): string {
    if (typeof name !== 'string') throw invalidArgument(`${this.dir}: tensor`, 'name', 'a string', name);
    const file = this.#where.get(name);
    if (file === undefined) throw new SafetensorsError(`${this.dir}: tensor '${name}': not in this checkpoint (expected one of its ${this.#where.size} tensors)`);
    return file;
  }
}

/**
 * Opens the checkpoint in `dir`: config.json, then model.safetensors.index.json and every shard it
 * names, or else model.safetensors. Throws SafetensorsError naming the folder or file at fault.
 */
export function openCheckpoint(dir: string, options: OpenCheckpointOptions = {}): Checkpoint {
  if (typeof dir !== 'string' || dir === '') throw invalidArgument('openCheckpoint', 'dir', 'a folder path', dir);
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function')
    throw invalidArgument('openCheckpoint', 'options.onProgress', 'a function', options.onProgress);
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch (e) {
    throw new SafetensorsError(`${dir}: checkpoint folder not found (${(e as Error).message})`, { cause: e });
  }
  if (!isDir) throw new SafetensorsError(`${dir}: not a folder (expected a checkpoint folder)`);

  const config = readJson(join(dir, CONFIG_FILE));
  if (!isPlainObject(config)) throw new SafetensorsError(`${join(dir, CONFIG_FILE)}: not a JSON object`);

  // tensor name -> shard file name
  const where = new Map<string, string>();
  const indexPath = join(dir, INDEX_FILE);
  let hasIndex = false;
  try {
    hasIndex = statSync(indexPath).isFile();
  } catch {
    /* absent: look for model.safetensors */
  }
  if (hasIndex) {
    const index = readJson(indexPath);
    const map = isPlainObject(index) ? index.weight_map : undefined;
    if (!isPlainObject(map)) throw new SafetensorsError(`${indexPath}: no weight_map object (expected {"weight_map": {name: file}})`);
    for (const [name, file] of Object.entries(map)) {
      if (typeof file !== 'string' || file === '' || basename(file) !== file || file === '.' || file === '..')
        throw new SafetensorsError(
          `${indexPath}: tensor '${name}': weight_map entry is not a file name in the folder (expected e.g. 'model-00001-of-00002.safetensors', received ${JSON.stringify(file)})`,
        );
      where.set(name, file);
    }
  } else {
    let single = false;
    try {
      single = statSync(join(dir, SINGLE_FILE)).isFile();
    } catch {
      /* reported below */
    }
    if (!single) throw new SafetensorsError(`${dir}: no ${INDEX_FILE} or ${SINGLE_FILE} in the checkpoint folder`);
  }

  const files = new Map<string, SafetensorsFile>();
  try {
    if (hasIndex) {
      for (const file of new Set(where.values())) files.set(file, openSafetensors(join(dir, file)));
      for (const [name, file] of where)
        if (!files.get(file)!.tensors.has(name))
          throw new SafetensorsError(`${indexPath}: tensor '${name}': mapped to ${file}, which does not hold it`);
    } else {
      const f = openSafetensors(join(dir, SINGLE_FILE));
      files.set(SINGLE_FILE, f);
      for (const name of f.tensors.keys()) where.set(name, SINGLE_FILE);
    }
  } catch (e) {
    for (const f of files.values()) f.close();
    throw e;
  }
  return new Checkpoint(dir, config, files, where, options);
}
