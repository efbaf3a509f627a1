/**
 * A DeepSeek-V3.2 checkpoint (make-tiny's, or any with the published layout) as a GGUF file that
 * llama.cpp runs: architecture `deepseek32` (MLA + the DSA lightning indexer) or `deepseek2` (MLA
 * without the indexer; the same function as ours only while a sequence is no longer than
 * index_topk, where DSA selects every key).
 *
 * Each tensor as llama.cpp's loader wants it (names and ggml shapes from its llama-arch.cpp and
 * models/deepseek32.cpp): FP8 linears dequantised with their 128×128 block scales and stored Q8_0;
 * norms, the router, its correction bias and the indexer's head weights F32; the embedding and the
 * LM head F16 (as many bytes as our bf16). kv_b_proj [H·(nope+v), kv_lora] is split into
 * attn_k_b (per head W_UKᵀ: ggml [nope, kv_lora, H]) and attn_v_b (per head W_UV: [kv_lora, v, H]),
 * the absorbed form llama.cpp computes MLA in. Routed experts are stacked per layer ([in, out, E]).
 * The MTP layer is not exported (neither side runs it in a forward). The vocabulary is synthetic
 * (syntheticVocab): token ids go straight in on both sides.
 * RoPE: both sides rotate interleaved pairs in MLA (llama.cpp's rope type NORM for deepseek32) and
 * half-split pairs in the indexer; YaRN with yarn_log_multiplier = 0.1·mscale_all_dim, which
 * llama.cpp turns into the softmax scale qk_head_dim^-0.5 · (1 + 0.1·ln(factor))², as ours.
 */
import { basename } from 'node:path';

import { openCheckpoint, type Checkpoint } from '../../io/checkpoint.js';
import { type ModelConfig, parseConfig } from '../../model/config.js';
import { type GgmlType, type GgufKv, type GgufTensor, writeGguf } from './container.js';
import { applyBlockScales, encodeF16, encodeF32, quantizeQ8_0 } from './quant.js';

export type GgufArch = 'deepseek32' | 'deepseek2';

export interface ExportGgufOptions {
  /** 'deepseek32' (default; needs a deepseek_v32 checkpoint) or 'deepseek2' (drops the indexer). */
  arch?: GgufArch;
  /** Called after each tensor is written. */
  onTensor?: (done: number, total: number, name: string) => void;
}

export interface ExportedGguf {
  path: string;
  arch: GgufArch;
  bytes: number;
  tensors: number;
}

/** llama.cpp's general.file_type for a file mostly of Q8_0 (LLAMA_FTYPE_MOSTLY_Q8_0). */
const FILE_TYPE_MOSTLY_Q8_0 = 7;
/** llama.cpp's expert gating function codes. */
const GATING = { softmax: 1, sigmoid: 2 } as const;

