/**
 * DeepSeek-V3.2's chat format (V3.2 ships no Jinja template; DeepSeek encodes conversations with its
 * `encoding_dsv32.py`), written from its definition: roles system / developer / user / assistant /
 * tool, `<｜User｜>…<｜Assistant｜>`, thinking mode with `<think>…</think>` (earlier turns' reasoning
 * dropped), OpenAI-style `tools` rendered into a system block, tool calls as `<｜DSML｜function_calls>`
 * blocks, tool results as `<function_results>`, `response_format` schemas. And the inverse: a
 * completion parsed back into content, reasoning_content and tool_calls, whole or streamed.
 */
import { parsePyJson, PyObject, pyJsonDumps } from './py-json.js';

export const BOS = '<｜begin▁of▁sentence｜>';
export const EOS = '<｜end▁of▁sentence｜>';
export const THINK_START = '<think>';
export const THINK_END = '</think>';
export const DSML = '｜DSML｜';
const USER = '<｜User｜>';
const ASSISTANT = '<｜Assistant｜>';
const TOOLS_START = `\n\n<${DSML}function_calls`;
const TOOLS_END = `</${DSML}function_calls>`;
const INVOKE = `<${DSML}invoke`;
const INVOKE_END = `</${DSML}invoke`;
const PARAM = `<${DSML}parameter`;

export type ThinkingMode = 'chat' | 'thinking';

export interface ToolFunction {
  name: string;
  description?: string;
  parameters?: unknown;
  [k: string]: unknown;
}
export interface Tool {
  type?: 'function';
  function: ToolFunction;
}
export interface ToolCall {
  id?: string | null;
  type?: 'function';
  function: { name: string; arguments: string };
}
export interface ChatMessage {
  role: 'system' | 'developer' | 'user' | 'assistant' | 'tool';
  content?: string | null;
  reasoning_content?: string | null;
  tools?: Tool[] | null;
  response_format?: unknown;
  tool_calls?: ToolCall[] | null;
  tool_call_id?: string | null;
}

/** A completion parsed back: what DeepSeek's parser returns. */
export interface ParsedMessage {
  role: 'assistant';
  content: string;
  reasoning_content: string;
  tool_calls: { type: 'function'; function: { name: string; arguments: string } }[];
}

export class EncodingError extends Error {
  override name = 'EncodingError';
}

function toolsSystemBlock(tools: Tool[]): string {
  const d = DSML;
  const schemas = tools.map((t) => pyJsonDumps(t.function)).join('\n');
  return `## Tools

You have access to a set of tools you can use to answer the user's question.
You can invoke functions by writing a "<${d}function_calls>" block like the following as part of your reply to the user:
<${d}function_calls>
<${d}invoke name="$FUNCTION_NAME">
<${d}parameter name="$PARAMETER_NAME" string="true|false">$PARAMETER_VALUE</${d}parameter>
...
</${d}invoke>
<${d}invoke name="$FUNCTION_NAME2">
...
</${d}invoke>
</${d}function_calls>

String and scalar parameters should be specified as is without any escaping or quotes, while lists and objects should use JSON format. The "string" attribute should be set to "true" for string type parameters and "false" for other types (numbers, booleans, arrays, objects).

If the thinking_mode is enabled, then after function results you should strongly consider outputting a thinking block. Here is an example:

<${d}function_calls>
...
</${d}function_calls>

<function_results>
...
</function_results>

${THINK_START}...thinking about results${THINK_END}

Here are the functions available in JSONSchema format:
<functions>
${schemas}
</functions>
`;
}

function responseFormatBlock(rf: unknown): string {
  return `## Response Format:\n\nYou MUST strictly adhere to the following schema to reply:\n${pyJsonDumps(rf)}`;
}

/** Python truthiness of the optional fields the encoder tests with `if x:`. */
function truthy(v: unknown): boolean {
  if (v === null || v === undefined || v === false || v === '' || v === 0) return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v as object).length > 0;
  return true;
}

/** Python's `str.format` of a value that should be a string (None prints as "None"). */
function text(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v === null || v === undefined) return 'None';
  return String(v);
}

function lastUserIndex(messages: readonly ChatMessage[]): number {
  for (let i = messages.length - 1; i >= 0; --i) if (messages[i].role === 'user' || messages[i].role === 'developer') return i;
  return -1;
}

