/**
 * The runtime bugs of issue 7 section 1, each with a test. The device suites run on the CPU and on
 * cuda:0 (reported skipped without a CUDA device; they run on the emulated device of the cuda-emu
 * build and on a real GPU), so both backends keep the same contract: reads in stream order,
 * uploads and zeros that never wait for the device, device-side errors raised at the next sync
 * point naming the op, and a read that settles whatever fails.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

import { devices, opDevices, ops, runtimeInfo, synchronize, tensor, zeros } from '../../lib/index.js';
import { native } from '../../lib/runtime/native.js';
import { GOLDEN } from '../golden-dir.js';
import { CUDA_OPS, suiteDevices } from '../helpers.js';
// @ts-expect-error plain ESM script without types
import { sourceList, sourceStamp } from '../../scripts/cuda-sources.mjs';
// @ts-expect-error plain ESM script without types
import { gateFailures, missingPtx, parsePtxas } from '../../scripts/check-cuda.mjs';

const root = resolve(import.meta.dirname, '../..');

/** Runs a command without blocking the test worker's event loop (vitest talks to it meanwhile). */
function run(cmd: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {}): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(cmd, args, { cwd: options.cwd, env: options.env ?? process.env, timeout: options.timeout });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (status) => done({ status, stdout, stderr }));
  });
}
const debug = () => native().ops;

for (const { device, skip } of suiteDevices()) {
  describe.skipIf(skip)(`stream order and sync points on ${device}${skip ? ` (skipped: ${skip})` : ''}`, () => {
    it('a read sees the ops queued before it and none queued after it', async () => {
      using x = tensor(new Float32Array(4096).fill(1), { device });
      debug().debugDelay(device, 100);  // the stream is busy when the read is queued
      const before = x.read();
      debug().debugFill(x.handle(), 0);
      const after = x.read();
      const [b, a] = (await Promise.all([before, after])) as Float32Array[];
      expect(Array.from(new Set(b))).toEqual([1]);
      expect(Array.from(new Set(a))).toEqual([0]);
    });

    it('tensor() copies the host data at the call and does not wait for queued work', async () => {
      debug().debugDelay(device, 1000);
      const data = new Float32Array(1 << 16).map((_, i) => i);
      const t0 = performance.now();
      using x = tensor(data, { device });
      const ms = performance.now() - t0;
      data.fill(-1);  // must not reach the tensor
      const got = (await x.read()) as Float32Array;
      expect(got[12345]).toBe(12345);
      expect(got.every((v, i) => v === i)).toBe(true);
      expect(ms).toBeLessThan(500);
    });

    it('zeros() is zero over a recycled block and does not wait for queued work', async () => {
      {
        using a = tensor(new Float32Array(1 << 16).fill(3), { device });
        await a.read();
      }
      debug().debugDelay(device, 1000);
      const t0 = performance.now();
      using z = zeros([1 << 16], { device });
      const ms = performance.now() - t0;
      const got = (await z.read()) as Float32Array;
      expect(got.every((v) => v === 0)).toBe(true);
      expect(ms).toBeLessThan(500);
    });

    it('a kernel that finds bad data rejects the next sync point, naming the op, then clears', async () => {
      using x = zeros([4], { device });
      debug().debugRaiseDevice(x.handle(), 3, 70000, 65536);
      await expect(x.read()).rejects.toThrow(new RangeError('debugRaiseDevice: token id 70000 is out of range [0, 65536)'));
      expect((await x.read()).length).toBe(4);
      debug().debugRaiseDevice(x.handle(), 2, -1, 256);
      await expect(synchronize(device)).rejects.toThrow('debugRaiseDevice: expert id -1 is out of range [0, 256)');
      await synchronize(device);
    });

    it('the first device error since the last sync point is the one reported', async () => {
      using x = zeros([4], { device });
      debug().debugRaiseDevice(x.handle(), 4, 9, 8);
      debug().debugRaiseDevice(x.handle(), 5, 99, 64);
      await expect(x.read()).rejects.toThrow('debugRaiseDevice: offset 9 is out of range [0, 8)');
    });

    it("profile(reset, device) counts each op queued on the device's stream", async () => {
      using x = tensor(new Float32Array(256).map((_, i) => i - 100), { device });
      native().profile(true, device);
      const n = 2 + Math.floor(Math.random() * 4);
      for (let i = 0; i < n; ++i) ops.scale(x, 0.5).dispose();
      using y = ops.add(x, x);
      await y.read();
      const counts = native().profile(true, device);
      expect(counts.scale?.runs).toBe(n);
      expect(counts.add?.runs).toBe(1);
      if (device !== 'cpu') expect(counts.read?.runs).toBe(1);  // CUDA counts its sync points too
      expect(native().profile(false, device).scale).toBeUndefined();  // reset by the read before
      expect(() => native().profile(false, 'cuda:9')).toThrow(/cuda:9/);
    });

    it('a read whose host buffer cannot be allocated rejects instead of hanging', async () => {
      using x = tensor(new Float32Array([1, 2, 3]), { device });
      debug().debugFailHostAllocations(1);
      await expect(x.read()).rejects.toThrow('read: out of host memory: cannot allocate 12 bytes for the result');
      using b = tensor(new Float32Array([1, 2]), { dtype: 'bf16', device });
      await b.read();
      debug().debugFailHostAllocations(1);
      await expect(b.toFloat32Array()).rejects.toThrow(/out of host memory/);
      debug().debugFailHostAllocations(0);
      expect(Array.from((await x.read()) as Float32Array)).toEqual([1, 2, 3]);
    });
  });
}

