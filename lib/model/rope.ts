/** The YaRN RoPE tables of a model, built once from its config. */
import * as ops from '../ops/index.js';
import type { Tensor } from '../runtime/tensor.js';
import type { ModelConfig } from './config.js';

export class Rope {
  /** `[maxPositions, rope/2]` f32 */
  readonly cos: Tensor;
  /** `[maxPositions, rope/2]` f32 */
  readonly sin: Tensor;

  constructor(cfg: ModelConfig, maxPositions: number, device: string) {
    const { theta, factor, originalMaxPositions, betaFast, betaSlow } = cfg.rope;
    // The reference builds tables for max_seq_len positions and turns YaRN on when that passes the
    // original context; we build only the rows we use, with YaRN decided by the config.
    const t = ops.ropeTables({
      ropeDim: cfg.qkRopeHeadDim,
      maxPositions,
      theta,
      factor,
      originalMaxPositions,
      betaFast,
      betaSlow,
      yarn: cfg.rope.yarn,
      device,
    });
    this.cos = t.cos;
    this.sin = t.sin;
  }

  dispose(): void {
    this.cos.dispose();
    this.sin.dispose();
  }
}
