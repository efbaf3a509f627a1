// The OpenAI-compatible server on loopback, driven by the official `openai` client, over a make-tiny
// checkpoint carrying the real DeepSeek-V3 tokenizer files (random weights: real tokens, no meaning).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { makeTinyCheckpoint } from '../../lib/tools/make-tiny/writer.js';
import { loadModel, type Model } from '../../lib/model/model.js';
import * as ops from '../../lib/ops/index.js';
import { encodeMessages } from '../../lib/serve/dsv32-encoding.js';
import { createServer, type Server } from '../../lib/serve/server.js';
import { TextTokenizer } from '../../lib/serve/tokenizer.js';

const DIMS = { num_hidden_layers: 2, num_nextn_predict_layers: 0, max_position_embeddings: 1024 };
const CKPT = join(tmpdir(), 'deepseek-native-test-serve-tiny-v2');

let model: Model;
let tk: TextTokenizer;
let server: Server;
let client: OpenAI;
let base: string;

const TOOLS = [
  {
    type: 'function' as const,
    function: {
      name: 'get_weather',
      description: 'Get the weather for a city',
      parameters: { type: 'object', properties: { location: { type: 'string' }, days: { type: 'integer' } }, required: ['location'] },
    },
  },
];

beforeAll(async () => {
  if (!existsSync(join(CKPT, 'tokenizer.json'))) await makeTinyCheckpoint(CKPT, { preset: 'tiny', dims: DIMS, seed: 3, tokenizer: true });
  model = await loadModel(CKPT, { maxSequences: 40, maxContext: 512 });
  tk = TextTokenizer.load(CKPT)!;
  server = createServer(model, { tokenizer: tk, modelName: 'tiny' });
  base = await server.app.listen({ port: 0, host: '127.0.0.1' });
  client = new OpenAI({ apiKey: 'none', baseURL: `${base}/v1`, maxRetries: 0 });
});

afterAll(async () => {
  await server?.drain();
  await model?.dispose();
  ops.setBatchInvariant(false);
});

const chat = (content: string) => [{ role: 'user' as const, content }];

