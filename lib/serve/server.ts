/**
 * An OpenAI-compatible HTTP server on an engine of its own over the model (fastify): POST /v1/chat/completions and
 * /v1/completions (server-sent events when `stream`), GET /v1/models, /health, /metrics (Prometheus,
 * prom-client). Bad requests get a 400 with an OpenAI-style error body naming the field; a client
 * that disconnects aborts its request (its cache blocks are freed at the end of the step).
 */
import { randomUUID } from 'node:crypto';
import { basename, resolve } from 'node:path';

import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

import type { Model } from '../model/model.js';
import { isPlainObject } from '../runtime/errors.js';
import type { ChatMessage, Tool } from './dsv32-encoding.js';
import { ContextLengthError, type EngineOptions, QueueFullError } from './engine.js';
import { type GenerateRequest, RequestError, Serving, type StreamChunk, type TokenLogprob } from './generation.js';
import { MissingTokenizerError, type TextTokenizer } from './tokenizer.js';

export interface ServerOptions {
  /** The id clients name in `model`; default: the checkpoint folder's name. */
  modelName?: string;
  /** Engine options; `batchInvariant` defaults to true here. */
  engine?: EngineOptions;
  /** The tokenizer, when already loaded (default: read from the checkpoint folder; null: none). */
  tokenizer?: TextTokenizer | null;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
  }
}

function errorBody(message: string, type: string, param: string | null, code: string | null) {
  return { error: { message, type, param, code } };
}

// ------------------------------------------------------------------ request checking

type Body = Record<string, unknown>;

function bad(message: string, param: string): never {
  throw new HttpError(400, message, 'invalid_request_error', param);
}

function optNumber(b: Body, key: string, lo: number, hi: number, integer = false): number | undefined {
  const v = b[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) bad(`${key} must be a number but received ${JSON.stringify(v)}`, key);
  if (integer && !Number.isInteger(v)) bad(`${key} must be an integer but received ${v}`, key);
  if (v < lo || v > hi) bad(`${key} must be in [${lo}, ${hi}] but received ${v}`, key);
  return v;
}

function optBool(b: Body, key: string): boolean | undefined {
  const v = b[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') bad(`${key} must be a boolean but received ${JSON.stringify(v)}`, key);
  return v;
}

function stopOf(b: Body): string[] | undefined {
  const v = b.stop;
  if (v === undefined || v === null) return undefined;
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.some((s) => typeof s !== 'string' || s === '')) bad('stop must be a non-empty string or an array of up to 4 of them', 'stop');
  if (list.length > 4) bad(`stop has ${list.length} entries; at most 4 are allowed`, 'stop');
  return list as string[];
}

/** The sampling fields shared by both endpoints. */
function samplingOf(b: Body, maxTokensDefault: number | undefined): Partial<GenerateRequest> {
  const n = optNumber(b, 'n', 1, 1, true);
  void n; // only n = 1 is served
  const maxTokens = optNumber(b, 'max_completion_tokens', 1, Number.MAX_SAFE_INTEGER, true) ?? optNumber(b, 'max_tokens', 1, Number.MAX_SAFE_INTEGER, true) ?? maxTokensDefault;
  return {
    maxTokens,
    temperature: optNumber(b, 'temperature', 0, 2),
    topP: optNumber(b, 'top_p', Number.MIN_VALUE, 1),
    topK: optNumber(b, 'top_k', 0, 2 ** 24, true),
    minP: optNumber(b, 'min_p', 0, 1),
    presencePenalty: optNumber(b, 'presence_penalty', -2, 2),
    frequencyPenalty: optNumber(b, 'frequency_penalty', -2, 2),
    repetitionPenalty: optNumber(b, 'repetition_penalty', 0.01, 100),
    seed: optNumber(b, 'seed', -Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, true),
    stop: stopOf(b),
    ignoreEos: optBool(b, 'ignore_eos'),
  };
}

function contentText(v: unknown, param: string): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) {
    return v
      .map((part, i) => {
        if (!part || typeof part !== 'object' || (part as Body).type !== 'text' || typeof (part as Body).text !== 'string')
          bad(`${param}[${i}] must be a {"type": "text", "text": …} part (only text is supported)`, `${param}[${i}]`);
        return (part as Body).text as string;
      })
      .join('');
  }
  return bad(`${param} must be a string, an array of text parts or null`, param);
}

