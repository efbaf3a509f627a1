/**
 * `model.generate(request)` / `model.stream(request)`: a prompt (text or ids) or a conversation in,
 * text out, through the model's engine. The chat format follows the checkpoint's model type:
 * `deepseek_v32` uses DeepSeek-V3.2's own encoding (and its output is parsed back into content,
 * reasoning and tool calls), `deepseek_v3` renders `tokenizer_config.json`'s chat template with
 * @huggingface/jinja.
 */
import { Template } from '@huggingface/jinja';

import type { Model } from '../model/model.js';
import { type ChatMessage, CompletionParser, encodeMessages, type ParseEvent, type ThinkingMode, type Tool } from './dsv32-encoding.js';
import { DEFAULT_SAMPLING, Engine, type EngineOptions, type EngineResult, type FinishReason, type SamplingParams, type TokenEvent } from './engine.js';
import { IncrementalDecoder, MissingTokenizerError, TextTokenizer } from './tokenizer.js';

/** A bad request: `param` names the field (as the OpenAI API does). */
export class RequestError extends Error {
  override name = 'RequestError';
  constructor(message: string, readonly param: string | null = null) {
    super(message);
  }
}

export interface GenerateRequest {
  /** Text (tokenized as is, no BOS added) or token ids. */
  prompt?: string | readonly number[];
  /** A conversation, encoded with the checkpoint's chat format. */
  messages?: readonly ChatMessage[];
  /** OpenAI-style tools (chat only): rendered into the leading system message. */
  tools?: readonly Tool[];
  /** OpenAI `response_format` (chat only): rendered into the leading system message. */
  responseFormat?: unknown;
  /** DeepSeek-V3.2 thinking mode: the answer starts with its reasoning. */
  thinking?: boolean;
  /** Most tokens to generate; default: up to the context limit. */
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  minP?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  repetitionPenalty?: number;
  /** Seeds sampling: the same seed and request give the same tokens. Default 0. */
  seed?: number;
  /** Strings (not included in the output) and token ids that end generation. */
  stop?: string | readonly (string | number)[];
  /** true: the chosen ids' log-probabilities; N: and the N most likely at each step. */
  logprobs?: boolean | number;
  /** Keep generating past the EOS token. */
  ignoreEos?: boolean;
  signal?: AbortSignal;
}

export interface TokenLogprob {
  id: number;
  logprob: number;
  top?: { id: number; logprob: number }[];
}

export interface ToolCallOut {
  index: number;
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export interface Usage {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
}

export interface StreamChunk {
  /** New text (for a conversation: new answer content). */
  text: string;
  /** Ids generated in this step (stop ids excluded). */
  tokens: number[];
  /** New reasoning text (thinking mode). */
  reasoning?: string;
  /** Tool calls completed in this chunk. */
  toolCalls?: ToolCallOut[];
  logprobs?: TokenLogprob[];
  /** On the last chunk. */
  finishReason?: FinishReason | 'tool_calls';
  usage?: Usage;
}

export interface GenerateResult {
  text: string;
  tokens: number[];
  reasoning: string;
  toolCalls: ToolCallOut[];
  logprobs?: TokenLogprob[];
  finishReason: FinishReason | 'tool_calls';
  usage: Usage;
}

/** The prompt of a request: its ids, and how to read the completion. */
export interface PreparedPrompt {
  ids: number[];
  text: string | null;
  /** Set for a DeepSeek-V3.2 conversation: the completion is parsed into content/reasoning/tool calls. */
  parse: ThinkingMode | null;
}

function num(v: unknown, param: string, lo: number, hi: number, integer = false): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < lo || v > hi)
    throw new RequestError(`${param} must be ${integer ? 'an integer' : 'a number'} in [${lo}, ${hi}] but received ${JSON.stringify(v) ?? String(v)}`, param);
  return v;
}

/** The text/token machinery of one model: tokenizer, chat format and engine. */
export class Serving {
  readonly engine: Engine;
  readonly #tokenizer: TextTokenizer | null;
  readonly modelType: string;
  #template: Template | null = null;
  #callCounter = 0;

  constructor(readonly model: Model, options: EngineOptions = {}, tokenizer?: TextTokenizer | null) {
    this.#tokenizer = tokenizer === undefined ? TextTokenizer.load(model.dir) : tokenizer;
    this.modelType = model.config.modelType;
    this.engine = new Engine(model, options);
  }

  get tokenizer(): TextTokenizer | null {
    return this.#tokenizer;
  }

