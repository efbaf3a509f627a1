/**
 * The llama.cpp peer of the end-to-end benchmark, set up on demand (never a dependency of the
 * package): node-llama-cpp installed with npm into bench/.cache/peers/ (its prebuilt CPU binaries
 * only), the llama.cpp headers taken from the git bundle its package carries (llama/gitRelease.bundle,
 * the commit those binaries were built from), bench/peers/llama-driver.c compiled with the system
 * cc against them, and both drivers (the C one and bench/peers/node-llama-driver.mjs) spoken to
 * over a pipe, one JSON line per command.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface, type Interface } from 'node:readline';

import { packageRoot } from '../../lib/runtime/native.js';

export const NODE_LLAMA_CPP_VERSION = '3.22.1';

export interface LlamaPeer {
  /** node-llama-cpp's package folder (for node-llama-driver.mjs). */
  packageDir: string;
  /** The prebuilt CPU libraries (libllama, libggml*, the CPU variants ggml picks from at load). */
  libDir: string;
  /** The compiled C driver. */
  driver: string;
  /** The llama.cpp commit of the bundle the headers came from. */
  commit: string;
}

/** Why the peer could not be set up, with what to do about it. */
export class PeerUnavailableError extends Error {
  override name = 'PeerUnavailableError';
}

function run(cmd: string, args: string[], what: string, cwd?: string): string {
  try {
    return execFileSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    const detail = (err.stderr || err.message).trim().split('\n').slice(-3).join(' | ');
    throw new PeerUnavailableError(`${what} failed: \`${cmd} ${args.join(' ')}\`: ${detail}`);
  }
}

/**
 * Installs node-llama-cpp (once) into `cacheDir`, extracts the headers and compiles the C driver;
 * throws PeerUnavailableError saying which step failed (no network, no cc, no prebuilt binaries for
 * this platform…).
 */
export function setUpLlamaPeer(cacheDir = join(packageRoot(), 'bench', '.cache', 'peers')): LlamaPeer {
  const platform = `${process.platform}-${process.arch}`;
  const packageDir = join(cacheDir, 'node_modules', 'node-llama-cpp');
  const binaries = join(cacheDir, 'node_modules', '@node-llama-cpp', platform);
  const installed = (() => {
    try {
      return JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')).version === NODE_LLAMA_CPP_VERSION && existsSync(binaries);
    } catch {
      return false;
    }
  })();
  if (!installed) {
    mkdirSync(cacheDir, { recursive: true });
    console.log(`peers: installing node-llama-cpp@${NODE_LLAMA_CPP_VERSION} and its ${platform} CPU binaries into ${cacheDir} (once)…`);
    // Scripts off (its postinstall would look for a GPU build); optional packages off but this
    // platform's CPU binaries (the CUDA and Vulkan ones are 600 MB we do not use).
    run('npm', ['install', '--no-save', '--prefix', cacheDir, '--omit=optional', '--ignore-scripts', '--no-audit', '--no-fund',
      `node-llama-cpp@${NODE_LLAMA_CPP_VERSION}`, `@node-llama-cpp/${platform}@${NODE_LLAMA_CPP_VERSION}`], 'installing node-llama-cpp');
  }
  const libDir = join(binaries, 'bins', platform);
  if (!existsSync(libDir)) throw new PeerUnavailableError(`node-llama-cpp has no prebuilt CPU binaries for ${platform} (${libDir} missing)`);
  const lib = (prefix: string) => {
    const f = readdirSync(libDir).find((n) => n.startsWith(prefix) && n.endsWith('.so'));
    if (!f) throw new PeerUnavailableError(`no ${prefix}*.so in ${libDir}`);
    return f;
  };
  const libs = [lib('libllama.'), lib('libggml.'), lib('libggml-base')];

  // The headers of the commit the binaries were built from: the bundle holds that one commit.
  const bundle = join(packageDir, 'llama', 'gitRelease.bundle');
  const src = join(cacheDir, 'llama.cpp');
  if (!existsSync(join(src, 'include', 'llama.h'))) {
    if (!existsSync(bundle)) throw new PeerUnavailableError(`${bundle} missing: node-llama-cpp ${NODE_LLAMA_CPP_VERSION} should carry llama.cpp's source as a git bundle`);
    rmSync(src, { recursive: true, force: true });
    run('git', ['clone', '--quiet', '--no-checkout', bundle, src], 'cloning the llama.cpp bundle');
    run('git', ['checkout', '--quiet', 'HEAD', '--', 'include', 'ggml/include'], 'extracting the llama.cpp headers', src);
  }
  const commit = run('git', ['rev-parse', 'HEAD'], 'reading the llama.cpp commit', src).trim();

  const driver = join(cacheDir, 'llama-driver');
  const source = join(packageRoot(), 'bench', 'peers', 'llama-driver.c');
  run('cc', ['-O2', '-o', driver, source, '-I', join(src, 'include'), '-I', join(src, 'ggml', 'include'), '-L', libDir,
    ...libs.map((l) => `-l:${l}`), `-Wl,-rpath,${libDir}`], 'compiling bench/peers/llama-driver.c (needs a C compiler: apt-get install -y gcc)');
  return { packageDir, libDir, driver, commit };
}

