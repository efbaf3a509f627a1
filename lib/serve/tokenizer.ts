/**
 * Text ↔ token ids from a checkpoint's own `tokenizer.json` / `tokenizer_config.json`, with
 * @huggingface/tokenizers (the byte-level BPE of DeepSeek-V3 and V3.2, added tokens as the files say),
 * and an incremental detokenizer that never emits half a UTF-8 character.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { Tokenizer } from '@huggingface/tokenizers';

/** Thrown by text calls on a checkpoint whose folder has no tokenizer files. */
export class MissingTokenizerError extends Error {
  override name = 'MissingTokenizerError';
}

interface AddedTokenLike {
  content: string;
  special: boolean;
}

function tokenText(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return null;
}

export class TextTokenizer {
  readonly #tk: Tokenizer;
  /** The `tokenizer_config.json` object as read. */
  readonly config: Record<string, unknown>;
  /** Ids the tokenizer knows: the model vocabulary and its added tokens. */
  readonly size: number;
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly bosId: number | null;
  readonly eosId: number | null;
  /** The Jinja chat template of `tokenizer_config.json`, if any. */
  readonly chatTemplate: string | null;
  readonly #special = new Set<number>();

  constructor(tokenizerJson: object, config: Record<string, unknown>) {
    this.#tk = new Tokenizer(tokenizerJson, config);
    this.config = config;
    this.bosToken = tokenText(config.bos_token);
    this.eosToken = tokenText(config.eos_token);
    this.bosId = this.bosToken === null ? null : (this.#tk.token_to_id(this.bosToken) ?? null);
    this.eosId = this.eosToken === null ? null : (this.#tk.token_to_id(this.eosToken) ?? null);
    this.chatTemplate = typeof config.chat_template === 'string' ? config.chat_template : null;
    let size = 0;
    for (const id of this.#tk.get_vocab(true).values()) size = Math.max(size, id + 1);
    this.size = size;
    for (const [id, t] of this.#tk.get_added_tokens_decoder() as Map<number, AddedTokenLike>) if (t.special) this.#special.add(id);
  }

  /** Reads `DIR/tokenizer.json` and `DIR/tokenizer_config.json`; null when the folder has neither. */
  static load(dir: string): TextTokenizer | null {
    const jsonPath = join(dir, 'tokenizer.json');
    const configPath = join(dir, 'tokenizer_config.json');
    if (!existsSync(jsonPath)) return null;
    const read = (p: string): Record<string, unknown> => {
      try {
        return JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
      } catch (e) {
        throw new Error(`${p}: not valid JSON (${(e as Error).message})`);
      }
    };
    return new TextTokenizer(read(jsonPath), existsSync(configPath) ? read(configPath) : {});
  }

  /** Token ids of `text`; special-token texts in it (`<｜User｜>`) become their ids, no BOS is added. */
  encode(text: string): number[] {
    if (typeof text !== 'string') throw new TypeError(`Tokenizer.encode: expected a string but received ${typeof text}`);
    return this.#tk.encode(text, { add_special_tokens: false }).ids;
  }

  /** Text of `ids`; special tokens are written out unless `skipSpecial`. */
  decode(ids: readonly number[], skipSpecial = false): string {
    if (ids.length === 0) return '';
    return this.#tk.decode(ids as number[], { skip_special_tokens: skipSpecial, clean_up_tokenization_spaces: false });
  }

  /** The id of a token's text (an added token such as `<｜end▁of▁sentence｜>`, or a vocabulary entry). */
  tokenId(token: string): number | undefined {
    return this.#tk.token_to_id(token);
  }

  isSpecial(id: number): boolean {
    return this.#special.has(id);
  }
}

const REPLACEMENT = '\ufffd';

/**
 * Turns a stream of token ids into text deltas. A token that ends inside a multi-byte character
 * (byte-level BPE splits emoji and CJK across tokens) decodes to U+FFFD; its text is held back until
 * the character completes. Decodes a short window (the last few tokens), not the whole output, so a
 * step costs the same at any length.
 */
export class IncrementalDecoder {
  readonly #ids: number[] = [];
  #prefix = 0; // start of the window decoded for context
  #read = 0; // tokens whose text has been emitted

  constructor(readonly tokenizer: TextTokenizer, readonly skipSpecial = false) {}

  /** Text that `id` completes ('' while a character is unfinished). */
  push(id: number): string {
    this.#ids.push(id);
    const before = this.tokenizer.decode(this.#ids.slice(this.#prefix, this.#read), this.skipSpecial);
    const now = this.tokenizer.decode(this.#ids.slice(this.#prefix), this.skipSpecial);
    if (now.length > before.length && now.endsWith(REPLACEMENT)) return ''; // an unfinished character
    this.#prefix = this.#read;
    this.#read = this.#ids.length;
    return now.slice(before.length);
  }

  /** What is still held back (an unfinished character at the end of the stream, as U+FFFD). */
  flush(): string {
    const before = this.tokenizer.decode(this.#ids.slice(this.#prefix, this.#read), this.skipSpecial);
    const now = this.tokenizer.decode(this.#ids.slice(this.#prefix), this.skipSpecial);
    this.#prefix = this.#read = this.#ids.length;
    return now.slice(before.length);
  }
}
