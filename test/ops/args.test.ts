/**
 * The combined argument checks of native/ops/args.h (tensor with dtypes and a shape spec, same
 * device of a list, minimum rank, out dtype) give the same exact messages as the single checks.
 */
import { describe, expect, it } from 'vitest';

import { ops, tensor, zeros } from '../../lib/index.js';

describe('OpArgs combined checks', () => {
  it('minimum rank', () => {
    using s = zeros([]);
    using w = zeros([1]);
    expect(() => ops.rmsNorm(s, w, 1e-6)).toThrow(new RangeError('rmsNorm: x must have at least 1 dimension but received shape []'));
    using v = zeros([3]);
    expect(() => ops.transpose(v, 0, 0)).toThrow(new RangeError('transpose: x must have at least 2 dimensions but received shape [3]'));
    expect(() => ops.slice(s, 0, 0, 0)).toThrow('slice: x must have at least 1 dimension but received shape []');
  });

  it('a shape spec with free dimensions checks the rank, then each fixed size', () => {
    using x = zeros([4, 6]);
    using idx = zeros([2, 2], { dtype: 'i32' });
    expect(() => ops.gatherRows(x, idx)).toThrow(new RangeError('gatherRows: index must have 1 dimensions but received shape [2, 2]'));
    using f = zeros([2]);
    expect(() => ops.gatherRows(x, f)).toThrow(new TypeError('gatherRows: index must have dtype i32 but received f32'));
    using logits = zeros([3, 8]);
    using bias = zeros([7]);
    expect(() => ops.moeRoute(logits, bias, { topk: 2, nGroups: 1, topkGroups: 1, scoreFunc: 'sigmoid', routeScale: 1, normalize: true })).toThrow(
      new RangeError('moeRoute: bias must have shape [8] but received [7]'),
    );
  });

  it('optional tensors are skipped when absent and checked when given', () => {
    using scores = tensor(new Float32Array([1, 3, 2, 0]), { shape: [2, 2] });
    using top = ops.topK(scores, 1);
    expect(top.shape).toEqual([2, 1]);
    using lengths = zeros([3], { dtype: 'i32' });
    expect(() => ops.topK(scores, 1, lengths)).toThrow(new RangeError('topK: lengths must have shape [2] but received [3]'));
  });

  it('out dtype, with and without a default', () => {
    using g = zeros([2, 4]);
    expect(ops.swiglu(g).dtype).toBe('f32');
    expect(() => ops.swiglu(g, 'f16')).toThrow(new TypeError('swiglu: outDtype must be f32 or bf16 but received f16'));
  });
});