function argumentsToDsml(call: ToolCall): string {
  let args;
  try {
    args = parsePyJson(call.function.arguments);
  } catch (e) {
    throw new EncodingError(`tool call '${call.function.name}': arguments are not valid JSON (${(e as Error).message})`);
  }
  if (!(args instanceof PyObject)) throw new EncodingError(`tool call '${call.function.name}': arguments must be a JSON object`);
  return args.entries
    .map(([k, v]) => {
      const isStr = typeof v === 'string';
      return `<${DSML}parameter name="${k}" string="${isStr ? 'true' : 'false'}">${isStr ? v : pyJsonDumps(v)}</${DSML}parameter>`;
    })
    .join('\n');
}

function renderMessage(index: number, messages: readonly ChatMessage[], mode: ThinkingMode): string {
  if (!(index >= 0 && index < messages.length)) throw new EncodingError(`message ${index} is out of range (${messages.length} messages)`);
  const msg = messages[index];
  const last = lastUserIndex(messages);
  const { role, content } = msg;
  const tools = truthy(msg.tools) ? msg.tools! : null;
  const rf = msg.response_format;
  let prompt = '';
  const openThink = (atLast: boolean): string => (atLast && mode === 'thinking' ? THINK_START : THINK_END);
  switch (role) {
    case 'system':
      prompt += content ?? '';
      if (tools) prompt += '\n\n' + toolsSystemBlock(tools);
      if (truthy(rf)) prompt += '\n\n' + responseFormatBlock(rf);
      break;
    case 'developer': {
      if (!truthy(content)) throw new EncodingError(`message ${index}: a developer message needs content`);
      let dev = '';
      if (tools) dev += '\n\n' + toolsSystemBlock(tools);
      if (truthy(rf)) dev += '\n\n' + responseFormatBlock(rf);
      dev += `\n\n# The user's message is: ${text(content)}`;
      prompt += USER + dev + ASSISTANT + openThink(index === last);
      break;
    }
    case 'user':
      prompt += USER + text(content) + ASSISTANT + openThink(index === last);
      break;
    case 'tool': {
      let prev = index - 1;
      while (prev >= 0 && messages[prev].role === 'tool') --prev;
      const assistant = prev >= 0 ? messages[prev] : undefined;
      if (!(index === 0 || (assistant && assistant.role === 'assistant')))
        throw new EncodingError(`message ${index}: a tool result must follow an assistant message with tool_calls`);
      const order = index - prev;
      const calls = assistant?.tool_calls;
      if (!calls || calls.length < order) throw new EncodingError(`message ${index}: tool result without a matching tool call in message ${prev}`);
      if (order === 1) prompt += '\n\n<function_results>';
      prompt += `\n<result>${text(content)}</result>`;
      if (order === calls.length) prompt += '\n</function_results>\n\n' + openThink(index >= last);
      break;
    }
    case 'assistant': {
      let callsText = '';
      if (truthy(msg.tool_calls)) {
        const blocks = msg.tool_calls!.map((c) => `<${DSML}invoke name="${c.function.name}">\n${argumentsToDsml(c)}\n</${DSML}invoke>`);
        callsText = `\n\n<${DSML}function_calls>\n${blocks.join('\n')}\n</${DSML}function_calls>`;
      }
      let thinking = '';
      if (mode === 'thinking' && index > last) {
        if (!truthy(msg.reasoning_content) && !truthy(msg.tool_calls))
          throw new EncodingError(`message ${index}: in thinking mode an assistant message after the last user message needs reasoning_content or tool_calls`);
        thinking = (msg.reasoning_content ?? '') + THINK_END;
      }
      prompt += thinking + (content ?? '') + callsText + EOS;
      break;
    }
    default:
      throw new EncodingError(`message ${index}: unknown role '${String(role)}'`);
  }
  return prompt;
}

/** Earlier assistant turns lose their reasoning; developer messages before the last user turn are dropped. */
function dropThinking(messages: readonly ChatMessage[]): ChatMessage[] {
  const last = lastUserIndex(messages);
  const out: ChatMessage[] = [];
  messages.forEach((m, i) => {
    if (m.role === 'user' || m.role === 'system' || m.role === 'tool' || i >= last) out.push(m);
    else if (m.role === 'assistant') {
      const { reasoning_content: _dropped, ...rest } = m;
      out.push(rest);
    }
  });
  return out;
}

export interface EncodeOptions {
  thinkingMode: ThinkingMode;
  /** Messages already in the cache before these (no BOS is written then). */
  context?: readonly ChatMessage[];
  /** Drop earlier turns' reasoning in thinking mode (default true). */
  dropThinking?: boolean;
  /** Start with the BOS token when there is no context (default true). */
  addBos?: boolean;
}