/** The metadata llama.cpp's deepseek2/deepseek32 loader reads, from our config. */
export function deepseekGgufMetadata(c: ModelConfig, arch: GgufArch, name: string): GgufKv[] {
  const u32 = (key: string, value: number): GgufKv => ({ key: `${arch}.${key}`, type: 'u32', value });
  const f32 = (key: string, value: number): GgufKv => ({ key: `${arch}.${key}`, type: 'f32', value });
  const kvs: GgufKv[] = [
    { key: 'general.architecture', type: 'string', value: arch },
    { key: 'general.name', type: 'string', value: name },
    { key: 'general.alignment', type: 'u32', value: 32 },
    { key: 'general.file_type', type: 'u32', value: FILE_TYPE_MOSTLY_Q8_0 },
    u32('vocab_size', c.vocabSize),
    u32('context_length', c.maxPositions),
    u32('embedding_length', c.dim),
    u32('feed_forward_length', c.interDim),
    u32('block_count', c.nLayers),
    u32('leading_dense_block_count', c.nDenseLayers),
    u32('expert_feed_forward_length', c.moeInterDim),
    u32('expert_count', c.nRoutedExperts),
    u32('expert_used_count', c.nActivatedExperts),
    u32('expert_shared_count', c.nSharedExperts),
    f32('expert_weights_scale', c.routeScale),
    { key: `${arch}.expert_weights_norm`, type: 'bool', value: c.normTopkProb },
    u32('expert_gating_func', GATING[c.scoreFunc]),
    // MLA as MQA over the latent: one KV head of kv_lora + rope dims, values kv_lora wide; the
    // per-head sizes after decompression in the *_mla keys.
    u32('attention.head_count', c.nHeads),
    u32('attention.head_count_kv', 1),
    u32('attention.key_length', c.kvLoraRank + c.qkRopeHeadDim),
    u32('attention.value_length', c.kvLoraRank),
    u32('attention.key_length_mla', c.qkHeadDim),
    u32('attention.value_length_mla', c.vHeadDim),
    f32('attention.layer_norm_rms_epsilon', c.eps),
    u32('attention.q_lora_rank', c.qLoraRank),
    u32('attention.kv_lora_rank', c.kvLoraRank),
    u32('rope.dimension_count', c.qkRopeHeadDim),
    f32('rope.freq_base', c.rope.theta),
    ...syntheticVocab(c.vocabSize),
  ];
  // llama.cpp asserts topk_group < n_group when groups are given; all groups used = no group limit.
  if (c.nExpertGroups > 1 && c.nLimitedGroups < c.nExpertGroups)
    kvs.push(u32('expert_group_count', c.nExpertGroups), u32('expert_group_used_count', c.nLimitedGroups));
  if (c.rope.yarn) {
    const mscaleAllDim = c.hf.rope_scaling?.mscale_all_dim ?? c.rope.mscale;
    if (mscaleAllDim !== c.rope.mscale)
      throw new RangeError(`export-gguf: rope_scaling.mscale (${c.rope.mscale}) != mscale_all_dim (${mscaleAllDim}): llama.cpp's deepseek loader assumes they are equal`);
    kvs.push(
      { key: `${arch}.rope.scaling.type`, type: 'string', value: 'yarn' },
      f32('rope.scaling.factor', c.rope.factor),
      u32('rope.scaling.original_context_length', c.rope.originalMaxPositions),
      f32('rope.scaling.yarn_beta_fast', c.rope.betaFast),
      f32('rope.scaling.yarn_beta_slow', c.rope.betaSlow),
      // llama.cpp divides this by 0.1 (its converter writes 0.1·mscale_all_dim)
      f32('rope.scaling.yarn_log_multiplier', 0.1 * mscaleAllDim),
    );
  }
  if (arch === 'deepseek32')
    kvs.push(u32('attention.indexer.head_count', c.indexNHeads), u32('attention.indexer.key_length', c.indexHeadDim), u32('attention.indexer.top_k', c.indexTopk));
  return kvs;
}

/** Token types of llama.cpp's vocabulary (LLAMA_TOKEN_TYPE_*). */
const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, byte: 6 } as const;

/**
 * A made-up SentencePiece-style vocabulary of `n` tokens: 0 `<s>` (BOS) and 1 `</s>` (EOS), as
 * make-tiny's config, 2 `<unk>`, then the 256 byte tokens `<0x00>`…`<0xFF>` (so any text a binding
 * tokenizes at load resolves), then `<t259>`… . llama.cpp's tokenizer model "none" would do for
 * the C API, but node-llama-cpp tokenizes text at load and aborts on a model without a tokenizer.
 */
export function syntheticVocab(n: number): GgufKv[] {
  if (n < 259) throw new RangeError(`export-gguf: vocab_size ${n} < 259 (3 special tokens and 256 byte tokens)`);
  const tokens: string[] = ['<s>', '</s>', '<unk>'];
  const types: number[] = [TOKEN_TYPE.control, TOKEN_TYPE.control, TOKEN_TYPE.unknown];
  for (let b = 0; b < 256; ++b) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(TOKEN_TYPE.byte);
  }
  for (let i = tokens.length; i < n; ++i) {
    tokens.push(`<t${i}>`);
    types.push(TOKEN_TYPE.normal);
  }
  return [
    { key: 'tokenizer.ggml.model', type: 'string', value: 'llama' },
    { key: 'tokenizer.ggml.tokens', type: 'array', itemType: 'string', value: tokens },
    { key: 'tokenizer.ggml.scores', type: 'array', itemType: 'f32', value: new Array<number>(n).fill(0) },
    { key: 'tokenizer.ggml.token_type', type: 'array', itemType: 'i32', value: types },
    { key: 'tokenizer.ggml.bos_token_id', type: 'u32', value: 0 },
    { key: 'tokenizer.ggml.eos_token_id', type: 'u32', value: 1 },
    { key: 'tokenizer.ggml.unknown_token_id', type: 'u32', value: 2 },
    { key: 'tokenizer.ggml.add_bos_token', type: 'bool', value: false },
    { key: 'tokenizer.ggml.add_eos_token', type: 'bool', value: false },
  ];
}

