/**
 * `deepseek-native export-gguf --model DIR --out FILE.gguf [--arch deepseek32|deepseek2] [--progress]`:
 * the checkpoint as a GGUF file for llama.cpp (see export.ts). Prints one JSON line: path, arch,
 * bytes, tensors.
 */
import { parseArgs } from 'node:util';

import { exportGguf, type GgufArch } from './export.js';

export const EXPORT_GGUF_USAGE = 'Usage: deepseek-native export-gguf --model DIR --out FILE.gguf [--arch deepseek32|deepseek2] [--progress]\n';

export async function exportGgufCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: 'string' },
      out: { type: 'string' },
      arch: { type: 'string', default: 'deepseek32' },
      progress: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (!values.model) throw new TypeError(`export-gguf: --model DIR is required\n${EXPORT_GGUF_USAGE}`);
  if (!values.out) throw new TypeError(`export-gguf: --out FILE.gguf is required\n${EXPORT_GGUF_USAGE}`);
  if (values.arch !== 'deepseek32' && values.arch !== 'deepseek2')
    throw new TypeError(`export-gguf: --arch must be deepseek32 or deepseek2 but received '${values.arch}'`);
  const showProgress = values.progress || process.stderr.isTTY;
  const done = await exportGguf(values.model, values.out, {
    arch: values.arch as GgufArch,
    ...(showProgress ? { onTensor: (i: number, n: number) => process.stderr.write(`\rexport-gguf: ${i}/${n} tensors`) } : {}),
  });
  if (showProgress) process.stderr.write('\n');
  process.stdout.write(JSON.stringify(done) + '\n');
  return 0;
}
