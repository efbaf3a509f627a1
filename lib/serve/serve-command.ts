/**
 * `deepseek-native serve --model DIR [--port 8000] [--host 127.0.0.1] …`: loads the checkpoint and
 * serves it over the OpenAI-compatible API until SIGTERM / SIGINT, which drain running requests first.
 */
import { loadModel } from '../model/model.js';
import type { Act } from '../runtime/tensor.js';
import { createServer } from './server.js';

export const SERVE_USAGE = `Usage: deepseek-native serve --model DIR [--port 8000] [--host 127.0.0.1] [--name ID]
         [--max-sequences N] [--max-context N] [--max-batch-tokens N] [--activations bf16|f32]
         [--no-batch-invariant]
`;

interface ServeArgs {
  model: string;
  port: number;
  host: string;
  name?: string;
  maxSequences?: number;
  maxContext?: number;
  maxBatchTokens?: number;
  activations?: Act;
  batchInvariant: boolean;
}

/** @internal */
export function parseServeArgs(argv: readonly string[]): ServeArgs {
  const out: Partial<ServeArgs> = { port: 8000, host: '127.0.0.1', batchInvariant: true };
  const int = (flag: string, v: string, lo: number, hi: number): number => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < lo || n > hi) throw new TypeError(`${flag} must be an integer in [${lo}, ${hi}] but received '${v}'`);
    return n;
  };
  for (let i = 0; i < argv.length; ++i) {
    let arg = argv[i];
    let value: string | undefined;
    const eq = arg.indexOf('=');
    if (arg.startsWith('--') && eq > 0) [arg, value] = [arg.slice(0, eq), arg.slice(eq + 1)];
    const next = (): string => {
      if (value !== undefined) return value;
      if (i + 1 >= argv.length) throw new TypeError(`${arg} needs a value`);
      return argv[++i];
    };
    switch (arg) {
      case '--model': out.model = next(); break;
      case '--port': out.port = int(arg, next(), 0, 65535); break;
      case '--host': out.host = next(); break;
      case '--name': out.name = next(); break;
      case '--max-sequences': out.maxSequences = int(arg, next(), 1, 1 << 20); break;
      case '--max-context': out.maxContext = int(arg, next(), 1, 1 << 24); break;
      case '--max-batch-tokens': out.maxBatchTokens = int(arg, next(), 1, 1 << 20); break;
      case '--activations': {
        const a = next();
        if (a !== 'bf16' && a !== 'f32') throw new TypeError(`--activations must be bf16 or f32 but received '${a}'`);
        out.activations = a;
        break;
      }
      case '--no-batch-invariant': out.batchInvariant = false; break;
      default: throw new TypeError(`unknown argument '${argv[i]}'`);
    }
  }
  if (!out.model) throw new TypeError('--model DIR is required');
  return out as ServeArgs;
}

export async function serveCommand(argv: readonly string[]): Promise<number> {
  let args: ServeArgs;
  try {
    args = parseServeArgs(argv);
  } catch (e) {
    process.stderr.write(`deepseek-native serve: ${(e as Error).message}\n${SERVE_USAGE}`);
    return 2;
  }
  const model = await loadModel(args.model, {
    ...(args.maxSequences ? { maxSequences: args.maxSequences } : {}),
    ...(args.maxContext ? { maxContext: args.maxContext } : {}),
    ...(args.activations ? { activations: args.activations } : {}),
  });
  const server = createServer(model, {
    ...(args.name ? { modelName: args.name } : {}),
    engine: { batchInvariant: args.batchInvariant, ...(args.maxBatchTokens ? { maxBatchTokens: args.maxBatchTokens, prefillChunk: Math.min(128, args.maxBatchTokens) } : {}) },
  });
  const address = await server.app.listen({ port: args.port, host: args.host });
  process.stderr.write(`deepseek-native serve: '${server.modelName}' on ${address} (${model.device}, ${model.maxSequences} sequences × ${model.maxContext} tokens, batch-invariant ${args.batchInvariant ? 'on' : 'off'}, tokenizer ${server.serving.tokenizer ? 'loaded' : 'missing: token-id prompts only'})\n`);
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      process.stderr.write(`deepseek-native serve: ${signal}: draining ${server.serving.engine.running} running and ${server.serving.engine.queueDepth} queued request(s)\n`);
      server
        .drain()
        .then(() => model.dispose())
        .then(
          () => resolve(0),
          (e: Error) => {
            process.stderr.write(`deepseek-native serve: ${e.message}\n`);
            resolve(1);
          },
        );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