/** The prompt text of `messages`, as DeepSeek's `encode_messages` writes it. */
export function encodeMessages(messages: readonly ChatMessage[], options: EncodeOptions): string {
  const mode = options.thinkingMode;
  if (mode !== 'chat' && mode !== 'thinking') throw new EncodingError(`thinkingMode must be 'chat' or 'thinking' but received '${String(mode)}'`);
  const context = options.context ?? [];
  let full: readonly ChatMessage[] = [...context, ...messages];
  let prompt = (options.addBos ?? true) && context.length === 0 ? BOS : '';
  if (mode === 'thinking' && (options.dropThinking ?? true)) full = dropThinking(full);
  for (let i = 0; i < messages.length; ++i) prompt += renderMessage(i + context.length, full, mode);
  return prompt;
}

// ---------------------------------------------------------------- parsing

function readUntil(i: number, s: string, stops: readonly string[]): [next: number, content: string, stop: string | null] {
  let at = s.length;
  let matched: string | null = null;
  for (const stop of stops) {
    const p = s.indexOf(stop, i);
    if (p !== -1 && p < at) {
      at = p;
      matched = stop;
    }
  }
  return matched ? [at + matched.length, s.slice(i, at), matched] : [s.length, s.slice(i), null];
}

function argumentsJson(args: [name: string, value: string, isString: string][]): string {
  return `{${args.map(([k, v, isStr]) => `${pyJsonDumps(k)}: ${isStr === 'true' ? pyJsonDumps(v) : v}`).join(', ')}}`;
}

function parseToolCalls(i: number, s: string): [number, string | null, { name: string; arguments: string }[]] {
  const calls: { name: string; arguments: string }[] = [];
  let stop: string | null = null;
  while (i < s.length) {
    let gap: string;
    [i, gap, stop] = readUntil(i, s, [INVOKE, TOOLS_END]);
    if (gap !== '>\n') throw new EncodingError('tool call format error');
    if (stop === TOOLS_END) break;
    if (stop === null) throw new EncodingError('missing special token');
    let head: string;
    [i, head, stop] = readUntil(i, s, [PARAM, INVOKE_END]);
    const name = /^\s*name="([\s\S]*?)">\n$/.exec(head);
    if (!name) throw new EncodingError('tool name format error');
    const args: [string, string, string][] = [];
    while (stop === PARAM) {
      let body: string;
      [i, body, stop] = readUntil(i, s, [`/${DSML}parameter`]);
      const kv = /^ name="([\s\S]*?)" string="(true|false)">([\s\S]*?)<$/.exec(body);
      if (!kv) throw new EncodingError('parameter format error');
      if (args.some(([k]) => k === kv[1])) throw new EncodingError(`duplicate parameter name '${kv[1]}'`);
      args.push([kv[1], kv[3], kv[2]]);
      let rest: string;
      [i, rest, stop] = readUntil(i, s, [PARAM, INVOKE_END]);
      if (rest !== '>\n') throw new EncodingError('parameter format error');
    }
    calls.push({ name: name[1], arguments: argumentsJson(args) });
  }
  return [i, stop, calls];
}

/**
 * A completion's text (as the model wrote it after the prompt, EOS included or not) parsed into
 * content, reasoning and tool calls, as DeepSeek's `parse_message_from_completion_text`. Strict:
 * malformed text throws an EncodingError.
 */
export function parseCompletion(completion: string, mode: ThinkingMode): ParsedMessage {
  let reasoning = '';
  let i = 0;
  let stop: string | null;
  let part: string;
  if (mode === 'thinking') {
    [i, part, stop] = readUntil(i, completion, [THINK_END, TOOLS_START]);
    reasoning = part;
    if (stop !== THINK_END) throw new EncodingError('invalid thinking format: no </think>');
  }
  [i, part, stop] = readUntil(i, completion, [EOS, TOOLS_START]);
  const content = part;
  let calls: { name: string; arguments: string }[] = [];
  if (stop === TOOLS_START) {
    [i, stop, calls] = parseToolCalls(i, completion);
    let after: string;
    [i, after, stop] = readUntil(i, completion, [EOS]);
    if (after) throw new EncodingError('unexpected content after tool calls');
  }
  // DeepSeek's parser also asks for the EOS after plain content; a completion that stopped at the EOS
  // token (which generation does not return as text) has none, so its absence is accepted.
  if (i !== completion.length || !(stop === EOS || stop === null)) throw new EncodingError('unexpected content at the end');
  for (const sp of [BOS, EOS, THINK_START, THINK_END, DSML])
    if (content.includes(sp) || reasoning.includes(sp)) throw new EncodingError(`unexpected special token ${sp} in content`);
  return {
    role: 'assistant',
    content,
    reasoning_content: reasoning,
    tool_calls: calls.map((c) => ({ type: 'function', function: { name: c.name, arguments: c.arguments } })),
  };
}