describe('OpenAI-compatible server', () => {
  it('lists the model and reports health', async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(['tiny']);
    expect(await (await fetch(`${base}/health`)).json()).toEqual({ status: 'ok' });
  });

  it('answers a chat completion whose usage matches the tokenizer', async () => {
    const r = await client.chat.completions.create({ model: 'tiny', messages: chat('Hello there!'), max_tokens: 8, temperature: 0 });
    const promptText = encodeMessages(chat('Hello there!'), { thinkingMode: 'chat' });
    expect(r.usage!.prompt_tokens).toBe(tk.encode(promptText).length);
    expect(r.usage!.completion_tokens).toBeGreaterThan(0);
    expect(r.usage!.completion_tokens).toBeLessThanOrEqual(8);
    expect(r.usage!.total_tokens).toBe(r.usage!.prompt_tokens + r.usage!.completion_tokens);
    expect(typeof r.choices[0].message.content).toBe('string');
    expect(['length', 'stop']).toContain(r.choices[0].finish_reason);
  });

  it('streams the same text as the non-streamed answer, with usage on the last chunk', async () => {
    const params = { model: 'tiny', messages: chat('Tell me a story.'), max_tokens: 10, temperature: 0 };
    const whole = await client.chat.completions.create(params);
    const stream = await client.chat.completions.create({ ...params, stream: true });
    let text = '';
    let last;
    for await (const c of stream) {
      text += c.choices[0]?.delta?.content ?? '';
      last = c;
    }
    expect(text).toBe(whole.choices[0].message.content);
    expect(last!.choices[0].finish_reason).toBe(whole.choices[0].finish_reason);
    expect(last!.usage).toEqual(whole.usage);
  });

  it('stops at a stop string, leaving it out', async () => {
    const params = { model: 'tiny', messages: chat('Count with me.'), max_tokens: 24, temperature: 0, ignore_eos: true } as OpenAI.ChatCompletionCreateParamsNonStreaming;
    const full = (await client.chat.completions.create(params)).choices[0].message.content!;
    expect(full.length).toBeGreaterThan(4);
    const stop = full.slice(3, 5);
    const cut = await client.chat.completions.create({ ...params, stop });
    expect(cut.choices[0].finish_reason).toBe('stop');
    expect(cut.choices[0].message.content).toBe(full.slice(0, full.indexOf(stop)));
  });

  it('a seed makes sampling reproducible', async () => {
    const params = { model: 'tiny', messages: chat('Pick a word.'), max_tokens: 8, temperature: 1, seed: 1234, ignore_eos: true } as OpenAI.ChatCompletionCreateParamsNonStreaming;
    const a = await client.chat.completions.create(params);
    const b = await client.chat.completions.create(params);
    const c = await client.chat.completions.create({ ...params, seed: 99 });
    expect(a.choices[0].message.content).toBe(b.choices[0].message.content);
    expect(c.choices[0].message.content).not.toBe(a.choices[0].message.content);
  });

  it('puts tools on the system message as the V3.2 encoding does (prompt token count matches)', async () => {
    const messages = [{ role: 'system' as const, content: 'You are helpful.' }, { role: 'user' as const, content: 'Weather in Paris?' }];
    const r = await client.chat.completions.create({ model: 'tiny', messages, tools: TOOLS, max_tokens: 2, temperature: 0 });
    const expected = encodeMessages([{ ...messages[0], tools: TOOLS }, messages[1]], { thinkingMode: 'chat' });
    expect(server.serving.renderChat(messages, { tools: TOOLS })).toBe(expected);
    expect(expected).toContain('{"name": "get_weather", "description": "Get the weather for a city", "parameters": {"type": "object"');
    expect(r.usage!.prompt_tokens).toBe(tk.encode(expected).length);
  });

  it('returns logprobs of the chosen tokens', async () => {
    const r = await client.chat.completions.create({ model: 'tiny', messages: chat('Hi'), max_tokens: 3, temperature: 0, logprobs: true, top_logprobs: 2, ignore_eos: true } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    const lp = r.choices[0].logprobs!.content!;
    expect(lp.length).toBe(3);
    for (const t of lp) {
      expect(t.logprob).toBeLessThanOrEqual(0);
      expect(t.top_logprobs.length).toBe(2);
      expect(t.top_logprobs[0].logprob).toBeCloseTo(t.logprob, 5); // greedy: the chosen one is the top one
    }
    expect(lp.map((t) => t.token).join('')).toBe(r.choices[0].message.content);
  });

  it('serves plain completions, streamed and not', async () => {
    const r = await client.completions.create({ model: 'tiny', prompt: 'The capital of France is', max_tokens: 5, temperature: 0, ignore_eos: true } as OpenAI.CompletionCreateParamsNonStreaming);
    expect(r.usage!.prompt_tokens).toBe(tk.encode('The capital of France is').length);
    expect(r.usage!.completion_tokens).toBe(5);
    const s = await client.completions.create({ model: 'tiny', prompt: 'The capital of France is', max_tokens: 5, temperature: 0, ignore_eos: true, stream: true } as OpenAI.CompletionCreateParamsStreaming);
    let text = '';
    for await (const c of s) text += c.choices[0]?.text ?? '';
    expect(text).toBe(r.choices[0].text);
  });

  it('32 concurrent streamed requests complete and equal the same requests alone', async () => {
    // Every one of 32 is checked alone in engine.test.ts (tiny vocabulary); here 8 of them, through HTTP.
    const N = 32;
    const params = (i: number) => ({ model: 'tiny', messages: chat(`Request number ${i}: ${'word '.repeat(i % 9)}`), max_tokens: 4, temperature: 0, ignore_eos: true }) as OpenAI.ChatCompletionCreateParamsNonStreaming;
    const streamed = await Promise.all(
      Array.from({ length: N }, async (_, i) => {
        const s = await client.chat.completions.create({ ...params(i), stream: true });
        let text = '';
        for await (const c of s) text += c.choices[0]?.delta?.content ?? '';
        return text;
      }),
    );
    for (let i = 0; i < N; i += 4) {
      const alone = await client.chat.completions.create(params(i));
      expect(streamed[i], `request ${i}`).toBe(alone.choices[0].message.content);
    }
    expect(model.freeCacheBlocks).toBe(model.totalCacheBlocks);
  });

  it('a client that disconnects mid-stream aborts its request and frees its blocks', async () => {
    const s = await client.chat.completions.create({ model: 'tiny', messages: chat('Go on forever.'), max_tokens: 200, temperature: 0, ignore_eos: true, stream: true } as OpenAI.ChatCompletionCreateParamsStreaming);
    let n = 0;
    for await (const _ of s) if (++n === 3) break; // breaking the loop aborts the HTTP request
    for (let i = 0; i < 100 && (server.serving.engine.running > 0 || model.freeCacheBlocks !== model.totalCacheBlocks); ++i) await new Promise((r) => setTimeout(r, 20));
    expect(server.serving.engine.running).toBe(0);
    expect(model.freeCacheBlocks).toBe(model.totalCacheBlocks);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/deepseek_native_requests_finished_total\{reason="abort"\} [1-9]/);
    expect(metrics).toMatch(/deepseek_native_generation_tokens_total [1-9]/);
    expect(metrics).toContain('deepseek_native_kv_blocks_used 0');
    expect(metrics).toContain('deepseek_native_time_to_first_token_seconds_count');
  });

  it('bad requests get a 4xx with an OpenAI-style error naming the field, and serving goes on', async () => {
    const post = async (path: string, body: string) => {
      const r = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      return { status: r.status, body: (await r.json()) as { error: { message: string; param: string | null; type: string } } };
    };
    const malformed = await post('/v1/chat/completions', '{"model": "tiny", "messages": [');
    expect(malformed.status).toBe(400);
    expect(malformed.body.error.message).toMatch(/JSON/i);
    const wrongType = await post('/v1/chat/completions', JSON.stringify({ model: 'tiny', messages: chat('x'), temperature: 'hot' }));
    expect(wrongType.status).toBe(400);
    expect(wrongType.body.error).toMatchObject({ param: 'temperature', type: 'invalid_request_error' });
    expect(wrongType.body.error.message).toBe('temperature must be a number but received "hot"');
    const unknown = await post('/v1/chat/completions', JSON.stringify({ model: 'gpt-9', messages: chat('x') }));
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.message).toContain("The model 'gpt-9' does not exist");
    const negative = await post('/v1/chat/completions', JSON.stringify({ model: 'tiny', messages: chat('x'), max_tokens: -5 }));
    expect(negative.status).toBe(400);
    expect(negative.body.error.param).toBe('max_tokens');
    const badRole = await post('/v1/chat/completions', JSON.stringify({ model: 'tiny', messages: [{ role: 'wizard', content: 'x' }] }));
    expect(badRole.body.error.param).toBe('messages[0].role');
    const huge = await post('/v1/chat/completions', JSON.stringify({ model: 'tiny', messages: chat('word '.repeat(1000)) }));
    expect(huge.status).toBe(400);
    expect(huge.body.error.message).toMatch(/tokens but the context limit is 512/);
    // The official client surfaces these as APIError with the status.
    await expect(client.chat.completions.create({ model: 'tiny', messages: chat('x'), max_tokens: -1 })).rejects.toMatchObject({ status: 400 });
    const ok = await client.chat.completions.create({ model: 'tiny', messages: chat('still there?'), max_tokens: 2, temperature: 0 });
    expect(ok.choices.length).toBe(1);
  });
});

