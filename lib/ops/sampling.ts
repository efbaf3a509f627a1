/** Token selection from logits: greedy (argmax) and seeded sampling, on the CPU or CUDA (the same ids on both). */
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

/** One row's settings for `sampleRows`. */
export interface RowSamplingOptions {
  /** 0: greedy (argmax of the penalised logits). */
  temperature: number;
  topK?: number;
  topP?: number;
  /** Keep only ids with p >= minP · (largest p); 0 or undefined: all. */
  minP?: number;
  /** Subtracted once from the logit of every id generated so far (OpenAI presence_penalty). */
  presencePenalty?: number;
  /** Subtracted per time an id was generated (OpenAI frequency_penalty). */
  frequencyPenalty?: number;
  /** Divides positive and multiplies negative logits of ids seen in the prompt or output; 1: off. */
  repetitionPenalty?: number;
  /** With `step`, the row's draw: u = splitmix64(splitmix64(seed) + step). Safe integers. */
  seed?: number;
  step?: number;
  /** Ids seen so far and how often each was generated (0: in the prompt only). */
  history?: ReadonlyMap<number, number>;
}

export interface SampleRowsResult {
  /** `[B]` i32 chosen ids. */
  ids: Tensor;
  /** `[B, 1 + N]` f32: log-probability of the chosen id, then of the N most likely, under the model's own logits. */
  logprobs?: Tensor;
  /** `[B, N]` i32: the N most likely ids (ties: lower id). */
  topIds?: Tensor;
}

/**
 * Per-row token selection: penalties (repetition on every listed id, frequency and presence on
 * generated ones) applied to a copy of the row, then argmax (temperature 0) or the seeded draw of
 * `sample` with topK, topP and minP, each row with its own seed and step, so a row's result does not
 * depend on the batch it is in. With `topLogprobs` >= 0, log-probabilities (log softmax of the
 * unpenalised logits) of the chosen id and of the N most likely.
 * @param logits `[B, V]` f32
 */
export function sampleRows(logits: Tensor, rows: readonly RowSamplingOptions[], topLogprobs = -1): SampleRowsResult {
  if (!Array.isArray(rows)) throw invalidArgument('sampleRows', 'rows', 'an array of per-row options', rows);
  const B = rows.length;
  const params = new Float32Array(B * 7);
  const seeds = new Float64Array(B * 2);
  const offsets = new Int32Array(B + 1);
  let n = 0;
  for (const r of rows) n += r.history?.size ?? 0;
  const ids = new Int32Array(n);
  const counts = new Int32Array(n);
  let k = 0;
  rows.forEach((r, i) => {
    if (typeof r !== 'object' || r === null) throw invalidArgument('sampleRows', `rows[${i}]`, 'an object', r);
    params.set([r.temperature, r.topK ?? 0, r.topP ?? 1, r.minP ?? 0, r.presencePenalty ?? 0, r.frequencyPenalty ?? 0, r.repetitionPenalty ?? 1], i * 7);
    seeds[2 * i] = r.seed ?? 0;
    seeds[2 * i + 1] = r.step ?? 0;
    if (r.history) for (const [id, c] of r.history) (ids[k] = id), (counts[k] = c), ++k;
    offsets[i + 1] = k;
  });
  const out = native().ops.sampleRows(handleOf(logits, 'sampleRows', 'logits'), params, seeds, offsets, ids, counts, topLogprobs);
  return topLogprobs >= 0 ? { ids: wrap(out[0]), logprobs: wrap(out[1]), topIds: wrap(out[2]) } : { ids: wrap(out[0]) };
}