function messagesOf(b: Body): ChatMessage[] {
  const v = b.messages;
  if (!Array.isArray(v) || v.length === 0) bad('messages must be a non-empty array', 'messages');
  return (v as unknown[]).map((m, i) => {
    const p = `messages[${i}]`;
    if (!isPlainObject(m)) bad(`${p} must be an object`, p);
    const o = m as Body;
    const role = o.role;
    if (typeof role !== 'string' || !['system', 'developer', 'user', 'assistant', 'tool'].includes(role))
      bad(`${p}.role must be one of system, developer, user, assistant, tool but received ${JSON.stringify(role)}`, `${p}.role`);
    const out: ChatMessage = { role: role as ChatMessage['role'], content: contentText(o.content, `${p}.content`) };
    if ((role === 'user' || role === 'tool') && out.content === null) bad(`${p}.content is required for role ${role}`, `${p}.content`);
    if (typeof o.reasoning_content === 'string') out.reasoning_content = o.reasoning_content;
    if (o.tool_calls !== undefined && o.tool_calls !== null) {
      if (role !== 'assistant' || !Array.isArray(o.tool_calls)) bad(`${p}.tool_calls must be an array on an assistant message`, `${p}.tool_calls`);
      out.tool_calls = (o.tool_calls as unknown[]).map((c, j) => {
        const f = (c as Body)?.function as Body | undefined;
        if (!f || typeof f.name !== 'string' || typeof f.arguments !== 'string')
          bad(`${p}.tool_calls[${j}].function must have a string name and arguments (a JSON string)`, `${p}.tool_calls[${j}].function`);
        return { id: typeof (c as Body).id === 'string' ? ((c as Body).id as string) : null, type: 'function', function: { name: f!.name as string, arguments: f!.arguments as string } };
      });
    }
    if (typeof o.tool_call_id === 'string') out.tool_call_id = o.tool_call_id;
    return out;
  });
}

function toolsOf(b: Body): Tool[] | undefined {
  const v = b.tools;
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) bad('tools must be an array', 'tools');
  (v as unknown[]).forEach((t, i) => {
    const f = (t as Body)?.function as Body | undefined;
    if ((t as Body)?.type !== 'function' || !f || typeof f.name !== 'string') bad(`tools[${i}] must be {"type": "function", "function": {"name": …}}`, `tools[${i}]`);
  });
  const choice = b.tool_choice;
  if (choice === 'none') return undefined;
  if (choice !== undefined && choice !== null && choice !== 'auto' && choice !== 'required' && typeof choice !== 'object')
    bad("tool_choice must be 'none', 'auto', 'required' or an object naming a function", 'tool_choice');
  return v as Tool[];
}

function thinkingOf(b: Body): boolean {
  const t = b.thinking;
  if (t === true || (t && typeof t === 'object' && (t as Body).type === 'enabled')) return true;
  const kw = b.chat_template_kwargs as Body | undefined;
  if (kw && typeof kw === 'object' && (kw.thinking === true || kw.enable_thinking === true)) return true;
  if (t !== undefined && t !== null && t !== false && !(typeof t === 'object' && (t as Body).type === 'disabled'))
    bad('thinking must be a boolean or {"type": "enabled" | "disabled"}', 'thinking');
  return false;
}

// ------------------------------------------------------------------ the server

export interface Server {
  app: FastifyInstance;
  serving: Serving;
  registry: Registry;
  modelName: string;
  /** Stops taking requests, lets running ones finish, closes the server. */
  drain(): Promise<void>;
}

