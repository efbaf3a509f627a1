// Builds what `npm start`, `npm test` and `npm run bench` need when it is missing: the CPU addon
// (node-gyp via prebuildify) and the compiled TypeScript. The addon is built only when missing; TypeScript is always recompiled (a few seconds).
import { execSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const run = (cmd) => execSync(cmd, { cwd: root, stdio: 'inherit' });
const platform = `${process.platform}-${process.arch}`;
if (!existsSync(join(root, 'prebuilds', platform)) && !existsSync(join(root, 'build', 'Release', 'deepseek_native.node'))) {
  console.log('deepseek-native: building the CPU addon (node-gyp)…');
  run('npm run build:addon');
}
// tsc is incremental enough to run every time; a stale dist/ would make the CLI lie.
run('npm run --silent build:ts');
