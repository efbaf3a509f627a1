// DeepSeek-V3.2's chat encoding against DeepSeek's own test vectors (test/fixtures/dsv32-encoding,
// from encoding/ of DeepSeek-V3.2 as stored in huggingface/transformers), round trip included.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import {
  CompletionParser,
  type ChatMessage,
  encodeMessages,
  EncodingError,
  parseCompletion,
  type ParseEvent,
} from '../../lib/serve/dsv32-encoding.js';
import { parsePyJson, pyFloatRepr, pyJsonDumps } from '../../lib/serve/py-json.js';

const dir = join(import.meta.dirname, '../fixtures/dsv32-encoding');
const input = JSON.parse(readFileSync(join(dir, 'test_input.json'), 'utf8')) as { tools: ChatMessage['tools']; messages: ChatMessage[] };
const gold = readFileSync(join(dir, 'test_output.txt'), 'utf8').trim();
const messages: ChatMessage[] = input.messages.map((m, i) => (i === 0 ? { ...m, tools: input.tools } : m));
const opts = { thinkingMode: 'thinking' as const, dropThinking: true, addBos: true };

describe('encodeMessages (DeepSeek test vectors)', () => {
  it('encodes the tool-calling, thinking conversation exactly as test_output.txt', () => {
    expect(encodeMessages(messages, opts)).toBe(gold);
  });

  it('round-trips a tool-call turn: encode with context, parse back (ids aside)', () => {
    const m = messages[4];
    const text = encodeMessages([m], { ...opts, context: messages.slice(0, 4) });
    const parsed = parseCompletion(text, 'thinking');
    expect(parsed.reasoning_content).toBe(m.reasoning_content);
    expect(parsed.tool_calls).toEqual(m.tool_calls!.map(({ id: _id, ...c }) => c));
  });

  it('round-trips a thinking turn with content', () => {
    const m = messages[messages.length - 6];
    const text = encodeMessages([m], { ...opts, context: messages.slice(0, -6) });
    const { tool_calls: _calls, ...parsed } = parseCompletion(text, 'thinking');
    expect(parsed).toEqual(m);
  });

  it('chat mode closes every turn with </think> and drops no reasoning', () => {
    const p = encodeMessages([{ role: 'user', content: 'hi' }], { thinkingMode: 'chat' });
    expect(p).toBe('<｜begin▁of▁sentence｜><｜User｜>hi<｜Assistant｜></think>');
    const t = encodeMessages([{ role: 'user', content: 'hi' }], { thinkingMode: 'thinking' });
    expect(t.endsWith('<｜Assistant｜><think>')).toBe(true);
  });

  it('renders developer messages with tools and response_format inside the user turn', () => {
    const p = encodeMessages(
      [{ role: 'developer', content: 'Q?', tools: input.tools!.slice(0, 1), response_format: { type: 'json_object' } }],
      { thinkingMode: 'chat' },
    );
    expect(p.startsWith('<｜begin▁of▁sentence｜><｜User｜>\n\n## Tools\n')).toBe(true);
    expect(p).toContain('\n\n## Response Format:\n\nYou MUST strictly adhere to the following schema to reply:\n{"type": "json_object"}');
    expect(p.endsWith("\n\n# The user's message is: Q?<｜Assistant｜></think>")).toBe(true);
  });

  it('rejects broken conversations with a clear error', () => {
    expect(() => encodeMessages([{ role: 'tool', content: 'x' }, { role: 'user', content: 'y' }], opts)).toThrow(EncodingError);
    expect(() => encodeMessages([{ role: 'wizard' as 'user', content: 'x' }], opts)).toThrow(/unknown role 'wizard'/);
    expect(() => encodeMessages([{ role: 'developer', content: '' }], opts)).toThrow(/developer message needs content/);
    expect(() =>
      encodeMessages([{ role: 'assistant', content: null, tool_calls: [{ function: { name: 'f', arguments: '[1]' } }] }], { thinkingMode: 'chat' }),
    ).toThrow(/arguments must be a JSON object/);
  });
});