export function createServer(model: Model, options: ServerOptions = {}): Server {
  const modelName = options.modelName ?? basename(resolve(model.dir));
  const registry = new Registry();
  const prefix = 'deepseek_native_';
  const ttft = new Histogram({ name: `${prefix}time_to_first_token_seconds`, help: 'Time from arrival to the first generated token', registers: [registry], buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] });
  const itl = new Histogram({ name: `${prefix}inter_token_latency_seconds`, help: 'Time between consecutive tokens of a request', registers: [registry], buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5] });
  const generated = new Counter({ name: `${prefix}generation_tokens_total`, help: 'Tokens generated (rate() gives tokens/s)', registers: [registry] });
  const promptTokens = new Counter({ name: `${prefix}prompt_tokens_total`, help: 'Prompt tokens of finished requests', registers: [registry] });
  const preemptions = new Counter({ name: `${prefix}preemptions_total`, help: 'Requests preempted because the KV cache ran out', registers: [registry] });
  const finished = new Counter({ name: `${prefix}requests_finished_total`, help: 'Finished requests by reason', labelNames: ['reason'], registers: [registry] });
  const serving = new Serving(model, {
    batchInvariant: true,
    ...options.engine,
    observer: {
      timeToFirstToken: (s) => ttft.observe(s),
      interTokenLatency: (s) => itl.observe(s),
      tokensGenerated: (n) => generated.inc(n),
      preempted: () => preemptions.inc(),
      finished: (r) => finished.inc({ reason: r }),
      promptProcessed: (n) => promptTokens.inc(n),
    },
  }, options.tokenizer);
  const engine = serving.engine;
  new Gauge({ name: `${prefix}queue_depth`, help: 'Requests waiting for admission', registers: [registry], collect() { this.set(engine.queueDepth); } });
  new Gauge({ name: `${prefix}running_requests`, help: 'Requests prefilling or decoding', registers: [registry], collect() { this.set(engine.running); } });
  new Gauge({ name: `${prefix}kv_blocks_used`, help: 'KV cache blocks (64 tokens) in use', registers: [registry], collect() { this.set(engine.blocksUsed); } });
  new Gauge({ name: `${prefix}kv_blocks_total`, help: 'KV cache blocks (64 tokens) in all', registers: [registry], collect() { this.set(model.totalCacheBlocks); } });

  const app = Fastify({ logger: false, bodyLimit: 32 << 20 });
  let draining = false;
  const created = () => Math.floor(Date.now() / 1000);

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _req, reply) => {
    if (err instanceof HttpError) return reply.code(err.status).send(errorBody(err.message, err.type, err.param, err.code));
    if (err instanceof RequestError) return reply.code(400).send(errorBody(err.message, 'invalid_request_error', err.param, null));
    if (err instanceof ContextLengthError) return reply.code(400).send(errorBody(err.message, 'invalid_request_error', 'messages', 'context_length_exceeded'));
    if (err instanceof MissingTokenizerError) return reply.code(400).send(errorBody(err.message, 'invalid_request_error', null, 'tokenizer_missing'));
    if (err instanceof QueueFullError) return reply.code(429).send(errorBody(err.message, 'rate_limit_error', null, 'queue_full'));
    const status = err.statusCode ?? 500;
    if (status < 500) return reply.code(status).send(errorBody(err.message, 'invalid_request_error', null, err.code ?? null));
    return reply.code(500).send(errorBody(`internal error: ${err.message}`, 'server_error', null, null));
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send(errorBody(`no route ${req.method} ${req.url}`, 'invalid_request_error', null, 'not_found')));

  app.get('/health', async (_req, reply) => (draining ? reply.code(503).send({ status: 'draining' }) : { status: 'ok' }));
  app.get('/metrics', async (_req, reply) => reply.type(registry.contentType).send(await registry.metrics()));
  app.get('/v1/models', async () => ({ object: 'list', data: [{ id: modelName, object: 'model', created: created(), owned_by: 'deepseek-native' }] }));

  function checkModel(b: Body): void {
    if (b.model !== undefined && b.model !== modelName)
      throw new HttpError(404, `The model '${String(b.model)}' does not exist; this server serves '${modelName}'`, 'invalid_request_error', 'model', 'model_not_found');
  }
  function body(req: FastifyRequest): Body {
    if (draining) throw new HttpError(503, 'the server is shutting down', 'server_error');
    const b = req.body;
    if (!b || typeof b !== 'object' || Array.isArray(b)) bad('the request body must be a JSON object', 'body');
    checkModel(b as Body);
    return b as Body;
  }

  /** An AbortSignal that fires when the client goes away before the response is complete. */
  function disconnectSignal(req: FastifyRequest, reply: FastifyReply): AbortController {
    const ac = new AbortController();
    reply.raw.on('close', () => {
      if (!reply.raw.writableFinished) ac.abort(new Error('client disconnected'));
    });
    req.raw.on('aborted', () => ac.abort(new Error('client disconnected')));
    return ac;
  }

  const tokenText = (id: number): string => serving.tokenizer?.decode([id]) ?? String(id);
  const bytesOf = (s: string): number[] => Array.from(Buffer.from(s, 'utf8'));

  function chatLogprobs(lps: TokenLogprob[]) {
    return {
      content: lps.map((lp) => {
        const token = tokenText(lp.id);
        return {
          token,
          logprob: lp.logprob,
          bytes: bytesOf(token),
          top_logprobs: (lp.top ?? []).map((t) => {
            const tt = tokenText(t.id);
            return { token: tt, logprob: t.logprob, bytes: bytesOf(tt) };
          }),
        };
      }),
    };
  }

  function completionLogprobs(lps: TokenLogprob[], startOffset: number) {
    const tokens = lps.map((lp) => tokenText(lp.id));
    let off = startOffset;
    const offsets = tokens.map((t) => {
      const o = off;
      off += t.length;
      return o;
    });
    return {
      tokens,
      token_logprobs: lps.map((lp) => lp.logprob),
      top_logprobs: lps.map((lp) => Object.fromEntries((lp.top ?? []).map((t) => [tokenText(t.id), t.logprob]))),
      text_offset: offsets,
    };
  }

  async function sse(reply: FastifyReply, chunks: AsyncIterable<object>): Promise<void> {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    try {
      for await (const c of chunks) {
        if (res.destroyed) break;
        res.write(`data: ${JSON.stringify(c)}\n\n`);
      }
      if (!res.destroyed) res.write('data: [DONE]\n\n');
    } catch (e) {
      if (!res.destroyed) {
        const err = e as Error;
        const body = err instanceof RequestError ? errorBody(err.message, 'invalid_request_error', err.param, null) : errorBody(err.message, 'server_error', null, null);
        res.write(`data: ${JSON.stringify(body)}\n\n`);
      }
    } finally {
      res.end();
    }
  }

  /** Starts a request: prepared and validated before any response byte goes out. */
  function start(req: GenerateRequest): { first: Promise<IteratorResult<StreamChunk>>; it: AsyncGenerator<StreamChunk, void, undefined> } {
    const it = serving.stream(req);
    return { it, first: it.next() };
  }

  app.post('/v1/chat/completions', async (request, reply) => {
    const b = body(request);
    const messages = messagesOf(b);
    const stream = optBool(b, 'stream') ?? false;
    const logprobs = optBool(b, 'logprobs') ?? false;
    const top = optNumber(b, 'top_logprobs', 0, 20, true);
    if (top !== undefined && !logprobs) bad('top_logprobs needs logprobs: true', 'top_logprobs');
    if (b.response_format !== undefined && b.response_format !== null && (typeof b.response_format !== 'object' || Array.isArray(b.response_format)))
      bad('response_format must be an object', 'response_format');
    const ac = disconnectSignal(request, reply);
    const req: GenerateRequest = {
      messages,
      tools: toolsOf(b),
      responseFormat: b.response_format ?? undefined,
      thinking: thinkingOf(b),
      ...samplingOf(b, undefined),
      logprobs: logprobs ? (top ?? 0) : false,
      signal: ac.signal,
    };
    const id = `chatcmpl-${randomUUID()}`;
    const base = { id, created: created(), model: modelName };
    const { it, first } = start(req);
    const head = await first; // validation errors surface here, before the status line
    async function* all(): AsyncGenerator<StreamChunk> {
      if (!head.done) yield head.value;
      yield* it;
    }
    if (stream) {
      const includeUsage = true;
      let role = false;
      const chunks = (async function* () {
        for await (const c of all()) {
          const delta: Record<string, unknown> = {};
          if (!role) {
            delta.role = 'assistant';
            delta.content = '';
            role = true;
          }
          if (c.reasoning) delta.reasoning_content = c.reasoning;
          if (c.text) delta.content = c.text;
          if (c.toolCalls) delta.tool_calls = c.toolCalls.map((t) => ({ index: t.index, id: t.id, type: t.type, function: t.function }));
          const choice: Record<string, unknown> = { index: 0, delta, logprobs: c.logprobs ? chatLogprobs(c.logprobs) : null, finish_reason: c.finishReason ?? null };
          const out: Record<string, unknown> = { ...base, object: 'chat.completion.chunk', choices: [choice] };
          if (c.usage && includeUsage) out.usage = { prompt_tokens: c.usage.promptTokens, completion_tokens: c.usage.completionTokens, total_tokens: c.usage.totalTokens };
          if (Object.keys(delta).length === 0 && !c.finishReason && !c.logprobs) continue;
          yield out;
        }
      })();
      return sse(reply, chunks);
    }
    let text = '';
    let reasoning = '';
    const calls: StreamChunk['toolCalls'] = [];
    const lps: TokenLogprob[] = [];
    let finish: StreamChunk['finishReason'] = 'length';
    let usage = { promptTokens: 0, completionTokens: 0, totalTokens: 0 };
    for await (const c of all()) {
      text += c.text;
      if (c.reasoning) reasoning += c.reasoning;
      if (c.toolCalls) calls.push(...c.toolCalls);
      if (c.logprobs) lps.push(...c.logprobs);
      if (c.finishReason) finish = c.finishReason;
      if (c.usage) usage = c.usage;
    }
    const message: Record<string, unknown> = { role: 'assistant', content: calls.length && !text ? null : text };
    if (req.thinking) message.reasoning_content = reasoning;
    if (calls.length) message.tool_calls = calls.map((t) => ({ id: t.id, type: t.type, function: t.function }));
    return {
      ...base,
      object: 'chat.completion',
      choices: [{ index: 0, message, logprobs: logprobs ? chatLogprobs(lps) : null, finish_reason: finish }],
      usage: { prompt_tokens: usage.promptTokens, completion_tokens: usage.completionTokens, total_tokens: usage.totalTokens },
    };
  });

  app.post('/v1/completions', async (request, reply) => {
    const b = body(request);
    let prompt: string | number[];
    const p = b.prompt;
    if (typeof p === 'string') prompt = p;
    else if (Array.isArray(p) && p.length > 0 && p.every((x) => Number.isInteger(x))) prompt = p as number[];
    else if (Array.isArray(p) && p.length === 1 && typeof p[0] === 'string') prompt = p[0];
    else return bad('prompt must be a string or an array of token ids (one prompt per request)', 'prompt');
    const stream = optBool(b, 'stream') ?? false;
    const lpN = optNumber(b, 'logprobs', 0, 20, true);
    if (b.echo === true) bad('echo is not supported', 'echo');
    const ac = disconnectSignal(request, reply);
    const req: GenerateRequest = { prompt, ...samplingOf(b, 16), logprobs: lpN === undefined ? false : lpN, signal: ac.signal };
    const id = `cmpl-${randomUUID()}`;
    const base = { id, created: created(), model: modelName, object: 'text_completion' };
    const { it, first } = start(req);
    const head = await first;
    async function* all(): AsyncGenerator<StreamChunk> {
      if (!head.done) yield head.value;
      yield* it;
    }
    if (stream) {
      let offset = 0;
      const chunks = (async function* () {
        for await (const c of all()) {
          if (!c.text && !c.finishReason && !c.logprobs) continue;
          const out: Record<string, unknown> = {
            ...base,
            choices: [{ index: 0, text: c.text, logprobs: c.logprobs && lpN !== undefined ? completionLogprobs(c.logprobs, offset) : null, finish_reason: c.finishReason ?? null }],
          };
          offset += c.text.length;
          if (c.usage) out.usage = { prompt_tokens: c.usage.promptTokens, completion_tokens: c.usage.completionTokens, total_tokens: c.usage.totalTokens };
          yield out;
        }
      })();
      return sse(reply, chunks);
    }
    let text = '';
    const lps: TokenLogprob[] = [];
    let finish: StreamChunk['finishReason'] = 'length';
    let usage = { promptTokens: 0, completionTokens: 0, totalTokens: 0 };
    for await (const c of all()) {
      text += c.text;
      if (c.logprobs) lps.push(...c.logprobs);
      if (c.finishReason) finish = c.finishReason;
      if (c.usage) usage = c.usage;
    }
    return {
      ...base,
      choices: [{ index: 0, text, logprobs: lpN !== undefined ? completionLogprobs(lps, 0) : null, finish_reason: finish }],
      usage: { prompt_tokens: usage.promptTokens, completion_tokens: usage.completionTokens, total_tokens: usage.totalTokens },
    };
  });

  return {
    app,
    serving,
    registry,
    modelName,
    async drain() {
      draining = true;
      await engine.close(false); // running and queued requests finish
      await app.close();
    },
  };
}