/** A driver process: one command a line in, one JSON object a line out. */
export class DriverProcess {
  readonly name: string;
  readonly #child: ChildProcess;
  readonly #lines: Interface;
  readonly #pending: { resolve: (o: Record<string, unknown>) => void; reject: (e: Error) => void }[] = [];
  #exited: string | undefined;
  #stderr = '';

  private constructor(name: string, cmd: string, args: string[]) {
    this.name = name;
    this.#child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#child.stderr!.on('data', (d: Buffer) => {
      this.#stderr = (this.#stderr + d.toString()).slice(-2000);
    });
    this.#lines = createInterface({ input: this.#child.stdout! });
    this.#lines.on('line', (line) => {
      const w = this.#pending.shift();
      if (!w) return;
      let o: Record<string, unknown>;
      try {
        o = JSON.parse(line);
      } catch {
        return w.reject(new Error(`${this.name}: not a JSON line: ${line.slice(0, 200)}`));
      }
      if (typeof o.error === 'string') w.reject(new Error(`${this.name}: ${o.error}${this.#stderr ? ` (stderr: ${this.#stderr.trim()})` : ''}`));
      else w.resolve(o);
    });
    this.#child.on('exit', (code, signal) => {
      this.#exited = `${this.name} exited (${signal ?? `code ${code}`})${this.#stderr ? `: ${this.#stderr.trim()}` : ''}`;
      for (const w of this.#pending.splice(0)) w.reject(new Error(this.#exited));
    });
    this.#child.on('error', (e) => {
      this.#exited = `${this.name}: ${e.message}`;
      for (const w of this.#pending.splice(0)) w.reject(new Error(this.#exited));
    });
  }

  #reply(): Promise<Record<string, unknown>> {
    if (this.#exited) return Promise.reject(new Error(this.#exited));
    return new Promise((resolve, reject) => this.#pending.push({ resolve, reject }));
  }

  /** Starts `cmd args` and waits for its {"ready": true, …} line, which it returns. */
  static async start(name: string, cmd: string, args: string[]): Promise<{ driver: DriverProcess; ready: Record<string, unknown> }> {
    const driver = new DriverProcess(name, cmd, args);
    try {
      return { driver, ready: await driver.#reply() };
    } catch (e) {
      driver.dispose();
      throw e;
    }
  }

  /** Sends one command line; resolves with its JSON reply, rejects with the driver's error. */
  send(command: string): Promise<Record<string, unknown>> {
    const reply = this.#reply();
    this.#child.stdin!.write(command + '\n');
    return reply;
  }

  dispose(): void {
    this.#child.removeAllListeners('exit');
    this.#child.stdin!.end();
    this.#child.kill();
  }
}
