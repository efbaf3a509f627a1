/**
 * Weights used in place (issue 12): on the CPU a loaded model reads its FP8 weights where the
 * checkpoint's mapping holds them. The routed experts and the gate/up pairs, which the model used to
 * stack into copies, must not be copied: after a load and a forward, what the CPU allocator holds is
 * the model's caches and tables, far less than those weights' bytes.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { loadModel, memoryStats, synchronize } from '../../lib/index.js';
import { openCheckpoint } from '../../lib/io/checkpoint.js';
import { GOLDEN } from '../golden-dir.js';

describe('weights used in place (tiny-sparse, cpu)', () => {
  it('a load and a forward allocate less than the bytes stacking the experts and gate/up pairs copied', async () => {
    const dir = join(GOLDEN, 'tiny-sparse');
    // The bytes the stacked form copied: every routed expert's weights and scales, and the gate and
    // up weights (and scales) of the dense and shared MLPs.
    let stackedBytes = 0;
    {
      using ckpt = openCheckpoint(dir);
      for (const name of ckpt.names())
        if (/\.mlp\.experts\.\d+\./.test(name) || /\.mlp\.(shared_experts\.)?(gate|up)_proj\./.test(name)) stackedBytes += ckpt.info(name).byteLength;
    }
    expect(stackedBytes).toBeGreaterThan(4e6); // 3 MoE layers (and the MTP layer) of 16 experts of 96 KB
    await synchronize('cpu');
    const before = memoryStats('cpu').inUseBytes;
    const model = await loadModel(dir, { maxSequences: 1, maxContext: 64 });
    try {
      const seq = model.createSequence();
      const [logits] = await model.forward([{ sequence: seq, tokens: [3, 1, 4, 1, 5, 9, 2, 6] }]);
      seq.dispose();
      expect(logits.every(Number.isFinite)).toBe(true);
      await synchronize('cpu');
      // What stays allocated: the KV cache (1 block of 64 tokens), RoPE tables and the absorbed MLA
      // weights, a few hundred KB; the stacked copies alone were stackedBytes.
      const held = memoryStats('cpu').inUseBytes - before;
      expect({ held, underQuarterOfStacked: held < stackedBytes / 4 }).toEqual({ held, underQuarterOfStacked: true });
    } finally {
      await model.dispose();
    }
  });
});
