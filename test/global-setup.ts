/**
 * Runs once before any test file (vitest globalSetup, in the main process): builds what the suites
 * need and is missing — the CPU addon, dist/, the prebuilt addons that the packaging suite packs and
 * the CUDA build when nvcc is present (scripts/ensure-built.mjs --for-tests). No test file builds,
 * so none blocks its worker, changes the tree mid-run or depends on another file having run.
 */
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';

export default function setup(): void {
  const root = resolve(import.meta.dirname, '..');
  execFileSync(process.execPath, [resolve(root, 'scripts', 'ensure-built.mjs'), '--for-tests'], { cwd: root, stdio: 'inherit' });
}
