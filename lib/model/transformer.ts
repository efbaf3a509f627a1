/**
 * The DeepSeek-V3.2 transformer: embedding → blocks → final RMSNorm → LM head (f32), and the
 * multi-token-prediction layer stored after the blocks (loaded into its own module; the forward pass
 * does not use it, as the reference does not).
 */
import * as ops from '../ops/index.js';
import type { ScoreDtype } from '../ops/attention.js';
import type { Act, Tensor } from '../runtime/tensor.js';
import { Block } from './block.js';
import type { ModelConfig } from './config.js';
import type { ForwardContext } from './context.js';
import type { KvCache } from './kv-cache.js';
import { DenseLinear, type WeightSource } from './linear.js';
import type { Rope } from './rope.js';
import { mtpLayerSchema } from './schema.js';

/** The MTP module: enorm(embedding) and hnorm(hidden) concatenated, eh_proj, a block, shared head. */
export class MtpLayer {
  readonly enorm: Tensor;
  readonly hnorm: Tensor;
  readonly ehProj: DenseLinear;
  readonly block: Block;
  readonly headNorm: Tensor;
  readonly head: DenseLinear;

  constructor(src: WeightSource, cfg: ModelConfig, act: Act, scoreDtype: ScoreDtype = 'f32') {
    const L = cfg.nLayers;
    const p = `model.layers.${L}`;
    this.enorm = src.tensor(`${p}.enorm.weight`);
    this.hnorm = src.tensor(`${p}.hnorm.weight`);
    this.ehProj = new DenseLinear(src.tensor(`${p}.eh_proj.weight`));
    this.block = new Block(src, p, cfg, L, act, scoreDtype);
    this.headNorm = src.tensor(`${p}.shared_head.norm.weight`);
    this.head = new DenseLinear(src.tensor(`${p}.shared_head.head.weight`));
  }

  /** Whether the checkpoint holds every tensor of the first MTP layer (its block included). */
  static present(src: WeightSource, cfg: ModelConfig): boolean {
    return cfg.nMtpLayers > 0 && mtpLayerSchema(cfg).every((t) => t.need !== 'mtp' || src.has(t.name));
  }

  dispose(): void {
    for (const t of [this.enorm, this.hnorm, this.headNorm]) t.dispose();
    this.ehProj.dispose();
    this.head.dispose();
    this.block.dispose();
  }
}

export class Transformer {
  readonly embed: Tensor;
  readonly layers: Block[] = [];
  readonly norm: Tensor;
  readonly head: DenseLinear;
  readonly mtp: MtpLayer | null = null;

  /** scoreDtype: the dtype of MLA's attention scores before the softmax ('f32', or 'bf16' as the bf16 reference). */
  constructor(src: WeightSource, readonly cfg: ModelConfig, readonly act: Act, onLayer?: (i: number) => void, scoreDtype: ScoreDtype = 'f32') {
    this.embed = src.tensor('model.embed_tokens.weight');
    try {
      for (let i = 0; i < cfg.nLayers; ++i) {
        this.layers.push(new Block(src, `model.layers.${i}`, cfg, i, act, scoreDtype));
        onLayer?.(i);
      }
      this.norm = src.tensor('model.norm.weight');
      this.head = new DenseLinear(src.tensor('lm_head.weight'));
      if (MtpLayer.present(src, cfg)) this.mtp = new MtpLayer(src, cfg, act, scoreDtype);
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  /**
   * Runs the batch; returns f32 logits `[R, vocab]` of the rows listed in `rows` (`[R]` i32).
   */
  forward(ctx: ForwardContext, cache: KvCache, rope: Rope, rows: Tensor): Tensor {
    const act = this.act;
    let x = ops.embedding(this.embed, ctx.ids, act); //               [T, dim]
    let residual: Tensor | null = null;
    try {
      for (const layer of this.layers) {
        const r = layer.forward(x, residual, ctx, cache, rope, act);
        x.dispose();
        residual?.dispose();
        ({ x, residual } = r);
      }
      const { out, residual: sum } = ops.addRmsNorm(x, residual!, this.norm, this.cfg.eps);
      sum.dispose();
      using h = out;
      using last = ops.gatherRows(h, rows); //                                          [R, dim]
      return this.head.forward(last, 'f32'); //                                         [R, vocab] f32
    } finally {
      x.dispose();
      residual?.dispose();
    }
  }

  dispose(): void {
    this.embed?.dispose();
    for (const l of this.layers) l.dispose();
    this.norm?.dispose();
    this.head?.dispose();
    this.mtp?.dispose();
  }
}