/** Values of a checkpoint tensor as f32 (FP8 weights times their block scales). */
async function valuesOf(ckpt: Checkpoint, name: string): Promise<Float32Array> {
  using t = ckpt.tensor(name);
  const values = await t.toFloat32Array();
  if (t.dtype !== 'f8e4m3') return values;
  using s = ckpt.tensor(name.replace(/\.weight$/, '.weight_scale_inv'));
  return applyBlockScales(values, t.shape[0], t.shape[1], await s.toFloat32Array());
}

/** The checkpoint's [rows, cols] shape of `name`. */
function shapeOf(ckpt: Checkpoint, name: string): readonly number[] {
  return ckpt.info(name).shape;
}

function encode(type: GgmlType, v: Float32Array): Uint8Array {
  return type === 'q8_0' ? quantizeQ8_0(v) : type === 'f16' ? encodeF16(v) : encodeF32(v);
}

/** The GGUF tensors of checkpoint `ckpt` for `arch`, each producing its bytes when asked. */
export function deepseekGgufTensors(ckpt: Checkpoint, c: ModelConfig, arch: GgufArch): GgufTensor[] {
  const out: GgufTensor[] = [];
  /** A checkpoint tensor as is: [rows, cols] → ggml [cols, rows]; a vector stays [n]. */
  const plain = (gguf: string, hf: string, type: GgmlType) => {
    const shape = shapeOf(ckpt, hf);
    out.push({ name: gguf, type, ne: [...shape].reverse(), data: async () => encode(type, await valuesOf(ckpt, hf)) });
  };
  /** The routed experts' `proj` of layer `l` stacked: ggml [in, out, E]. */
  const stacked = (gguf: string, l: number, proj: string) => {
    const hf = (e: number) => `model.layers.${l}.mlp.experts.${e}.${proj}.weight`;
    const [rows, cols] = shapeOf(ckpt, hf(0));
    out.push({
      name: gguf, type: 'q8_0', ne: [cols, rows, c.nRoutedExperts],
      data: async () => {
        const all = new Float32Array(c.nRoutedExperts * rows * cols);
        for (let e = 0; e < c.nRoutedExperts; ++e) all.set(await valuesOf(ckpt, hf(e)), e * rows * cols);
        return quantizeQ8_0(all);
      },
    });
  };
  plain('token_embd.weight', 'model.embed_tokens.weight', 'f16');
  plain('output_norm.weight', 'model.norm.weight', 'f32');
  plain('output.weight', 'lm_head.weight', 'f16');
  const H = c.nHeads, nope = c.qkNopeHeadDim, v = c.vHeadDim, kvLora = c.kvLoraRank;
  for (let l = 0; l < c.nLayers; ++l) {
    const p = `model.layers.${l}`, a = `${p}.self_attn`, b = `blk.${l}`;
    plain(`${b}.attn_norm.weight`, `${p}.input_layernorm.weight`, 'f32');
    plain(`${b}.ffn_norm.weight`, `${p}.post_attention_layernorm.weight`, 'f32');
    plain(`${b}.attn_q_a.weight`, `${a}.q_a_proj.weight`, 'q8_0');
    plain(`${b}.attn_q_a_norm.weight`, `${a}.q_a_layernorm.weight`, 'f32');
    plain(`${b}.attn_q_b.weight`, `${a}.q_b_proj.weight`, 'q8_0');
    plain(`${b}.attn_kv_a_mqa.weight`, `${a}.kv_a_proj_with_mqa.weight`, 'q8_0');
    plain(`${b}.attn_kv_a_norm.weight`, `${a}.kv_a_layernorm.weight`, 'f32');
    plain(`${b}.attn_output.weight`, `${a}.o_proj.weight`, 'q8_0');
    // kv_b [H·(nope+v), kv_lora]: head h's rows are its nope key rows, then its v rows.
    let kvB: Promise<Float32Array> | undefined;
    const kvBValues = () => (kvB ??= valuesOf(ckpt, `${a}.kv_b_proj.weight`));
    out.push({
      name: `${b}.attn_k_b.weight`, type: 'q8_0', ne: [nope, kvLora, H],
      data: async () => {
        const w = await kvBValues();
        const k = new Float32Array(H * kvLora * nope); // [H, kv_lora, nope]: W_UK of each head transposed
        for (let h = 0; h < H; ++h)
          for (let n = 0; n < nope; ++n) {
            const row = (h * (nope + v) + n) * kvLora;
            for (let j = 0; j < kvLora; ++j) k[(h * kvLora + j) * nope + n] = w[row + j];
          }
        return quantizeQ8_0(k);
      },
    });
    out.push({
      name: `${b}.attn_v_b.weight`, type: 'q8_0', ne: [kvLora, v, H],
      data: async () => {
        const w = await kvBValues();
        kvB = undefined;
        const vb = new Float32Array(H * v * kvLora); // [H, v, kv_lora]: W_UV of each head
        for (let h = 0; h < H; ++h) vb.set(w.subarray((h * (nope + v) + nope) * kvLora, (h + 1) * (nope + v) * kvLora), h * v * kvLora);
        return quantizeQ8_0(vb);
      },
    });
    if (arch === 'deepseek32') {
      const i = `${a}.indexer`;
      plain(`${b}.indexer.k_norm.weight`, `${i}.k_norm.weight`, 'f32');
      plain(`${b}.indexer.k_norm.bias`, `${i}.k_norm.bias`, 'f32');
      plain(`${b}.indexer.proj.weight`, `${i}.weights_proj.weight`, 'f32');
      plain(`${b}.indexer.attn_k.weight`, `${i}.wk.weight`, 'q8_0');
      plain(`${b}.indexer.attn_q_b.weight`, `${i}.wq_b.weight`, 'q8_0');
    }
    if (l < c.nDenseLayers) {
      for (const proj of ['gate', 'up', 'down']) plain(`${b}.ffn_${proj}.weight`, `${p}.mlp.${proj}_proj.weight`, 'q8_0');
    } else {
      plain(`${b}.ffn_gate_inp.weight`, `${p}.mlp.gate.weight`, 'f32');
      if (ckpt.has(`${p}.mlp.gate.e_score_correction_bias`)) plain(`${b}.exp_probs_b.bias`, `${p}.mlp.gate.e_score_correction_bias`, 'f32');
      for (const proj of ['gate', 'up', 'down']) stacked(`${b}.ffn_${proj}_exps.weight`, l, `${proj}_proj`);
      if (c.nSharedExperts > 0)
        for (const proj of ['gate', 'up', 'down']) plain(`${b}.ffn_${proj}_shexp.weight`, `${p}.mlp.shared_experts.${proj}_proj.weight`, 'q8_0');
    }
  }
  return out;
}