// ---------------------------------------------------------------- streaming

export type ParseEvent =
  | { kind: 'reasoning' | 'content'; text: string }
  | { kind: 'tool_call'; index: number; name: string; arguments: string };

/** Length of the longest suffix of `s` that is a proper prefix of one of `markers`. */
function heldBack(s: string, markers: readonly string[]): number {
  let best = 0;
  for (const m of markers)
    for (let n = Math.min(m.length - 1, s.length); n > best; --n)
      if (s.endsWith(m.slice(0, n))) {
        best = n;
        break;
      }
  return best;
}

/**
 * Parses a completion while it streams: reasoning and content come out as text deltas (holding back
 * only what could be the start of a marker), each tool call once its `invoke` block is complete.
 * Lenient where the whole-text parser is strict: a malformed tool block ends up as content text.
 */
export class CompletionParser {
  #state: 'reasoning' | 'content' | 'tools' | 'after';
  #buf = '';
  #tools = '';
  #emittedCalls = 0;
  #failed = false;

  constructor(readonly mode: ThinkingMode) {
    this.#state = mode === 'thinking' ? 'reasoning' : 'content';
  }

  get toolCalls(): number {
    return this.#emittedCalls;
  }

  push(delta: string): ParseEvent[] {
    this.#buf += delta;
    const out: ParseEvent[] = [];
    for (;;) {
      if (this.#state === 'reasoning') {
        const at = this.#buf.indexOf(THINK_END);
        if (at >= 0) {
          if (at > 0) out.push({ kind: 'reasoning', text: this.#buf.slice(0, at) });
          this.#buf = this.#buf.slice(at + THINK_END.length);
          this.#state = 'content';
          continue;
        }
        const keep = heldBack(this.#buf, [THINK_END]);
        if (this.#buf.length > keep) out.push({ kind: 'reasoning', text: this.#buf.slice(0, this.#buf.length - keep) });
        this.#buf = this.#buf.slice(this.#buf.length - keep);
        return out;
      }
      if (this.#state === 'content') {
        const [next, before, stop] = readUntil(0, this.#buf, [TOOLS_START, EOS]);
        if (stop) {
          if (before) out.push({ kind: 'content', text: before });
          this.#buf = this.#buf.slice(next);
          this.#state = stop === EOS ? 'after' : 'tools';
          if (stop === TOOLS_START) this.#tools = '';
          continue;
        }
        const keep = heldBack(this.#buf, [TOOLS_START, EOS]);
        if (this.#buf.length > keep) out.push({ kind: 'content', text: this.#buf.slice(0, this.#buf.length - keep) });
        this.#buf = this.#buf.slice(this.#buf.length - keep);
        return out;
      }
      if (this.#state === 'tools') {
        this.#tools += this.#buf;
        this.#buf = '';
        this.#scanTools(out);
        return out;
      }
      this.#buf = ''; // after the tool calls or EOS: nothing more belongs to the message
      return out;
    }
  }

  /** The end of the completion: what was held back, and a malformed or unfinished tool block as text. */
  finish(): ParseEvent[] {
    const out: ParseEvent[] = [];
    if (this.#state === 'reasoning' && this.#buf) out.push({ kind: 'reasoning', text: this.#buf });
    if (this.#state === 'content' && this.#buf) out.push({ kind: 'content', text: this.#buf });
    if (this.#state === 'tools' && this.#emittedCalls === 0) out.push({ kind: 'content', text: TOOLS_START + this.#tools });
    this.#buf = '';
    this.#state = 'after';
    return out;
  }

  #scanTools(out: ParseEvent[]): void {
    if (this.#failed) return;
    // Complete invoke blocks so far: text up to the last `</｜DSML｜invoke>` + '>' closes them all.
    const endTag = `${INVOKE_END}>`;
    const last = this.#tools.lastIndexOf(endTag);
    const closed = this.#tools.indexOf(TOOLS_END) >= 0;
    if (last < 0 && !closed) return;
    const upto = closed ? this.#tools.indexOf(TOOLS_END) + TOOLS_END.length : last + endTag.length;
    const complete = closed ? this.#tools.slice(0, upto) : this.#tools.slice(0, upto) + `\n${TOOLS_END}`;
    let calls;
    try {
      [, , calls] = parseToolCalls(0, complete);
    } catch {
      this.#failed = true;
      return;
    }
    for (; this.#emittedCalls < calls.length; ++this.#emittedCalls) {
      const c = calls[this.#emittedCalls];
      out.push({ kind: 'tool_call', index: this.#emittedCalls, name: c.name, arguments: c.arguments });
    }
    if (closed) this.#state = 'after';
  }
}
