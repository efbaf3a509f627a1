/**
 * Device graphs: the ops a function queues on a device, captured once and replayed with one launch.
 * On a CUDA device a CUDA graph; on the CPU the recorded ops themselves (their closures, arguments
 * and storages), run in order by ONE task of the CPU stream, so a replay costs the JavaScript thread
 * one call and the stream one wake-up instead of one per op. Only the ops the capturing thread
 * queues are recorded (another worker_thread's ops run as usual). A replay runs the same kernels
 * with the same arguments and addresses, so it reads its
 * inputs from the tensors the capture read (rewrite them with `Tensor.write` between replays) and
 * writes its outputs into the tensors the capture returned. What the captured ops allocated stays
 * the graph's until it is disposed (CUDA: a private pool of the device's allocator; CPU: the
 * recorded ops hold their storages), so no later tensor shares memory that a replay writes.
 *
 * While capturing, ops are recorded, not run: a host copy (`tensor()`), a read or a synchronize
 * throws, and so does the capture as a whole.
 */
import { DisposedError } from './errors.js';
import { native } from './native.js';

export class DeviceGraph {
  #id: number | undefined;

  private constructor(readonly device: string, id: number) {
    this.#id = id;
  }

  /**
   * Captures what `record` queues on `device` ('cpu' or a CUDA device) and returns the graph with what
   * `record` returned; nothing has run yet. When `record` or the capture fails, `release` gets
   * `record`'s result (if there was one) to dispose it, and the error is rethrown.
   */
  static capture<T>(device: string, record: () => T, release: (result: T) => void): { graph: DeviceGraph; result: T } {
    native().graphBegin(device);
    let result: T;
    try {
      result = record();
    } catch (e) {
      try {
        native().graphEnd(device);
      } catch {
        // the capture is abandoned; record's error is the one worth reporting
      }
      throw e;
    }
    let id: number;
    try {
      id = native().graphEnd(device);
    } catch (e) {
      release(result);
      throw e;
    }
    return { graph: new DeviceGraph(device, id), result };
  }

  get disposed(): boolean {
    return this.#id === undefined;
  }

  /** Queues one replay on the device's stream. */
  launch(): void {
    if (this.#id === undefined) throw new DisposedError('DeviceGraph.launch: the graph was disposed');
    native().graphLaunch(this.device, this.#id);
  }

  /** Frees the graph and its memory (replays already queued still run; on the CPU the memory goes
   *  back once they have). Safe twice. */
  dispose(): void {
    if (this.#id === undefined) return;
    native().graphDispose(this.device, this.#id);
    this.#id = undefined;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
