/**
 * The emulated CUDA device (cuda/emu) and the cuda/ptx wrappers: runs cuda_emu_test, the C++ test
 * binary built with the cuda-emu build, and reports each of its cases; then checks the cuda-emu
 * addon itself (devices, info, a kernel fault surfacing as a JS error that names the kernel).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

import { devices, runtimeInfo } from '../../lib/index.js';

const root = resolve(import.meta.dirname, '../..');
const binary = [join(root, 'build-cuda-emu', 'Release', 'cuda_emu_test'), join(root, 'build-cuda-emu', 'cuda_emu_test')].find(existsSync);

const CASES = [
  'warp_shuffles_follow_the_programming_guide',
  'warp_votes_match_and_reduce',
  'divergent_warp_collective_is_reported',
  'planted_missing_syncthreads_gives_a_wrong_result',
  'syncthreads_count_and_or',
  'barrier_divergence_is_a_reported_deadlock',
  'named_barrier_producer_consumer',
  'atomics_from_many_blocks',
  'planted_off_by_one_tail_is_an_illegal_address',
  'dynamic_shared_memory_overrun_is_reported',
  'streams_events_and_host_functions_are_ordered',
  'sticky_error_blocks_later_work_until_reset',
  'device_properties_say_emulated_sm90',
  'mma_m16n8k16_bf16_matches_the_isa_tables',
  'mma_m16n8k32_e4m3_matches_the_isa_tables',
  'planted_wrong_fragment_index_fails',
  'ldmatrix_matches_the_isa',
  'cp_async_lands_at_wait_group',
  'mbarrier_phases_alternate_parity',
  'mbarrier_wait_that_cannot_complete_is_reported',
  'tma_2d_loads_follow_the_swizzle_tables',
  'planted_unset_mbarrier_tx_count_fails',
  'tensor_map_encoding_validates_like_the_driver',
  'wgmma_m64nNk32_e4m3_matches_the_isa_tables',
  'planted_wrong_wgmma_swizzle_fails',
];

describe('cuda_emu_test (the emulator and the PTX wrappers against the ISA tables)', () => {
  let output = '';
  it('is built by the cuda-emu build and runs to completion', () => {
    expect(binary, 'run `npm run build:cuda-emu`').toBeDefined();
    try {
      output = execFileSync(binary!, { encoding: 'utf8', timeout: 60_000 });
    } catch (e) {
      output = String((e as { stdout?: string }).stdout ?? '');
    }
    expect(output).toMatch(/\d+ passed, \d+ failed/);
  });
  for (const name of CASES) {
    it(name, () => {
      const line = output.split('\n').findIndex((l) => l.endsWith(` ${name}`));
      const detail = output.split('\n').slice(line, line + 6).join('\n');
      expect(line >= 0 ? output.split('\n')[line] : `missing: ${name}`, detail).toBe(`ok ${name}`);
    });
  }
});

describe('the cuda-emu addon', () => {
  it('lists an emulated sm_90 cuda:0 and reports the emulated backend', () => {
    const gpu = devices().find((d) => d.name === 'cuda:0');
    expect(gpu?.kind).toBe('cuda');
    expect(gpu?.description).toMatch(/emulated/);
    expect(gpu?.computeCapability).toBe('9.0');
    expect(runtimeInfo().backends).toEqual(['cpu', 'cuda']);
  });
});
