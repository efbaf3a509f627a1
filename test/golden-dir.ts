/**
 * Where the golden checkpoints and reference logits are: $DEEPSEEK_NATIVE_GOLDEN, else the
 * workspace's ../shared/golden (the canonical copy), else the copy committed in test/golden/ (so a
 * clean clone on a machine without the workspace still runs the parity tests).
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');

export const GOLDEN: string = [process.env.DEEPSEEK_NATIVE_GOLDEN, resolve(root, '../shared/golden'), resolve(root, 'test/golden')].find(
  (d): d is string => !!d && existsSync(resolve(d, 'tiny-sparse.v32.logits.json')),
) ?? resolve(root, 'test/golden');
