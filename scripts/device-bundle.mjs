// `npm run device:bundle`: everything a lent GPU machine needs to run the device check, built here
// into .device/ (ignored, < 60 MiB), so the few minutes on the device go to running, not building:
//   .device/pkg/      package.json, dist/, prebuilds/cuda/<platform>/deepseek_native.node (the
//                     CUDA addon), scripts/device-check.mjs, node_modules/tinybench (the benches)
//   .device/node.xz   this Node binary (process.execPath), xz-compressed, for a machine without Node
//   .device/run.sh    the device-side run: check, compute-sanitizer, benchmarks, each under a timeout
//   .device/MANIFEST.json  what was bundled (commit, sizes, Node version)
// scripts/device-check.sh runs it. Builds the CUDA addon first when it is missing (needs nvcc).
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, '.device');
const platform = `${process.platform}-${process.arch}`;
const addon = join(root, 'prebuilds', 'cuda', platform, 'deepseek_native.node');
const LIMIT = 60 * 2 ** 20;
const run = (cmd, args) => execFileSync(cmd, args, { cwd: root, stdio: 'inherit' });

if (!existsSync(addon)) {
  console.log('device:bundle: no CUDA addon yet, building it (npm run build:cuda)');
  run('npm', ['run', 'build:cuda']);
  if (!existsSync(addon)) {
    console.error(`device:bundle: ${addon} is missing: the CUDA build needs nvcc (see npm run build:cuda)`);
    process.exit(1);
  }
}
run('npm', ['run', '--silent', 'build:ts']);

const pkg = join(out, 'pkg');
rmSync(pkg, { recursive: true, force: true });
mkdirSync(join(pkg, 'prebuilds', 'cuda', platform), { recursive: true });
const meta = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: meta.name, version: meta.version, type: 'module', private: true }, null, 2) + '\n');
cpSync(join(root, 'dist'), join(pkg, 'dist'), { recursive: true });
copyFileSync(addon, join(pkg, 'prebuilds', 'cuda', platform, 'deepseek_native.node'));
mkdirSync(join(pkg, 'scripts'));
copyFileSync(join(root, 'scripts', 'device-check.mjs'), join(pkg, 'scripts', 'device-check.mjs'));
copyFileSync(join(root, 'scripts', 'device-model-check.mjs'), join(pkg, 'scripts', 'device-model-check.mjs'));
// The golden checkpoints and DeepSeek's logits for them (test/golden, ~17 MB): the model check on the GPU.
for (const f of ['tiny-dense', 'tiny-sparse', 'tiny-dense.v32.logits.json', 'tiny-sparse.v32.logits.json', 'f32-bounds.json'])
  cpSync(join(root, 'test', 'golden', f), join(pkg, 'golden', f), { recursive: true });
cpSync(join(root, 'node_modules', 'tinybench'), join(pkg, 'node_modules', 'tinybench'), { recursive: true });

// Node, compressed once per binary (xz of ~100 MB takes a while on two cores).
const nodeXz = join(out, 'node.xz');
const nodeStamp = join(out, 'node.stamp');
const st = statSync(process.execPath);
const stamp = `${process.execPath} ${process.version} ${st.size} ${st.mtimeMs}`;
if (!existsSync(nodeXz) || !existsSync(nodeStamp) || readFileSync(nodeStamp, 'utf8') !== stamp) {
  console.log(`device:bundle: compressing ${process.execPath} (${(st.size / 2 ** 20).toFixed(0)} MiB) with xz`);
  const xz = spawnSync('sh', ['-c', `xz -T2 -6 -c "$0" > "$1"`, process.execPath, nodeXz], { stdio: 'inherit' });
  if (xz.status !== 0) {
    console.error('device:bundle: xz failed (is xz installed?)');
    process.exit(1);
  }
  writeFileSync(nodeStamp, stamp);
}
copyFileSync(join(root, 'scripts', 'device-run.sh'), join(out, 'run.sh'));
chmodSync(join(out, 'run.sh'), 0o755);

const commit = spawnSync('git', ['rev-parse', 'HEAD'], { cwd: root, encoding: 'utf8' }).stdout.trim();
const dirty = spawnSync('git', ['status', '--porcelain'], { cwd: root, encoding: 'utf8' }).stdout.trim() !== '';
const du = (p) => Number(spawnSync('du', ['-sb', p], { encoding: 'utf8' }).stdout.split('\t')[0]);
const manifest = {
  commit: commit + (dirty ? ' (with uncommitted changes)' : ''),
  builtAt: new Date().toISOString(),
  node: process.version,
  addonBytes: statSync(addon).size,
  nodeXzBytes: statSync(nodeXz).size,
  totalBytes: 0,
};
writeFileSync(join(out, 'MANIFEST.json'), JSON.stringify(manifest, null, 2) + '\n');
manifest.totalBytes = du(out) - (existsSync(join(out, 'out')) ? du(join(out, 'out')) : 0);
writeFileSync(join(out, 'MANIFEST.json'), JSON.stringify(manifest, null, 2) + '\n');
console.log(`device:bundle: ${out} ${(manifest.totalBytes / 2 ** 20).toFixed(1)} MiB (addon ${(manifest.addonBytes / 2 ** 20).toFixed(1)} MiB, node.xz ${(manifest.nodeXzBytes / 2 ** 20).toFixed(1)} MiB), commit ${manifest.commit}`);
if (manifest.totalBytes > LIMIT) {
  console.error(`device:bundle: the bundle is over ${LIMIT / 2 ** 20} MiB`);
  process.exit(1);
}
