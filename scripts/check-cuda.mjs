// `npm run check:cuda`: the static gate on the real sm_90a build. Compiles every cuda/*.cu the way
// CMakeLists.txt does (-gencode arch=compute_90a,code=sm_90a) with `-Xptxas -v`, and reports per
// kernel: registers, barriers, shared memory, stack, spills, local memory, and whether ptxas
// serialised wgmma (its C7510-C7517 "Potential Performance Loss" messages), and checks the PTX of
// the Hopper files for the instructions they exist for (REQUIRED_PTX). Writes the table as JSON to
// bench/results/cuda-kernels.json; fails on a spill, local memory, serialised wgmma, a missing
// required instruction or a file that does not compile. Without nvcc it says so and exits 0.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SERIALISATION = /\bC75(1[0-7])\b/;

/** Instructions a file's PTX (for the build's arch) must contain, so a Hopper pipeline cannot lose
 *  its tensor-core or TMA path unnoticed (a preprocessor guard gone wrong compiles to nothing). */
export const REQUIRED_PTX = {
  'sm90_fp8_gemm.cu': [
    ['wgmma.mma_async with e4m3 operands', /wgmma\.mma_async\.sync\.aligned\.m64n\d+k32\.f32\.e4m3\.e4m3/],
    ['cp.async.bulk.tensor (TMA load)', /cp\.async\.bulk\.tensor\.2d\.shared::cluster\.global/],
    ['mbarrier.try_wait.parity', /mbarrier\.try_wait\.parity/],
    // The decode (swapAB) kernel: FP8 mma.sync fed by a cp.async ring.
    ['mma.sync m16n8k32 with e4m3 operands', /mma\.sync\.aligned\.m16n8k32\.row\.col\.f32\.e4m3\.e4m3\.f32/],
    ['cp.async (16-byte, L2 only)', /cp\.async\.cg\.shared\.global/],
  ],
};

/** The required instructions missing from `ptx` for `file` ([] when all are there). */
export function missingPtx(file, ptx) {
  return (REQUIRED_PTX[file] ?? []).filter(([, re]) => !re.test(ptx)).map(([what]) => what);
}

/** The -gencode value of the CUDA build, read from CMakeLists.txt. */
export function buildGencode(cmakeText) {
  const m = /DSN_CUDA_GENCODE\s+"([^"]+)"/.exec(cmakeText);
  return m ? m[1] : 'arch=compute_90a,code=sm_90a';
}

/**
 * Parses ptxas -v output (nvcc's stderr) into one record per kernel (entry function), in order.
 * Messages that name a function (spills, local memory, C751x) go to that function; others to the
 * entry being compiled.
 */
export function parsePtxas(text, file) {
  const kernels = new Map();
  const get = (name) => {
    if (!kernels.has(name))
      kernels.set(name, { file, kernel: name, registers: null, barriers: 0, smemBytes: 0, stackBytes: 0, spillStores: 0, spillLoads: 0, localMemory: false, wgmmaSerialized: [], messages: [] });
    return kernels.get(name);
  };
  let current = null;
  let props = null;
  for (const line of text.split('\n')) {
    let m;
    if ((m = /Compiling entry function '([^']+)'/.exec(line))) {
      current = get(m[1]);
      continue;
    }
    if ((m = /Function properties for ([^\s:]+)/.exec(line))) {
      props = kernels.get(m[1]) ?? (current && current.kernel === m[1] ? current : null);
      continue;
    }
    if ((m = /(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads/.exec(line))) {
      const k = props ?? current;
      if (k) {
        k.stackBytes = Number(m[1]);
        k.spillStores = Math.max(k.spillStores, Number(m[2]));
        k.spillLoads = Math.max(k.spillLoads, Number(m[3]));
      }
      props = null;
      continue;
    }
    if ((m = /Used (\d+) registers/.exec(line)) && current) {
      current.registers = Number(m[1]);
      const b = /used (\d+) barriers/.exec(line);
      if (b) current.barriers = Number(b[1]);
      const s = /(\d+) bytes smem/.exec(line);
      if (s) current.smemBytes = Number(s[1]);
      continue;
    }
    const named = /function '([^']+)'/.exec(line);
    const target = named ? get(named[1]) : current;
    if (!target) continue;
    if ((m = SERIALISATION.exec(line))) {
      target.wgmmaSerialized.push(`C75${m[1]}`);
      target.messages.push(line.trim());
    } else if (/Registers are spilled|spill/i.test(line) && /warning/.test(line)) {
      const s = /(\d+) bytes spill stores, (\d+) bytes spill loads/.exec(line);
      if (s) {
        target.spillStores = Math.max(target.spillStores, Number(s[1]));
        target.spillLoads = Math.max(target.spillLoads, Number(s[2]));
      } else target.spillStores = Math.max(target.spillStores, 1);
      target.messages.push(line.trim());
    } else if (/[Ll]ocal memory/.test(line) && /warning/.test(line)) {
      target.localMemory = true;
      target.messages.push(line.trim());
    }
  }
  return [...kernels.values()];
}

