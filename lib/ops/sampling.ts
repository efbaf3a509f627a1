/** Token selection from logits: greedy (argmax) and seeded sampling. CPU only so far. */
import { invalidArgument } from '../runtime/errors.js';
import { handleOf, type Tensor, wrap } from '../runtime/tensor.js';
import { native } from '../runtime/native.js';

/**
 * The index of each row's largest logit (ties: the lower index; NaN entries are skipped).
 * @param logits `[B, V]` f32
 * @returns `[B]` i32
 */
export function argmax(logits: Tensor): Tensor {
  return wrap(native().ops.argmax(handleOf(logits, 'argmax', 'logits')));
}

export interface SampleOptions {
  /** 0: greedy (argmax); else the softmax temperature. */
  temperature: number;
  /** Keep only the topK most likely ids; 0 or undefined: all. */
  topK?: number;
  /** Then keep the smallest set of most likely ids holding at least this share of the (top-k) mass; 1 or undefined: all. */
  topP?: number;
  /** With the row index, seeds each row's draw: the same seed gives the same ids. An integer. */
  seed: number;
}

/**
 * Draws one id per row. p = softmax(logits / temperature) in f32 (max-subtracted), restricted to
 * the topK largest (ties: lower id), then to the smallest prefix in descending p whose mass is at
 * least topP of what is left, renormalised. Row b's draw is u = splitmix64(splitmix64(seed) + b)
 * as 53 bits in [0, 1), mapped through the cumulative p of the kept ids in ascending id order.
 * temperature 0 is argmax. A row with no finite logit gives its argmax.
 * @param logits `[B, V]` f32
 * @returns `[B]` i32
 */
export function sample(logits: Tensor, options: SampleOptions): Tensor {
  if (typeof options !== 'object' || options === null) throw invalidArgument('sample', 'options', 'an object', options);
  const { temperature, topK = 0, topP = 1, seed } = options;
  return wrap(native().ops.sample(handleOf(logits, 'sample', 'logits'), temperature, topK, topP, seed));
}