describe('tool calls in the answer', () => {
  let scripted: Server;
  let url: string;
  const CALL = '\n\n<｜DSML｜function_calls>\n<｜DSML｜invoke name="get_weather">\n<｜DSML｜parameter name="location" string="true">Paris</｜DSML｜parameter>\n<｜DSML｜parameter name="days" string="false">3</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜function_calls>';
  beforeAll(async () => {
    // The model's output is scripted (forced decoding) so the DSML parse path runs end to end.
    const forced = [...tk.encode(`Let me check.${CALL}`), tk.eosId!];
    scripted = createServer(model, { tokenizer: tk, modelName: 'tiny', engine: { script: (_req, n) => forced[n] } });
    url = await scripted.app.listen({ port: 0, host: '127.0.0.1' });
  });
  afterAll(async () => {
    await scripted?.drain();
  });

  it('a DSML block comes back as tool_calls, whole and streamed', async () => {
    const c = new OpenAI({ apiKey: 'none', baseURL: `${url}/v1`, maxRetries: 0 });
    const params = { model: 'tiny', messages: chat('Weather in Paris for 3 days?'), tools: TOOLS, temperature: 0 };
    const r = await c.chat.completions.create(params);
    const m = r.choices[0].message;
    expect(r.choices[0].finish_reason).toBe('tool_calls');
    expect(m.content).toBe('Let me check.');
    expect(m.tool_calls!.length).toBe(1);
    const call = m.tool_calls![0] as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(call.function).toEqual({ name: 'get_weather', arguments: '{"location": "Paris", "days": 3}' });
    expect(JSON.parse(call.function.arguments)).toEqual({ location: 'Paris', days: 3 });
    const s = await c.chat.completions.create({ ...params, stream: true });
    let text = '';
    const calls: OpenAI.ChatCompletionChunk.Choice.Delta.ToolCall[] = [];
    let finish;
    for await (const ch of s) {
      text += ch.choices[0]?.delta?.content ?? '';
      calls.push(...(ch.choices[0]?.delta?.tool_calls ?? []));
      finish = ch.choices[0]?.finish_reason ?? finish;
    }
    expect(text).toBe('Let me check.');
    expect(calls.map((t) => t.function)).toEqual([{ name: 'get_weather', arguments: '{"location": "Paris", "days": 3}' }]);
    expect(finish).toBe('tool_calls');
  });
});