describe('where each op runs (the addon\'s opDevices list)', () => {
  it('lists every public op, each on the cpu; cuda only where the build has the kernel', () => {
    const list = opDevices();
    for (const op of ['rmsNorm', 'layerNorm', 'cast', 'gemm', 'fp8Gemm', 'mlaDecode', 'moeRoute', 'embedding']) expect(list[op]).toContain('cpu');
    for (const op of Object.keys(list)) expect(op).not.toMatch(/^(debug|safetensors)/);
    const cudaBuilt = runtimeInfo().backends.includes('cuda');
    expect(list.rmsNorm.includes('cuda')).toBe(cudaBuilt);
    expect(list.cast.includes('cuda')).toBe(cudaBuilt);
    expect(list.sample.includes('cuda')).toBe(cudaBuilt);
    expect(list.sampleRows.includes('cuda')).toBe(cudaBuilt);
    expect(runtimeInfo().cudaOps).toEqual(cudaBuilt ? CUDA_OPS : []);
    // Every op has a CUDA kernel now: a CUDA build runs each of them on cuda:0.
    if (cudaBuilt) for (const [op, kinds] of Object.entries(list)) expect(kinds, op).toContain('cuda');
  });

});

describe('CUDA devices and errors', () => {
  it('refuses a GPU whose architecture the build has no code for, naming both', () => {
    const check = (archs: string, cc: string) => debug().debugCudaArchCheck(archs, cc) as string;
    expect(check('sm_90a', '9.0')).toBe('');
    expect(check('sm_90a', '8.0')).toBe('it has compute capability 8.0, but this build has code for sm_90a only (sm_90a needs compute capability 9.0)');
    expect(check('sm_90a', '9.1')).not.toBe('');
    expect(check('sm_80', '8.6')).toBe('');
    expect(check('sm_80', '9.0')).toMatch(/sm_80 needs compute capability 8.x with x >= 0/);
    expect(check('sm_80,sm_90a', '9.0')).toBe('');
    expect(check('compute_80', '9.0')).toBe('');
    expect(check('emulated', '1.0')).toBe('');
  });

  it('says why there is no CUDA device, and reports driver and runtime versions', () => {
    const info = runtimeInfo();
    if (!info.backends.includes('cuda')) {
      expect(info.cuda).toBeNull();
      return;
    }
    expect(info.cuda!.runtimeVersion).toMatch(/^\d+\.\d+$/);
    expect(info.cuda!.driverVersion).toMatch(/^(\d+\.\d+|none)$/);
    const gpus = info.devices.filter((d) => d.kind === 'cuda');
    expect(info.cuda!.deviceCount).toBe(gpus.length);
    if (!gpus.length) {
      expect(info.cuda!.status).not.toBe('ok');
      expect(info.cuda!.status).toMatch(/^cuda\w+|no CUDA device/);
      expect(() => zeros([2], { device: 'cuda:0' })).toThrow(`device cuda:0 is not available: 0 CUDA device(s) found (${info.cuda!.status})`);
    }
    for (const d of gpus) {
      expect(d.computeCapability).toMatch(/^\d+\.\d$/);
      expect(d.driverVersion).toBe(info.cuda!.driverVersion);
      expect(typeof d.supported).toBe('boolean');
    }
  });

  const gpu = devices().find((d) => d.kind === 'cuda' && d.supported !== false);
  it.skipIf(!gpu)(`an allocation failure carries CUDA's own error${gpu ? '' : ' (skipped: no CUDA GPU)'}`, () => {
    expect(() => zeros([1 << 20, 1 << 20, 1 << 6], { dtype: 'u8', device: gpu!.name })).toThrow(
      /^out of memory on cuda:\d: cannot allocate 70368744177664 bytes \(cudaErrorMemoryAllocation: .+\)$/,
    );
  });

  // Whether the kernel has faulted when the sync point is queued (queuing fails) or only while it is
  // waited for, the error names the work queued before it.
  it.skipIf(!gpu).each([0, 300])(`a sticky error is reported as an earlier kernel's, not the next op's (sync queued after %i ms)${gpu ? '' : ' (skipped: no CUDA GPU)'}`, async (delayMs) => {
    // In a child process: the context is unusable afterwards.
    const r = await run(process.execPath, ['--input-type=module', '-e', `
      import { ops, tensor, synchronize } from './dist/lib/index.js';
      import { native } from './dist/lib/runtime/native.js';
      const x = tensor(new Float32Array(64), { device: '${gpu?.name}' });
      native().ops.debugIllegalAddress('${gpu?.name}');
      await new Promise((resolve) => setTimeout(resolve, ${delayMs}));
      const sync = await synchronize('${gpu?.name}').then(() => 'resolved', (e) => e.message);
      let launch = '';
      try { ops.cast(x, 'bf16'); } catch (e) { launch = e.message; }
      console.log(JSON.stringify({ sync, launch }));`], { cwd: root, timeout: 60000 });
    const { sync, launch } = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(sync).toMatch(/^cuda:\d: cuda\w+: .+ \(raised by work queued before this synchronize; the last op queued was debugIllegalAddress\)$/);
    // The next op fails before its kernel: at its launch check, or already at its output's allocation
    // (cudaMalloc returns the sticky error too, on a GPU as on the emulated device), naming that error.
    expect(launch).toMatch(/^cast: cannot launch on cuda:\d: an earlier CUDA call or kernel failed|^cuda:\d: cannot allocate \d+ bytes: cudaErrorIllegalAddress/);
  });
});