  /** The tokenizer, or a clear error naming what is missing. */
  requireTokenizer(what: string): TextTokenizer {
    if (!this.#tokenizer)
      throw new MissingTokenizerError(
        `${what} needs the checkpoint's tokenizer, but ${this.model.dir} has no tokenizer.json (and tokenizer_config.json); pass token ids as the prompt, or add the tokenizer files`,
      );
    return this.#tokenizer;
  }

  /** Encodes a request's prompt (conversation or text) to ids. */
  prepare(req: GenerateRequest): PreparedPrompt {
    if (req.messages !== undefined && req.prompt !== undefined) throw new RequestError('give either prompt or messages, not both', 'messages');
    if (req.messages !== undefined) {
      if (!Array.isArray(req.messages) || req.messages.length === 0) throw new RequestError('messages must be a non-empty array', 'messages');
      const tk = this.requireTokenizer('a conversation');
      const text = this.renderChat(req.messages, req);
      return { ids: tk.encode(text), text, parse: this.modelType === 'deepseek_v3' ? null : req.thinking ? 'thinking' : 'chat' };
    }
    const p = req.prompt;
    if (typeof p === 'string') {
      if (p.length === 0) throw new RequestError('prompt is empty', 'prompt');
      return { ids: this.requireTokenizer('a text prompt').encode(p), text: p, parse: null };
    }
    if (Array.isArray(p)) {
      if (p.length === 0) throw new RequestError('prompt is empty', 'prompt');
      const V = this.model.config.vocabSize;
      p.forEach((id, i) => {
        if (!Number.isInteger(id) || id < 0 || id >= V) throw new RequestError(`prompt[${i}] is ${String(id)}: token ids must be integers in [0, ${V})`, 'prompt');
      });
      return { ids: [...p], text: null, parse: null };
    }
    throw new RequestError('a request needs a prompt (text or token ids) or messages', 'prompt');
  }

  /** The prompt text of a conversation in the checkpoint's chat format. */
  renderChat(messages: readonly ChatMessage[], req: Pick<GenerateRequest, 'tools' | 'responseFormat' | 'thinking'> = {}): string {
    messages.forEach((m, i) => {
      if (typeof m !== 'object' || m === null) throw new RequestError(`messages[${i}] must be an object`, `messages[${i}]`);
      if (!['system', 'developer', 'user', 'assistant', 'tool'].includes(m.role))
        throw new RequestError(`messages[${i}].role must be one of system, developer, user, assistant, tool but received ${JSON.stringify(m.role)}`, `messages[${i}].role`);
      if (m.content !== undefined && m.content !== null && typeof m.content !== 'string')
        throw new RequestError(`messages[${i}].content must be a string or null`, `messages[${i}].content`);
      if ((m.role === 'user' || m.role === 'tool') && typeof m.content !== 'string')
        throw new RequestError(`messages[${i}].content must be a string for role ${m.role}`, `messages[${i}].content`);
    });
    if (this.modelType === 'deepseek_v3') {
      if (req.thinking) throw new RequestError('thinking mode needs a DeepSeek-V3.2 checkpoint (model_type deepseek_v32)', 'thinking');
      const tk = this.requireTokenizer('a conversation');
      if (!tk.chatTemplate) throw new RequestError(`${this.model.dir}/tokenizer_config.json has no chat_template`, 'messages');
      this.#template ??= new Template(tk.chatTemplate);
      return this.#template.render({
        messages,
        tools: req.tools,
        add_generation_prompt: true,
        bos_token: tk.bosToken ?? '',
        eos_token: tk.eosToken ?? '',
      });
    }
    // DeepSeek-V3.2: tools and response_format go on the leading system message (the encoding renders
    // them only inside a system or developer message); one is added when the conversation has none.
    let msgs = [...messages];
    const hasTools = Array.isArray(req.tools) && req.tools.length > 0;
    const hasFormat = req.responseFormat !== undefined && req.responseFormat !== null;
    if (hasTools || hasFormat) {
      const sys: ChatMessage = msgs[0]?.role === 'system' ? { ...msgs[0] } : { role: 'system', content: '' };
      if (hasTools) sys.tools = [...req.tools!];
      if (hasFormat) sys.response_format = req.responseFormat;
      msgs = msgs[0]?.role === 'system' ? [sys, ...msgs.slice(1)] : [sys, ...msgs];
    }
    try {
      return encodeMessages(msgs, { thinkingMode: req.thinking ? 'thinking' : 'chat' });
    } catch (e) {
      throw new RequestError((e as Error).message, 'messages');
    }
  }

  async *#stream(req: GenerateRequest): AsyncGenerator<StreamChunk, void, undefined> {
    if (typeof req !== 'object' || req === null) throw new RequestError('the request must be an object');
    const prepared = this.prepare(req);
    const sampling = this.#sampling(req);
    const { stopStrings, stopIds } = this.#stops(req);
    const tk = this.#tokenizer;
    const topLogprobs = req.logprobs === undefined || req.logprobs === false ? -1 : req.logprobs === true ? 0 : num(req.logprobs, 'logprobs', 0, 20, true);
    const room = this.model.maxContext - prepared.ids.length;
    const maxTokens = req.maxTokens === undefined || req.maxTokens === null ? Math.max(1, room) : num(req.maxTokens, 'maxTokens', 1, Number.MAX_SAFE_INTEGER, true);

    // Token events become chunks through a small queue the generator drains.
    const queue: StreamChunk[] = [];
    let wake: (() => void) | null = null;
    const notify = (): void => {
      wake?.();
      wake = null;
    };
    const decoder = tk ? new IncrementalDecoder(tk) : null;
    const parser = prepared.parse ? new CompletionParser(prepared.parse) : null;
    let held = ''; // text that could be the start of a stop string
    let toolCalls = 0;
    const toChunk = (raw: string, tokens: number[], logprobs: TokenLogprob[] | undefined): StreamChunk => {
      const chunk: StreamChunk = { text: '', tokens };
      if (logprobs) chunk.logprobs = logprobs;
      if (!parser) {
        chunk.text = raw;
        return chunk;
      }
      for (const ev of parser.push(raw)) this.#apply(chunk, ev, () => toolCalls++);
      return chunk;
    };
    const onToken = (t: TokenEvent): boolean => {
      if (t.isStop) return false; // counted in usage; no text, no token, no logprob entry
      const lp = t.logprob === undefined ? undefined : [{ id: t.id, logprob: t.logprob, ...(t.top ? { top: t.top } : {}) }];
      let stopNow = false;
      let raw = '';
      if (decoder) {
        held += decoder.push(t.id);
        let cut = -1;
        for (const s of stopStrings) {
          const at = held.indexOf(s);
          if (at >= 0 && (cut < 0 || at < cut)) cut = at;
        }
        if (cut >= 0) {
          raw = held.slice(0, cut);
          held = '';
          stopNow = true;
        } else {
          let keep = 0;
          for (const s of stopStrings)
            for (let n = Math.min(s.length - 1, held.length); n > keep; --n)
              if (held.endsWith(s.slice(0, n))) {
                keep = n;
                break;
              }
          raw = held.slice(0, held.length - keep);
          held = held.slice(held.length - keep);
        }
      }
      queue.push(toChunk(raw, [t.id], lp));
      notify();
      return stopNow;
    };
    // Filled in by the engine's promise (an object, so the loop below sees the updates).
    const end: { result: EngineResult | null; failure: unknown } = { result: null, failure: null };
    const done = this.engine
      .submit({ prompt: prepared.ids, maxTokens, sampling, stopTokenIds: stopIds, topLogprobs, signal: req.signal, onToken })
      .then(
        (r) => {
          end.result = r;
          notify();
        },
        (e) => {
          end.failure = e;
          notify();
        },
      );
    {
      for (;;) {
        while (queue.length) yield queue.shift()!;
        if (end.failure) throw end.failure;
        if (end.result) break;
        await new Promise<void>((r) => (wake = r));
      }
      await done;
      const r = end.result!;
      // What is still held back: an unfinished character, a partial stop string, a partial marker.
      let tail = decoder ? held + decoder.flush() : '';
      if (r.finishReason === 'stop' && stopStrings.length && tail) {
        for (const s of stopStrings) if (tail.includes(s)) tail = tail.slice(0, tail.indexOf(s));
      }
      const last = toChunk(tail, [], undefined);
      if (parser) for (const ev of parser.finish()) this.#apply(last, ev, () => toolCalls++);
      last.finishReason = toolCalls > 0 && r.finishReason === 'stop' ? 'tool_calls' : r.finishReason;
      last.usage = { promptTokens: r.promptTokens, completionTokens: r.completionTokens, totalTokens: r.promptTokens + r.completionTokens };
      yield last;
    }
  }

  /**
   * Streams a request's output. A consumer that stops iterating (break, a closed connection) ends the
   * request: the stream has an AbortController of its own, chained to the caller's signal.
   */
  async *stream(req: GenerateRequest): AsyncGenerator<StreamChunk, void, undefined> {
    const own = new AbortController();
    const outer = req.signal;
    const relay = (): void => own.abort(outer?.reason);
    if (outer?.aborted) own.abort(outer.reason);
    else outer?.addEventListener('abort', relay, { once: true });
    try {
      yield* this.#stream({ ...req, signal: own.signal });
    } finally {
      outer?.removeEventListener('abort', relay);
      own.abort(); // no-op when the request already finished
    }
  }

  /** Runs a request to the end. */
  async generate(req: GenerateRequest): Promise<GenerateResult> {
    const out: GenerateResult = { text: '', tokens: [], reasoning: '', toolCalls: [], finishReason: 'length', usage: { promptTokens: 0, completionTokens: 0, totalTokens: 0 } };
    for await (const c of this.stream(req)) {
      out.text += c.text;
      out.tokens.push(...c.tokens);
      if (c.reasoning) out.reasoning += c.reasoning;
      if (c.toolCalls) out.toolCalls.push(...c.toolCalls);
      if (c.logprobs) (out.logprobs ??= []).push(...c.logprobs);
      if (c.finishReason) out.finishReason = c.finishReason;
      if (c.usage) out.usage = c.usage;
    }
    return out;
  }

  #apply(chunk: StreamChunk, ev: ParseEvent, countCall: () => void): void {
    if (ev.kind === 'content') chunk.text += ev.text;
    else if (ev.kind === 'reasoning') chunk.reasoning = (chunk.reasoning ?? '') + ev.text;
    else if (ev.kind === 'tool_call') {
      countCall();
      (chunk.toolCalls ??= []).push({
        index: ev.index,
        id: `call_${(++this.#callCounter).toString(36)}${Math.random().toString(36).slice(2, 10)}`,
        type: 'function',
        function: { name: ev.name, arguments: ev.arguments },
      });
    }
  }

  #sampling(req: GenerateRequest): SamplingParams {
    const s: SamplingParams = { ...DEFAULT_SAMPLING };
    if (req.temperature !== undefined && req.temperature !== null) s.temperature = num(req.temperature, 'temperature', 0, 100);
    if (req.topP !== undefined && req.topP !== null) s.topP = num(req.topP, 'topP', Number.MIN_VALUE, 1);
    if (req.topK !== undefined && req.topK !== null) s.topK = num(req.topK, 'topK', 0, 2 ** 24, true);
    if (req.minP !== undefined && req.minP !== null) s.minP = num(req.minP, 'minP', 0, 1);
    if (req.presencePenalty !== undefined && req.presencePenalty !== null) s.presencePenalty = num(req.presencePenalty, 'presencePenalty', -2, 2);
    if (req.frequencyPenalty !== undefined && req.frequencyPenalty !== null) s.frequencyPenalty = num(req.frequencyPenalty, 'frequencyPenalty', -2, 2);
    if (req.repetitionPenalty !== undefined && req.repetitionPenalty !== null) s.repetitionPenalty = num(req.repetitionPenalty, 'repetitionPenalty', 0.01, 100);
    if (req.seed !== undefined && req.seed !== null) s.seed = num(req.seed, 'seed', -Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, true);
    return s;
  }

  #stops(req: GenerateRequest): { stopStrings: string[]; stopIds: Set<number> } {
    const stopStrings: string[] = [];
    const stopIds = new Set<number>();
    if (!req.ignoreEos) {
      const eos = this.#tokenizer?.eosId;
      for (const id of typeof eos === 'number' ? [eos] : this.model.config.eosTokenIds) stopIds.add(id);
    }
    const list = req.stop === undefined || req.stop === null ? [] : typeof req.stop === 'string' ? [req.stop] : req.stop;
    if (!Array.isArray(list)) throw new RequestError('stop must be a string or an array of strings and token ids', 'stop');
    list.forEach((s, i) => {
      if (typeof s === 'string') {
        if (s.length === 0) throw new RequestError(`stop[${i}] is an empty string`, 'stop');
        this.requireTokenizer('a stop string');
        stopStrings.push(s);
      } else if (Number.isInteger(s) && s >= 0 && s < this.model.config.vocabSize) stopIds.add(s);
      else throw new RequestError(`stop[${i}] must be a string or a token id in [0, ${this.model.config.vocabSize})`, 'stop');
    });
    return { stopStrings, stopIds };
  }
}
