// The chat format a checkpoint's model type picks, the OpenAI → V3.2 mapping, make-tiny --tokenizer.
import { join } from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import { parseMakeTinyArgs } from '../../lib/tools/make-tiny/command.js';
import { tokenizerIdCount } from '../../lib/tools/make-tiny/writer.js';
import type { Model } from '../../lib/model/model.js';
import { encodeMessages } from '../../lib/serve/dsv32-encoding.js';
import { Serving } from '../../lib/serve/generation.js';
import { TextTokenizer } from '../../lib/serve/tokenizer.js';
import { deepseekV3TokenizerDir } from './helpers.js';

let tk: TextTokenizer;
beforeAll(() => {
  tk = TextTokenizer.load(deepseekV3TokenizerDir())!;
});

/** Only what Serving reads of a model when it renders prompts. */
const fakeModel = (modelType: string) =>
  ({ dir: '/nowhere', maxContext: 4096, config: { modelType, eosTokenIds: [], vocabSize: 129280 } }) as unknown as Model;

describe('chat format by model type', () => {
  it('deepseek_v3 renders tokenizer_config.json’s chat_template with @huggingface/jinja', () => {
    const s = new Serving(fakeModel('deepseek_v3'), {}, tk);
    const text = s.renderChat([
      { role: 'system', content: 'You are helpful.' },
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello!' },
      { role: 'user', content: 'How are you?' },
    ]);
    expect(text).toBe('<｜begin▁of▁sentence｜>You are helpful.<｜User｜>Hi<｜Assistant｜>Hello!<｜end▁of▁sentence｜><｜User｜>How are you?<｜Assistant｜>');
    expect(() => s.renderChat([{ role: 'user', content: 'x' }], { thinking: true })).toThrow(/thinking mode needs a DeepSeek-V3.2 checkpoint/);
  });

  it('deepseek_v32 uses the V3.2 encoding even though the tokenizer files carry a chat_template', () => {
    const s = new Serving(fakeModel('deepseek_v32'), {}, tk);
    expect(tk.chatTemplate).not.toBeNull();
    const msgs = [{ role: 'user' as const, content: 'Hi' }];
    expect(s.renderChat(msgs)).toBe('<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜></think>');
    expect(s.renderChat(msgs, { thinking: true })).toBe('<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜><think>');
  });

  it('tools and response_format go on a leading system message (added when there is none); developer stays developer', () => {
    const s = new Serving(fakeModel('deepseek_v32'), {}, tk);
    const tools = [{ type: 'function' as const, function: { name: 'f', parameters: { type: 'object' } } }];
    const rf = { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object' } } };
    const got = s.renderChat([{ role: 'developer', content: 'Do it.' }], { tools, responseFormat: rf });
    const want = encodeMessages([{ role: 'system', content: '', tools, response_format: rf }, { role: 'developer', content: 'Do it.' }], { thinkingMode: 'chat' });
    expect(got).toBe(want);
    expect(got).toContain('<｜User｜>\n\n# The user\'s message is: Do it.');
    expect(got).toContain('{"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}');
    // An assistant turn with tool calls and null content, and the tool result after it.
    const turn = s.renderChat([
      { role: 'user', content: 'Q' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{"a": 1}' } }] },
      { role: 'tool', content: 'R', tool_call_id: 'c1' },
    ]);
    expect(turn).toContain('</｜DSML｜function_calls><｜end▁of▁sentence｜>\n\n<function_results>\n<result>R</result>\n</function_results>\n\n</think>');
  });

  it('names the bad message field', () => {
    const s = new Serving(fakeModel('deepseek_v32'), {}, tk);
    expect(() => s.renderChat([{ role: 'user', content: 5 as unknown as string }])).toThrow(/messages\[0\]\.content must be a string/);
    expect(() => s.renderChat([{ role: 'tool', content: 'x' }])).toThrow(/message 0: tool result without a matching tool call/);
  });
});

describe('make-tiny --tokenizer', () => {
  it('counts the tokenizer ids and parses the option with or without a folder', () => {
    expect(tokenizerIdCount(join(deepseekV3TokenizerDir(), 'tokenizer.json'))).toBe(128815);
    expect(parseMakeTinyArgs(['out', '--tokenizer']).options.tokenizer).toBe(true);
    expect(parseMakeTinyArgs(['out', '--tokenizer', '/tk']).options.tokenizer).toBe('/tk');
    expect(parseMakeTinyArgs(['--tokenizer=/tk', 'out'])).toEqual({ dir: 'out', options: { tokenizer: '/tk' } });
    expect(parseMakeTinyArgs(['--tokenizer', 'out'])).toEqual({ dir: 'out', options: { tokenizer: true } });
  });
});