const usable = devices().filter((d) => d.kind === 'cuda' && d.supported !== false);
describe.skipIf(usable.length < 2)(`two GPUs${usable.length < 2 ? ' (skipped: needs 2 CUDA devices)' : ''}`, () => {
  it('a launch on cuda:1 runs on cuda:1 whichever device was current before', async () => {
    const xs = Float32Array.from({ length: 3 * 64 }, (_, i) => Math.sin(i));
    const w = new Float32Array(64).fill(1);
    const want = await ops.rmsNorm(tensor(xs, { shape: [3, 64] }), tensor(w), 1e-6).toFloat32Array();
    using a0 = tensor(xs, { shape: [3, 64], device: usable[0].name });  // makes device 0 current
    using x1 = tensor(xs, { shape: [3, 64], device: usable[1].name });
    using w1 = tensor(w, { device: usable[1].name });
    using y0 = ops.cast(a0, 'bf16');
    using y1 = ops.rmsNorm(x1, w1, 1e-6);
    const got = await y1.toFloat32Array();
    for (let i = 0; i < got.length; ++i) expect(Math.abs(got[i] - want[i])).toBeLessThan(1e-5);
    expect((await y0.read()).length).toBe(xs.length);
  });
});

describe('the CUDA build scripts', () => {
  it('build:cuda skips without nvcc and never writes prebuilds/cuda/', async () => {
    const r = await run(process.execPath, [join(root, 'scripts', 'build-cuda.mjs')], {
      env: { ...process.env, CUDACXX: '/nonexistent/nvcc', DSN_REQUIRE_CUDA: '' },
    });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('build:cuda: /nonexistent/nvcc not found: skipping the CUDA build (prebuilds/cuda/ is not written)');
    const strict = await run(process.execPath, [join(root, 'scripts', 'build-cuda.mjs')], {
      env: { ...process.env, CUDACXX: '/nonexistent/nvcc', DSN_REQUIRE_CUDA: '1' },
    });
    expect(strict.status).toBe(1);
  });

  it('CMake re-globs sources on every build and the build script reconfigures when they change', () => {
    const cmake = readFileSync(join(root, 'CMakeLists.txt'), 'utf8');
    for (const m of cmake.matchAll(/file\(GLOB\s+(\w+)([^)]*)\)/g)) expect(`${m[1]}: ${m[2].trim().split(/\s+/)[0]}`).toBe(`${m[1]}: CONFIGURE_DEPENDS`);
    expect(cmake).toMatch(/-gencode \$\{DSN_CUDA_GENCODE\}/);
    expect(cmake).toContain('"arch=compute_90a,code=sm_90a"');
    expect(cmake).toContain('-Xptxas=-warn-spills,-warn-lmem-usage,-Werror');
    const dir = mkdtempSync(join(tmpdir(), 'dsn-sources-'));
    try {
      mkdirSync(join(dir, 'cuda'));
      writeFileSync(join(dir, 'CMakeLists.txt'), 'project(x)');
      writeFileSync(join(dir, 'cuda', 'norm.cu'), '');
      const before = sourceStamp(dir);
      expect(sourceStamp(dir)).toBe(before);
      writeFileSync(join(dir, 'cuda', 'sm90_fp8_gemm.cu'), '');
      expect(sourceList(dir)).toEqual(['cuda/norm.cu', 'cuda/sm90_fp8_gemm.cu']);
      expect(sourceStamp(dir)).not.toBe(before);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the device check runs under plain Node (with the CPU in the GPU\'s place here) and counts its cases', async () => {
    const r = await run(process.execPath, [join(root, 'scripts', 'device-check.mjs'), '--small'], {
      cwd: root,
      env: { ...process.env, DEVICE_CHECK_DEVICE: 'cpu' },
      timeout: 120000,
    });
    expect(r.stdout).toMatch(/\n(\d+) passed, 0 failed\n$/);
    expect(Number(/(\d+) passed/.exec(r.stdout)![1])).toBeGreaterThanOrEqual(8);
    expect(r.status).toBe(0);
  });

  it('device-model-check.mjs runs the golden checkpoints with the CPU in the GPU\'s place and reports each within its bounds', async () => {
    const r = await run(process.execPath, [join(root, 'scripts', 'device-model-check.mjs'), GOLDEN, '--device', 'cpu'], { cwd: root, timeout: 110_000 });
    expect(r.stdout).toContain('4 passed, 0 failed');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/ok {3}tiny-sparse f32 on cpu: 51 rows/);
  }, 120_000);

  it('device-check.sh exits cleanly with a message on a machine without a GPU', async () => {
    const hasGpu = spawnSync('nvidia-smi', ['-L']).status === 0;
    if (hasGpu) return;
    const out = mkdtempSync(join(tmpdir(), 'dsn-device-check-'));
    try {
      const r = await run('bash', [join(root, 'scripts', 'device-check.sh')], { env: { ...process.env, OUT: out } });
      expect(r.status).toBe(0);
      expect(r.stdout).toContain('device-check: no NVIDIA GPU on this machine');
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('check:cuda reads registers, shared memory, spills and wgmma serialisation from ptxas', () => {
    const text = [
      "ptxas info    : Compiling entry function '_Z4goodv' for 'sm_90a'",
      'ptxas info    : Function properties for _Z4goodv',
      '    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads',
      'ptxas info    : Used 32 registers, used 1 barriers, 4096 bytes smem, 400 bytes cmem[0]',
      "ptxas info    : Compiling entry function '_Z5spillv' for 'sm_90a'",
      'ptxas info    : Function properties for _Z5spillv',
      '    24 bytes stack frame, 16 bytes spill stores, 16 bytes spill loads',
      'ptxas info    : Used 255 registers, used 0 barriers',
      "ptxas info    : Compiling entry function '_Z4wgmmav' for 'sm_90a'",
      "ptxas info    : (C7515) Potential Performance Loss: wgmma.mma_async instructions are serialized due to the presence of Extern calls in the function '_Z4wgmmav'.",
      'ptxas info    : Used 168 registers, used 1 barriers, 200704 bytes smem',
    ].join('\n');
    const ks = parsePtxas(text, 'cuda/x.cu');
    expect(ks.map((k: { kernel: string }) => k.kernel)).toEqual(['_Z4goodv', '_Z5spillv', '_Z4wgmmav']);
    expect(ks[0]).toMatchObject({ registers: 32, barriers: 1, smemBytes: 4096, spillStores: 0 });
    expect(gateFailures(ks[0])).toEqual([]);
    expect(gateFailures(ks[1])).toEqual(['spills (16 B stores, 16 B loads)']);
    expect(ks[2]).toMatchObject({ registers: 168, smemBytes: 200704, wgmmaSerialized: ['C7515'] });
    expect(gateFailures(ks[2])).toEqual(['wgmma serialised (C7515)']);
  });

  it('check:cuda requires wgmma e4m3, TMA loads and mbarrier waits (the Hopper fp8Gemm) and mma.sync e4m3 fed by cp.async (the decode kernel) in its PTX', () => {
    const hopper = [
      'mbarrier.try_wait.parity.shared::cta.b64 p, [%r1], %r2;',
      'cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%r3], [%rd1, {%r4, %r5}], [%r1];',
      'wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 {%f1, %f2}, %rd2, %rd3, p, 1, 1;',
    ].join('\n');
    const decode = ['cp.async.cg.shared.global [%r6], [%rd4], 16, %r7;', 'mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%f3, %f4, %f5, %f6}, {%r8, %r9, %r10, %r11}, {%r12, %r13}, {%f3, %f4, %f5, %f6};'].join('\n');
    expect(missingPtx('sm90_fp8_gemm.cu', `${hopper}\n${decode}`)).toEqual([]);
    // The decode kernel alone, or a bf16 wgmma, is not the Hopper FP8 pipeline; the Hopper one alone lacks the decode kernel.
    expect(missingPtx('sm90_fp8_gemm.cu', decode)).toEqual(['wgmma.mma_async with e4m3 operands', 'cp.async.bulk.tensor (TMA load)', 'mbarrier.try_wait.parity']);
    expect(missingPtx('sm90_fp8_gemm.cu', `${hopper.replace('e4m3.e4m3', 'bf16.bf16')}\n${decode}`)).toEqual(['wgmma.mma_async with e4m3 operands']);
    expect(missingPtx('sm90_fp8_gemm.cu', hopper)).toEqual(['mma.sync m16n8k32 with e4m3 operands', 'cp.async (16-byte, L2 only)']);
    expect(missingPtx('norm.cu', '')).toEqual([]);
  });
});
