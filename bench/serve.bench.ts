/**
 * `npm run bench -- serve`: N concurrent streaming clients (1, 8, 32) against the OpenAI-compatible
 * server over loopback, on the '1b' synthetic model with the real DeepSeek-V3 tokenizer (written once
 * to bench/.cache/tiny-1b-tokenizer): requests/s, output tokens/s, time to first token and
 * inter-token latency (median, p99), and the engine's tokens/s against the model's decode roofline at
 * that batch size (bytes one decode step reads ÷ the read bandwidth measured in the same run).
 * Batch-invariant kernels are on, as in `serve`; one more run with them off at 8 clients gives their cost.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { loadModel } from '../lib/index.js';
import { makeTinyCheckpoint } from '../lib/tools/make-tiny/writer.js';
import { setBatchInvariant } from '../lib/ops/gemm.js';
import { packageRoot } from '../lib/runtime/native.js';
import { createServer } from '../lib/serve/server.js';
import type { BenchResult } from './harness.js';
import { decodeBytesPerStep } from './model.bench.js';
import type { Roofline } from './roofline.js';

const MAX_TOKENS = 16;

function quantile(a: number[], q: number): number {
  if (a.length === 0) return NaN;
  const s = [...a].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

interface ClientStats {
  ttft: number;
  itl: number[];
  tokens: number;
}

/** One streamed chat request; times its chunks. */
async function streamOne(base: string, i: number): Promise<ClientStats> {
  const t0 = performance.now();
  const res = await fetch(`${base}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      messages: [{ role: 'user', content: `Client ${i}: write a short story about the sea, please.` }],
      max_tokens: MAX_TOKENS,
      temperature: 0,
      ignore_eos: true,
      stream: true,
    }),
  });
  if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  const decoder = new TextDecoder();
  let buf = '';
  let last = 0;
  let ttft = NaN;
  const itl: number[] = [];
  let tokens = 0;
  for await (const part of res.body) {
    buf += decoder.decode(part as Uint8Array, { stream: true });
    let at;
    while ((at = buf.indexOf('\n\n')) >= 0) {
      const line = buf.slice(0, at);
      buf = buf.slice(at + 2);
      if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
      const chunk = JSON.parse(line.slice(6)) as { usage?: { completion_tokens: number }; choices: { delta: { content?: string } }[] };
      const now = performance.now();
      if (chunk.choices[0]?.delta?.content) {
        if (Number.isNaN(ttft)) ttft = now - t0;
        else itl.push(now - last);
        last = now;
      }
      if (chunk.usage) tokens = chunk.usage.completion_tokens;
    }
  }
  return { ttft, itl, tokens };
}

async function ensureCheckpoint(): Promise<string> {
  const dir = join(packageRoot(), 'bench', '.cache', 'tiny-1b-tokenizer');
  if (!existsSync(join(dir, 'tokenizer.json'))) {
    mkdirSync(dir, { recursive: true });
    console.log(`writing the '1b' synthetic checkpoint with the DeepSeek-V3 tokenizer to ${dir} (once)…`);
    await makeTinyCheckpoint(dir, { preset: '1b', seed: 1, tokenizer: true, dims: { num_nextn_predict_layers: 0 } });
  }
  return dir;
}

export interface ServeRow {
  clients: number;
  invariant: boolean;
  requestsPerS: number;
  tokensPerS: number;
  ttftP50: number;
  ttftP99: number;
  itlP50: number;
  itlP99: number;
  rooflineTokensPerS: number;
}

export async function serveBenchmarks(roofline: Roofline, device: string): Promise<{ results: BenchResult[]; rows: ServeRow[] }> {
  const dir = await ensureCheckpoint();
  const model = await loadModel(dir, { device, maxSequences: 32, maxContext: 256 });
  const server = createServer(model, { engine: { batchInvariant: true, maxBatchTokens: 512, prefillChunk: 128 } });
  const base = await server.app.listen({ port: 0, host: '127.0.0.1' });
  const rows: ServeRow[] = [];
  const results: BenchResult[] = [];
  try {
    await streamOne(base, 0); // warm-up
    for (const [clients, invariant] of [[1, true], [8, true], [32, true], [8, false]] as [number, boolean][]) {
      setBatchInvariant(invariant);
      const t0 = performance.now();
      const stats = await Promise.all(Array.from({ length: clients }, (_, i) => streamOne(base, i)));
      const seconds = (performance.now() - t0) / 1e3;
      const tokens = stats.reduce((n, s) => n + s.tokens, 0);
      const ttfts = stats.map((s) => s.ttft);
      const itls = stats.flatMap((s) => s.itl);
      const context = 40 + MAX_TOKENS / 2;
      const rooflineTokensPerS = ((roofline.cpuReadGBps * 1e9) / decodeBytesPerStep(model.config, clients, context)) * clients;
      const row: ServeRow = {
        clients,
        invariant,
        requestsPerS: clients / seconds,
        tokensPerS: tokens / seconds,
        ttftP50: quantile(ttfts, 0.5),
        ttftP99: quantile(ttfts, 0.99),
        itlP50: quantile(itls, 0.5),
        itlP99: quantile(itls, 0.99),
        rooflineTokensPerS,
      };
      rows.push(row);
      // Decode speed proper: the inter-token latency is one engine step of the whole batch.
      const decodeTokensPerS = clients / (row.itlP50 / 1e3);
      results.push({
        name: `serve ${clients} client${clients > 1 ? 's' : ''} decode${invariant ? '' : ' (batch-invariant off)'}`,
        shape: `1b synthetic + DeepSeek-V3 tokenizer, ${MAX_TOKENS} tokens each`,
        device,
        median: decodeTokensPerS,
        unit: 'tokens/s',
        medianMs: row.itlP50,
        samples: itls.length,
        roofline: rooflineTokensPerS,
        ratio: decodeTokensPerS / rooflineTokensPerS,
      });
    }
  } finally {
    setBatchInvariant(true);
    await server.drain();
    await model.dispose();
    setBatchInvariant(false);
  }
  return { results, rows };
}

export function formatServeTable(rows: ServeRow[]): string {
  const head = ['clients', 'batch-invariant', 'requests/s', 'output tokens/s', 'TTFT p50 ms', 'TTFT p99 ms', 'ITL p50 ms', 'ITL p99 ms', 'decode roofline tokens/s'];
  const body = rows.map((r) => [
    String(r.clients),
    r.invariant ? 'on' : 'off',
    r.requestsPerS.toFixed(2),
    r.tokensPerS.toFixed(1),
    r.ttftP50.toFixed(0),
    r.ttftP99.toFixed(0),
    r.itlP50.toFixed(1),
    r.itlP99.toFixed(1),
    r.rooflineTokensPerS.toFixed(0),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ');
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}