/** Writes the checkpoint in `modelDir` as a GGUF file at `outPath`. */
export async function exportGguf(modelDir: string, outPath: string, options: ExportGgufOptions = {}): Promise<ExportedGguf> {
  const arch = options.arch ?? 'deepseek32';
  if (arch !== 'deepseek32' && arch !== 'deepseek2') throw new TypeError(`export-gguf: arch must be deepseek32 or deepseek2 but received '${arch}'`);
  using ckpt = openCheckpoint(modelDir);
  const c = parseConfig(ckpt.config as Record<string, unknown>);
  if (arch === 'deepseek32' && !c.sparse)
    throw new RangeError(`export-gguf: arch deepseek32 needs a deepseek_v32 checkpoint (with the indexer); ${modelDir} is ${c.modelType}: use --arch deepseek2`);
  if (c.qLoraRank <= 0) throw new RangeError('export-gguf: the checkpoint has no q_lora_rank (a low-rank query); llama.cpp deepseek32 needs one');
  const kvs = deepseekGgufMetadata(c, arch, `make-tiny ${basename(modelDir)}`);
  const tensors = deepseekGgufTensors(ckpt, c, arch).map((t, i, all) => ({
    ...t,
    data: async () => {
      const bytes = await t.data();
      options.onTensor?.(i + 1, all.length, t.name);
      return bytes;
    },
  }));
  const bytes = await writeGguf(outPath, kvs, tensors);
  return { path: outPath, arch, bytes, tensors: tensors.length };
}
