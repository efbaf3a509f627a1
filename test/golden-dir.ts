/**
 * Where the golden checkpoints and reference logits are: $DEEPSEEK_NATIVE_GOLDEN, else the
 * workspace's ../shared/golden (the canonical copy), else the copy committed in test/golden/ (so a
 * clean clone on a machine without the workspace still runs the parity tests).
 */
import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');

export const GOLDEN: string = [process.env.DEEPSEEK_NATIVE_GOLDEN, resolve(root, '../shared/golden'), resolve(root, 'test/golden')].find(
  (d): d is string => !!d && existsSync(resolve(d, 'tiny-sparse.v32.logits.json')),
) ?? resolve(root, 'test/golden');

/** A copy of the golden tiny-sparse checkpoint at `into`/`name`, its config.json changed by `edit`. */
export function tinySparseVariant(into: string, name: string, edit: (cfg: Record<string, any>) => void): string {
  const m = join(into, name);
  cpSync(join(GOLDEN, 'tiny-sparse'), m, { recursive: true });
  const cfg = JSON.parse(readFileSync(join(m, 'config.json'), 'utf8'));
  edit(cfg);
  writeFileSync(join(m, 'config.json'), JSON.stringify(cfg));
  return m;
}