describe('deepseek-native serve (the command)', () => {
  it('serves on loopback and drains a running request on SIGTERM', async () => {
    const cli = resolve(import.meta.dirname, '../../dist/lib/cli.js');
    if (!existsSync(cli)) throw new Error(`${cli} is missing: run npm run build:ts`);
    const child = spawn(process.execPath, [cli, 'serve', '--model', CKPT, '--port', '0', '--max-context', '512'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    const address = await new Promise<string>((res, rej) => {
      child.stderr.on('data', (d: Buffer) => {
        err += d.toString();
        const m = /on (http:\/\/127\.0\.0\.1:\d+)/.exec(err);
        if (m) res(m[1]);
      });
      child.on('exit', (code) => rej(new Error(`serve exited with ${code}: ${err}`)));
    });
    const c = new OpenAI({ apiKey: 'none', baseURL: `${address}/v1`, maxRetries: 0 });
    const s = await c.chat.completions.create({ model: 'deepseek-native-test-serve-tiny-v2', messages: chat('Hi'), max_tokens: 12, temperature: 0, ignore_eos: true, stream: true } as OpenAI.ChatCompletionCreateParamsStreaming);
    const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
    let chunks = 0;
    let finish;
    for await (const ch of s) {
      if (++chunks === 2) child.kill('SIGTERM');
      finish = ch.choices[0]?.finish_reason ?? finish;
    }
    expect(finish).toBe('length'); // the running request ran to its end
    expect(await exited).toBe(0);
    expect(err).toContain('SIGTERM: draining 1 running');
  });
});