describe('Python json.dumps spacing', () => {
  it('writes separators, floats and non-ASCII as Python does', () => {
    expect(pyJsonDumps({ a: [1, 'é', null, true], b: { c: 0.5 } })).toBe('{"a": [1, "é", null, true], "b": {"c": 0.5}}');
    expect(pyFloatRepr(1e16)).toBe('1e+16');
    expect(pyFloatRepr(1e-5)).toBe('1e-05');
    expect(pyFloatRepr(0.0001)).toBe('0.0001');
    expect(pyFloatRepr(123.0)).toBe('123.0');
    expect(pyFloatRepr(1.5e300)).toBe('1.5e+300');
    // Number literals keep their Python type; keys keep their order, integer-like ones included.
    expect(pyJsonDumps(parsePyJson('{"b": 1.0, "1": 2, "big": 123456789012345678901234567890, "e": 1E2}'))).toBe(
      '{"b": 1.0, "1": 2, "big": 123456789012345678901234567890, "e": 100.0}',
    );
    expect(() => parsePyJson('{"a": }')).toThrow(SyntaxError);
  });

  it('writes non-string tool arguments as JSON inside DSML and reads them back unchanged', () => {
    const call = { function: { name: 'f', arguments: '{"n": 3, "x": 2.50, "tags": ["a", "ü"], "s": "line\\nbreak"}' } };
    const text = encodeMessages([{ role: 'assistant', content: '', tool_calls: [call] }], { thinkingMode: 'chat', addBos: false });
    expect(text).toContain('<｜DSML｜parameter name="x" string="false">2.5</｜DSML｜parameter>');
    expect(text).toContain('<｜DSML｜parameter name="s" string="true">line\nbreak</｜DSML｜parameter>');
    const parsed = parseCompletion(text, 'chat');
    expect(parsed.tool_calls[0].function.arguments).toBe('{"n": 3, "x": 2.5, "tags": ["a", "ü"], "s": "line\\nbreak"}');
  });
});

describe('CompletionParser (streaming)', () => {
  function stream(text: string, mode: 'chat' | 'thinking', pieces: number): ParseEvent[] {
    const p = new CompletionParser(mode);
    const events: ParseEvent[] = [];
    const step = Math.max(1, Math.ceil(text.length / pieces));
    for (let i = 0; i < text.length; i += step) events.push(...p.push(text.slice(i, i + step)));
    events.push(...p.finish());
    return events;
  }
  const join = (ev: ParseEvent[], kind: string): string => ev.filter((e) => e.kind === kind).map((e) => (e as { text: string }).text).join('');

  it('gives the same message as the whole-text parser, whatever the chunking', () => {
    const m = messages[4];
    const text = encodeMessages([m], { ...opts, context: messages.slice(0, 4) });
    const whole = parseCompletion(text, 'thinking');
    for (const pieces of [1, 3, 17, text.length]) {
      const ev = stream(text, 'thinking', pieces);
      expect(join(ev, 'reasoning')).toBe(whole.reasoning_content);
      expect(join(ev, 'content')).toBe(whole.content);
      const calls = ev.filter((e) => e.kind === 'tool_call');
      expect(calls.map((c) => ({ type: 'function', function: { name: c.name, arguments: c.arguments } }))).toEqual(whole.tool_calls);
    }
  });

  it('emits the first tool call as soon as its invoke block closes', () => {
    const p = new CompletionParser('chat');
    const ev = p.push('Sure.\n\n<｜DSML｜function_calls>\n<｜DSML｜invoke name="a">\n<｜DSML｜parameter name="q" string="true">x</｜DSML｜parameter>\n</｜DSML｜invoke>\n');
    expect(ev).toEqual([
      { kind: 'content', text: 'Sure.' },
      { kind: 'tool_call', index: 0, name: 'a', arguments: '{"q": "x"}' },
    ]);
    expect(p.push('<｜DSML｜invoke name="b">\n</｜DSML｜invoke>\n</｜DSML｜function_calls>')).toEqual([
      { kind: 'tool_call', index: 1, name: 'b', arguments: '{}' },
    ]);
  });

  it('holds back a partial marker and releases it when it turns out to be text', () => {
    const p = new CompletionParser('thinking');
    expect(p.push('hmm </thi')).toEqual([{ kind: 'reasoning', text: 'hmm ' }]);
    expect(p.push('s is not it')).toEqual([{ kind: 'reasoning', text: '</this is not it' }]);
    expect(p.push('</think>Answer')).toEqual([{ kind: 'content', text: 'Answer' }]);
    expect(p.finish()).toEqual([]);
  });

  it('a malformed tool block comes back as content text', () => {
    const ev = stream('ok\n\n<｜DSML｜function_calls>\ngarbage', 'chat', 2);
    expect(join(ev, 'content')).toBe('ok\n\n<｜DSML｜function_calls>\ngarbage');
  });
});