/** Why a kernel fails the gate ([] when it passes). */
export function gateFailures(k) {
  const why = [];
  if (k.spillStores || k.spillLoads) why.push(`spills (${k.spillStores} B stores, ${k.spillLoads} B loads)`);
  if (k.localMemory) why.push('uses local memory');
  if (k.wgmmaSerialized.length) why.push(`wgmma serialised (${[...new Set(k.wgmmaSerialized)].join(', ')})`);
  return why;
}

function demangle(names) {
  const r = spawnSync('c++filt', [], { input: names.join('\n'), encoding: 'utf8' });
  return r.status === 0 ? r.stdout.split('\n') : names;
}

function main() {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..');
  const nvcc = process.env.CUDACXX || 'nvcc';
  const version = spawnSync(nvcc, ['--version'], { encoding: 'utf8' });
  if (version.status !== 0) {
    console.log(`check:cuda: ${nvcc} not found: nothing to check on this machine`);
    return 0;
  }
  const gencode = buildGencode(readFileSync(join(root, 'CMakeLists.txt'), 'utf8'));
  const files = readdirSync(join(root, 'cuda')).filter((f) => f.endsWith('.cu')).sort();
  const tmp = mkdtempSync(join(tmpdir(), 'dsn-check-cuda-'));
  const kernels = [];
  const compileErrors = [];
  const ptxFailures = [];
  try {
    for (const f of files) {
      const args = ['-c', join('cuda', f), '-o', join(tmp, `${f}.o`), '-std=c++17', '--expt-relaxed-constexpr', '-gencode', gencode,
        '-Xptxas', '-v,-warn-spills,-warn-lmem-usage', '-DDSN_WITH_CUDA'];
      const r = spawnSync(nvcc, args, { cwd: root, encoding: 'utf8' });
      const text = `${r.stdout}\n${r.stderr}`;
      if (r.status !== 0) {
        compileErrors.push({ file: `cuda/${f}`, output: text.trim().split('\n').slice(-20).join('\n') });
        continue;
      }
      kernels.push(...parsePtxas(text, `cuda/${f}`));
      if (REQUIRED_PTX[f]) {
        // The PTX of the same arch (compute_90a keeps the arch-specific feature macros).
        const ptxFile = join(tmp, `${f}.ptx`);
        const arch = /arch=(compute_\w+)/.exec(gencode)?.[1] ?? 'compute_90a';
        const p = spawnSync(nvcc, ['-ptx', join('cuda', f), '-o', ptxFile, '-std=c++17', '--expt-relaxed-constexpr', '-gencode', `arch=${arch},code=${arch}`, '-DDSN_WITH_CUDA'],
          { cwd: root, encoding: 'utf8' });
        const missing = p.status === 0 ? missingPtx(f, readFileSync(ptxFile, 'utf8')) : ['(the PTX did not compile)'];
        for (const what of missing) ptxFailures.push(`cuda/${f}: the PTX lacks ${what}`);
        if (!missing.length) console.log(`cuda/${f}: PTX has ${REQUIRED_PTX[f].map(([what]) => what).join(', ')}`);
      }
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  const pretty = demangle(kernels.map((k) => k.kernel));
  kernels.forEach((k, i) => (k.name = (pretty[i] || k.kernel).replace(/\(anonymous namespace\)::/g, '')));
  const failures = kernels.flatMap((k) => gateFailures(k).map((w) => `${k.file} ${k.name}: ${w}`));
  failures.push(...compileErrors.map((e) => `${e.file}: does not compile\n${e.output}`), ...ptxFailures);
  const report = {
    nvcc: version.stdout.trim().split('\n').pop(),
    gencode,
    kernels,
    compileErrors,
    failures,
  };
  const out = join(root, 'bench', 'results', 'cuda-kernels.json');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(report, null, 2) + '\n');
  for (const k of kernels)
    console.log(`${k.file.padEnd(20)} ${String(k.registers).padStart(3)} regs ${String(k.smemBytes).padStart(6)} B smem  spills ${k.spillStores}/${k.spillLoads}  ${k.wgmmaSerialized.length ? 'wgmma SERIALISED' : ''} ${k.name}`);
  console.log(`check:cuda: ${kernels.length} kernels in ${files.length} files (${gencode}); wrote ${out}`);
  if (failures.length) {
    console.error(`check:cuda: FAILED\n  ${failures.join('\n  ')}`);
    return 1;
  }
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) process.exitCode = main();
