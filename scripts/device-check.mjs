// The device check (plain Node, no vitest): runs every op that has a CUDA kernel in the loaded build
// (the addon's opDevices list) on cuda:0 against the CPU backend, on fresh random inputs, and
// prints "N passed, N failed". An op with a CUDA kernel but no case here counts as a failure, so a
// new kernel cannot go unchecked. Also checks the runtime: reads in stream order, uploads and
// zeros, the device error word. `--small` runs one small case per op (for compute-sanitizer).
//
//   DEEPSEEK_NATIVE_BUILD=cuda node scripts/device-check.mjs [--small] [--seed N]
//
// DEVICE_CHECK_DEVICE=cpu runs the whole check with the CPU in the GPU's place (every op that has
// a case), so the script itself is tested on machines without a GPU.
import { devices, opDevices, ops, runtimeInfo, tensor, zeros } from '../dist/lib/index.js';
import { native } from '../dist/lib/runtime/native.js';

const small = process.argv.includes('--small');
const seedArg = process.argv.indexOf('--seed');
let seed = seedArg > 0 ? Number(process.argv[seedArg + 1]) : (Date.now() ^ (Math.random() * 0x7fffffff)) >>> 0;
const startSeed = seed;
function random() {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const normal = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
const floats = (n, scale = 1) => Float32Array.from({ length: n }, () => normal() * scale);

/** Largest |a - b| / (atol + rtol·|b|) over the arrays: <= 1 passes. */
function worst(a, b, atol, rtol) {
  let w = 0, at = -1;
  if (a.length !== b.length) return { ratio: Infinity, at: -1 };
  for (let i = 0; i < a.length; ++i) {
    const r = Number.isNaN(a[i]) !== Number.isNaN(b[i]) ? Infinity : Number.isNaN(a[i]) ? 0 : Math.abs(a[i] - b[i]) / (atol + rtol * Math.abs(b[i]));
    if (r > w) { w = r; at = i; }
  }
  return { ratio: w, at };
}

const ULP = { f32: 2 ** -23, bf16: 2 ** -8, f16: 2 ** -11, f8e4m3: 2 ** -4 };
const GPU = process.env.DEVICE_CHECK_DEVICE ?? 'cuda:0';

/** op -> cases; each case returns { name, run(device) -> Promise<Float32Array[]>, atol, rtol }. */
const CASES = {
  cast() {
    const out = [];
    const shapes = small ? [[3, 37]] : [[1, 1], [3, 37], [64, 7168], [1000, 129]];
    for (const [rows, cols] of shapes)
      for (const from of ['f32', 'bf16', 'f16', 'f8e4m3'])
        for (const to of ['f32', 'bf16', 'f16', 'f8e4m3']) {
          if (small && from !== 'f32') continue;
          const data = floats(rows * cols, 50);
          out.push({
            name: `cast ${from}->${to} [${rows}, ${cols}]`,
            // Both sides start from the same f32 data rounded on the CPU, so only the cast differs.
            atol: 0, rtol: 0,
            async run(device) {
              const src = tensor(data, { shape: [rows, cols], dtype: from });
              const bytes = await src.read();
              src.dispose();
              const x = tensor(bytes, { shape: [rows, cols], dtype: from, device });
              const y = ops.cast(x, to);
              const r = [await y.toFloat32Array()];
              x.dispose(); y.dispose();
              return r;
            },
          });
        }
    return out;
  },
  rmsNorm() {
    const out = [];
    const shapes = small ? [[3, 130]] : [[1, 1], [3, 33], [5, 130], [17, 513], [2, 7168], [64, 7168], [7, 1536]];
    for (const [rows, dim] of shapes)
      for (const dtype of ['f32', 'bf16', 'f16'])
        for (const fused of [false, true]) {
          if (small && dtype !== 'bf16') continue;
          const x = floats(rows * dim, 3), res = floats(rows * dim, 2), w = floats(dim).map((v) => v + 1);
          out.push({
            name: `rmsNorm${fused ? ' + residual' : ''} ${dtype} [${rows}, ${dim}]`,
            // Different summation orders: a few ulps of the output dtype (f32: a few 1e-6).
            atol: dtype === 'f32' ? 1e-5 : 4 * ULP[dtype], rtol: dtype === 'f32' ? 1e-5 : 4 * ULP[dtype],
            async run(device) {
              const xt = tensor(x, { shape: [rows, dim], dtype, device });
              const rt = tensor(res, { shape: [rows, dim], dtype, device });
              const wt = tensor(w, { dtype: 'bf16', device });
              const got = [];
              if (fused) {
                const r = ops.addRmsNorm(xt, rt, wt, 1e-6);
                got.push(await r.out.toFloat32Array(), await r.residual.toFloat32Array());
                r.out.dispose(); r.residual.dispose();
              } else {
                const y = ops.rmsNorm(xt, wt, 1e-6);
                got.push(await y.toFloat32Array());
                y.dispose();
              }
              xt.dispose(); rt.dispose(); wt.dispose();
              return got;
            },
          });
        }
    return out;
  },
};

/** Runtime checks (section 1 of issue 7) on the device. */
const RUNTIME = [
  ['a read sees the ops queued before it and none after', async () => {
    const x = tensor(new Float32Array(1 << 16).fill(1), { device: GPU });
    native().ops.debugDelay(GPU, 100);
    const before = x.read();
    native().ops.debugFill(x.handle(), 0);
    const after = x.read();
    const [b, a] = await Promise.all([before, after]);
    x.dispose();
    if (!b.every((v) => v === 1)) throw new Error('the first read saw a fill queued after it');
    if (!a.every((v) => v === 0)) throw new Error('the second read missed the fill queued before it');
  }],
  ['tensor() and zeros() do not wait for queued GPU work', async () => {
    const data = floats(1 << 18);
    native().ops.debugDelay(GPU, 400);
    const t0 = performance.now();
    const x = tensor(data, { device: GPU });
    data.fill(7);  // the upload was staged at the call: later writes to data do not reach it
    const z = zeros([1 << 20], { device: GPU });
    const ms = performance.now() - t0;
    const [got, zs] = await Promise.all([x.read(), z.read()]);
    x.dispose(); z.dispose();
    if (ms > 200) throw new Error(`tensor()+zeros() took ${ms.toFixed(0)} ms behind a 400 ms queued delay`);
    if (got.some((v) => v === 7)) throw new Error('the upload read the host array after tensor() returned');
    if (!zs.every((v) => v === 0)) throw new Error('zeros() is not zero');
  }],
  ['a recycled block read back through zeros() is zero', async () => {
    const a = tensor(new Float32Array(1 << 16).fill(3), { device: GPU });
    await a.read();
    a.dispose();
    const z = zeros([1 << 16], { device: GPU });
    const zs = await z.read();
    z.dispose();
    if (!zs.every((v) => v === 0)) throw new Error('zeros() over a recycled block is not zero');
  }],
  ['a kernel that finds bad data rejects the next read naming the op', async () => {
    const x = zeros([4], { device: GPU });
    native().ops.debugRaiseDevice(x.handle(), 3, 70000, 65536);
    let message = '';
    await x.read().catch((e) => (message = e.message));
    const again = await x.read();  // cleared at the sync point that reported it
    x.dispose();
    if (message !== 'debugRaiseDevice: token id 70000 is out of range [0, 65536)') throw new Error(`got '${message}'`);
    if (again.length !== 4) throw new Error('the read after the error failed');
  }],
  ['a failed host allocation in a read rejects it', async () => {
    const x = zeros([4], { device: GPU });
    native().ops.debugFailHostAllocations(1);
    let message = '';
    await x.read().catch((e) => (message = e.message));
    x.dispose();
    if (!/out of host memory/.test(message)) throw new Error(`got '${message}'`);
  }],
];

async function main() {
  const info = runtimeInfo();
  const gpu = devices().find((d) => d.name === GPU);
  console.log(`device check: ${info.addon}`);
  console.log(`  cuda: ${JSON.stringify(info.cuda)}`);
  if (!gpu) {
    // On the device machine (--require-gpu, as .device/run.sh runs it) a missing GPU is a failure.
    console.log(`no ${GPU} here (${info.cuda?.status ?? 'CPU build'}): nothing to check`);
    return process.argv.includes('--require-gpu') ? 1 : 0;
  }
  console.log(`  ${GPU}: ${gpu.description}, compute capability ${gpu.computeCapability}, ${(gpu.memoryBytes / 2 ** 30).toFixed(0)} GiB, driver CUDA ${gpu.driverVersion}`);
  console.log(`  seed ${startSeed} (replay with --seed ${startSeed})`);
  if (gpu.supported === false) {
    console.log(`FAILED: ${gpu.unsupported}`);
    return 1;
  }
  let passed = 0, failed = 0;
  const fail = (name, why) => {
    failed++;
    console.log(`FAIL ${name}: ${why}`);
  };
  if (!small || GPU === 'cpu')
    for (const [name, check] of RUNTIME) {
      try {
        await check();
        passed++;
        console.log(`ok   runtime: ${name}`);
      } catch (e) {
        fail(`runtime: ${name}`, e.message);
      }
    }
  const cudaOps = GPU === 'cpu' ? Object.keys(CASES) : Object.entries(opDevices()).filter(([, d]) => d.includes('cuda')).map(([op]) => op);
  console.log(`  ops with a CUDA kernel: ${cudaOps.join(', ')}`);
  for (const op of cudaOps) {
    if (!CASES[op]) {
      fail(op, 'has a CUDA kernel but no case in scripts/device-check.mjs');
      continue;
    }
    for (const c of CASES[op]()) {
      try {
        const [want, got] = [await c.run('cpu'), await c.run(GPU)];
        const bad = want.map((w, i) => ({ i, ...worst(got[i], w, c.atol, c.rtol) })).find((r) => r.ratio > 1);
        if (bad) fail(c.name, `output ${bad.i} differs from the CPU at ${bad.at}: ${got[bad.i][bad.at]} vs ${want[bad.i][bad.at]} (atol ${c.atol}, rtol ${c.rtol})`);
        else passed++;
      } catch (e) {
        fail(c.name, e.message);
      }
    }
  }
  console.log(`${passed} passed, ${failed} failed`);
  return failed ? 1 : 0;
}

main().then((rc) => (process.exitCode = rc), (e) => {
  console.error(e);
  process.exitCode = 1;
});
