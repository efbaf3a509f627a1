/**
 * Fuzz test of the safetensors loader: mutated copies of the golden shards and of small generated
 * files. Every mutation is chosen so that the result is invalid whatever the random draw (see each
 * generator's note); every case must be rejected with an Error naming the file, by openSafetensors
 * or by tensor(), and the process must survive all of them.
 */
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { SAFETENSORS_DTYPES, openSafetensors, writeAll } from '../../lib/io/safetensors.js';
import { native } from '../../lib/runtime/native.js';
import { type Rng, rng } from '../helpers.js';
import { GOLDEN } from '../golden-dir.js';

const SHARDS = ['tiny-dense', 'tiny-sparse'].flatMap((m) => [1, 2].map((i) => join(GOLDEN, m, `model-0000${i}-of-00002.safetensors`)));
const CASES = 1200;

const tmp = mkdtempSync(join(tmpdir(), 'dsn-fuzz-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const ST_BYTES: Record<string, number> = { F8_E4M3: 1, BF16: 2, F16: 2, F32: 4, I32: 4, I64: 8, U8: 1 };

interface Entry {
  dtype: unknown;
  shape: unknown;
  data_offsets: unknown;
}
type Header = Record<string, unknown>;

/** A valid file: its header (as an object and as written) and data region. `data` is absent for
 *  golden shards, whose content does not matter here: their data region is written sparse. */
interface Base {
  name: string;
  header: Header;
  text: string;
  dataBytes: number;
  data?: Uint8Array;
}

/** What to write: the first bytes, then (optionally) data, then the file is cut or extended to `size`. */
interface Mutant {
  what: string;
  prefix: Uint8Array;
  data?: Uint8Array;
  size: number;
  /** Whether the native range checks alone must refuse it (default: by kind, see NATIVE_CHECKED). */
  native?: boolean;
}

function prefixOf(text: string | Uint8Array, lengthField?: bigint): Uint8Array {
  const body = typeof text === 'string' ? new TextEncoder().encode(text) : text;
  const p = new Uint8Array(8 + body.length);
  new DataView(p.buffer).setBigUint64(0, lengthField ?? BigInt(body.length), true);
  p.set(body, 8);
  return p;
}

function goldenBase(path: string): Base {
  const b = readFileSync(path);
  const n = Number(b.readBigUInt64LE(0));
  const text = b.subarray(8, 8 + n).toString('latin1');
  return { name: path, header: JSON.parse(text), text, dataBytes: b.length - 8 - n };
}

/** 2 to 8 tensors of random dtype and shape laid out back to back; the last one is never empty. */
function generatedBase(r: Rng): Base {
  const names = Object.keys(ST_BYTES);
  const count = r.int(2, 9);
  const header: Header = r.next() < 0.5 ? { __metadata__: { format: 'pt' } } : {};
  let at = 0;
  for (let i = 0; i < count; ++i) {
    const dtype = names[r.int(0, names.length)];
    const last = i === count - 1 || i === 0;
    const shape = Array.from({ length: r.int(last ? 1 : 0, 4) }, () => r.int(last ? 1 : 0, 10));
    const n = shape.reduce((a, d) => a * d, ST_BYTES[dtype]);
    header[`model.layers.${i}.w${r.int(0, 100)}.weight`] = { dtype, shape, data_offsets: [at, at + n] };
    at += n;
  }
  const data = new Uint8Array(at);
  for (let i = 0; i < at; ++i) data[i] = r.int(0, 256);
  return { name: 'generated', header, text: JSON.stringify(header), dataBytes: at, data };
}

const tensorNames = (h: Header) => Object.keys(h).filter((k) => k !== '__metadata__');
const entryOf = (h: Header, name: string) => h[name] as Entry;
const lengthOf = (e: Entry) => (e.data_offsets as number[])[1] - (e.data_offsets as number[])[0];
const pick = <T>(r: Rng, a: readonly T[]): T => a[r.int(0, a.length)];

/** A mutant whose header is `h` re-serialised (padded to 8) over the base's data region. */
function withHeader(base: Base, what: string, h: Header | string): Mutant {
  let text = typeof h === 'string' ? h : JSON.stringify(h);
  if (typeof h !== 'string') text = text.padEnd(Math.ceil(text.length / 8) * 8, ' ');
  const prefix = prefixOf(text);
  return { what, prefix, data: base.data, size: prefix.length + base.dataBytes };
}

type Generator = (r: Rng, base: Base) => Mutant;

const BAD_DTYPES: unknown[] = ['F64', 'BOOL', 'I8', 'I16', 'U16', 'U32', 'U64', 'F8_E5M2', 'F8_E8M0', 'bf16', 'f32', '', 'BF16 ', 5, null, ['BF16'], { dtype: 'BF16' }];
const BAD_SHAPES: unknown[] = [[2.5], ['4'], [null], [[4]], '4', 4, {}, null, [-3], [1e300], [2 ** 53], [1, -1], [true]];
const BAD_OFFSET_VALUES: unknown[] = [null, 'x', {}, [], [0], [0, 1, 2], ['0', '8'], [true, 8], [0.5, 8], [2 ** 53, 2 ** 53 + 8], [1e20, 1e20]];
const INVALID_JSON = ['', ' ', '{', '}', '{"a"}', '{"a":}', '{"a":1,}', "{'a':1}", '{"a":NaN}', '{"a":Infinity}', '{"a":01}', '{"a":1}}', '{"a":[1,]}', '{,}', '{"a":"\\x41"}', '\ufeff{}', '{"a":1}x', '/* */{}'];
const NOT_OBJECTS = ['[]', '[{}]', 'null', 'true', '42', '"str"', '{"w":1}', '{"w":"BF16"}', '{"w":[1,2]}', '{"w":null}', '{"__metadata__":5}', '{"__metadata__":{"a":1}}', '{"__metadata__":{"a":null}}', '{"__metadata__":[]}'];
const BAD_UTF8 = [[0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf5, 0x80, 0x80, 0x80], [0xe2, 0x82], [0xff], [0x80], [0xf0, 0x9f, 0x98]];
const STRUCTURAL = new Set('{}[]:,"'.split('').map((c) => c.charCodeAt(0)));

const generators: Record<string, Generator> = {
  // Cut anywhere before the end: in the length field, the header, or the data (whose last tensor
  // ends at the end of the file and is not empty, so some range then lies past the data region).
  truncate(r, base) {
    const full = prefixOf(base.text).length + base.dataBytes;
    const size = r.next() < 0.3 ? r.int(0, 8 + base.text.length) : r.int(0, full);
    return { what: `truncated to ${size} of ${full} bytes`, prefix: prefixOf(base.text), data: base.data, size };
  },
  // Header lengths past the file, "negative" (top bit set), over 100 MiB, or cut before the closing
  // brace (never valid JSON); a longer one takes data bytes into the header (invalid JSON, or else a
  // data region too short for the last tensor).
  headerLength(r, base) {
    const body = new TextEncoder().encode(base.text);
    const room = body.length + base.dataBytes;
    const lastBrace = base.text.lastIndexOf('}');
    const choices: [string, bigint][] = [
      ['past the file', BigInt(room + r.int(1, 1000))],
      ['negative', (1n << 63n) + BigInt(r.int(0, 1 << 30))],
      ['all ones', (1n << 64n) - 1n],
      ['huge', BigInt(r.int(1, 1 << 30)) * (1n << 32n)],
      ['cut before the closing brace', BigInt(r.int(0, lastBrace + 1))],
      ['longer into the data', BigInt(body.length + r.int(1, Math.max(2, base.dataBytes + 1)))],
    ];
    const [why, n] = pick(r, choices);
    if (why === 'longer into the data' && n > BigInt(room)) return this.headerLength(r, base);
    const prefix = prefixOf(body, n);
    return { what: `header length ${n} (${why})`, prefix, data: base.data, size: prefix.length + base.dataBytes };
  },
  // A header over 100 MiB in a file big enough for it (sparse).
  hugeHeader(r, base) {
    const n = 100 * 1024 * 1024 + r.int(1, 1 << 20);
    const prefix = prefixOf(base.text, BigInt(n));
    return { what: `header length ${n} (over 100 MiB)`, prefix, size: 8 + n + r.int(0, 64) };
  },
  // Bit 7 flipped, or a control character, at 1 to 4 non-adjacent places of an ASCII header: a lone
  // byte >= 0x80 between ASCII bytes is never UTF-8, and a control character is never JSON.
  flipBytes(r, base) {
    const body = new TextEncoder().encode(base.text);
    expect(body.every((b) => b < 0x80)).toBe(true);
    const end = base.text.lastIndexOf('}') + 1;
    const at = new Set<number>();
    for (let k = r.int(1, 5); at.size < k; ) {
      const i = r.int(0, end);
      if (!at.has(i - 1) && !at.has(i + 1)) at.add(i);
    }
    const controls = [0, 1, 2, 7, 8, 11, 12, 14, 27, 31];
    for (const i of at) body[i] = r.next() < 0.6 ? body[i] ^ 0x80 : pick(r, controls);
    const prefix = prefixOf(body);
    return { what: `header bytes changed at ${[...at].join(', ')}`, prefix, data: base.data, size: prefix.length + base.dataBytes };
  },
  // One structural character removed ({}[] unbalance, a lost " leaves an odd count, a lost : or a
  // comma before a key or value joins two values), or text that is not JSON or not an object of objects.
  invalidJson(r, base) {
    const kind = r.int(0, 3);
    if (kind === 0) {
      const body = new TextEncoder().encode(base.text);
      const at: number[] = [];
      // (Not a comma between two numbers: [4,0,0] -> [40,0] is still a valid empty shape.)
      body.forEach((b, i) => STRUCTURAL.has(b) && !(b === 0x2c && body[i + 1] >= 0x30 && body[i + 1] <= 0x39) && at.push(i));
      const i = pick(r, at);
      const text = base.text.slice(0, i) + base.text.slice(i + 1);
      return withHeader(base, `structural '${base.text[i]}' at ${i} removed`, text);
    }
    const text = pick(r, kind === 1 ? INVALID_JSON : NOT_OBJECTS);
    return withHeader(base, `header ${JSON.stringify(text)}`, text);
  },
  // Invalid UTF-8 inside a tensor name.
  badUtf8(r, base) {
    const seq = pick(r, BAD_UTF8);
    const name = pick(r, tensorNames(base.header));
    const i = base.text.indexOf(`"${name}"`) + 1 + r.int(0, name.length + 1);
    const head = new TextEncoder().encode(base.text.slice(0, i));
    const tail = new TextEncoder().encode(base.text.slice(i));
    const body = new Uint8Array([...head, ...seq, ...tail]);
    const prefix = prefixOf(body);
    return { what: `bytes ${seq.map((b) => b.toString(16))} in '${name}'`, prefix, data: base.data, size: prefix.length + base.dataBytes };
  },
  // Offsets that are not two non-negative safe integers.
  badOffsetValues(r, base) {
    const h = structuredClone(base.header);
    const name = pick(r, tensorNames(h));
    const e = entryOf(h, name);
    const [b, en] = e.data_offsets as number[];
    const v = pick(r, [...BAD_OFFSET_VALUES, [-1, en], [b, -1], [b + 0.5, en + 0.5], [b - 2 ** 60, en]]);
    if (r.next() < 0.1) delete (e as Partial<Entry>).data_offsets;
    else e.data_offsets = v;
    // A pair of bad values is refused natively too; a list of 3 holds a valid [begin, end] first.
    const native = Array.isArray(e.data_offsets) && e.data_offsets.length === 2;
    return { ...withHeader(base, `'${name}' data_offsets ${JSON.stringify(e.data_offsets)}`, h), native };
  },
  // end < begin, a range moved past the end, or a length off by one.
  badRanges(r, base) {
    const h = structuredClone(base.header);
    const names = tensorNames(h).filter((n) => lengthOf(entryOf(h, n)) > 0);
    const name = pick(r, names);
    const e = entryOf(h, name);
    const [b, en] = e.data_offsets as number[];
    const kind = r.int(0, 4);
    if (kind === 0) e.data_offsets = [en, b];
    else if (kind === 1) e.data_offsets = [b + base.dataBytes, en + base.dataBytes];
    else if (kind === 2) e.data_offsets = [b, en + (r.next() < 0.5 ? 1 : -1)];
    else e.data_offsets = [b, base.dataBytes + r.int(1, 100)];
    return withHeader(base, `'${name}' data_offsets [${b}, ${en}] -> ${JSON.stringify(e.data_offsets)}`, h);
  },
  // Two non-empty tensors made to share bytes (or, where the moved one no longer fits, past the end).
  overlap(r, base) {
    const h = structuredClone(base.header);
    const names = tensorNames(h).filter((n) => lengthOf(entryOf(h, n)) > 0);
    const a = pick(r, names);
    let b = pick(r, names);
    while (b === a) b = pick(r, names);
    const ea = entryOf(h, a);
    const eb = entryOf(h, b);
    const start = (ea.data_offsets as number[])[0] + r.int(0, lengthOf(ea));
    eb.data_offsets = [start, start + lengthOf(eb)];
    return withHeader(base, `'${b}' moved to ${start}, into '${a}'`, h);
  },
  // Unsupported or ill-typed dtypes.
  badDtype(r, base) {
    const h = structuredClone(base.header);
    const name = pick(r, tensorNames(h));
    const e = entryOf(h, name);
    if (r.next() < 0.1) delete (e as Partial<Entry>).dtype;
    else e.dtype = pick(r, BAD_DTYPES);
    return withHeader(base, `'${name}' dtype ${JSON.stringify(e.dtype)}`, h);
  },
  // A shape whose element count no longer matches the byte length (numel > 0 before).
  shapeMismatch(r, base) {
    const h = structuredClone(base.header);
    const names = tensorNames(h).filter((n) => lengthOf(entryOf(h, n)) > 0 && (entryOf(h, n).shape as number[]).length > 0);
    const name = pick(r, names);
    const e = entryOf(h, name);
    const shape = [...(e.shape as number[])];
    const kind = r.int(0, 4);
    const i = r.int(0, shape.length);
    if (kind === 0) shape[i] += 1;
    else if (kind === 1) shape[i] *= 3;
    else if (kind === 2) shape.push(r.int(2, 5));
    else shape[i] = 0;
    e.shape = shape;
    return withHeader(base, `'${name}' shape ${JSON.stringify(shape)}`, h);
  },
  // Shapes that are not arrays of non-negative safe integers.
  badShape(r, base) {
    const h = structuredClone(base.header);
    const name = pick(r, tensorNames(h));
    const e = entryOf(h, name);
    if (r.next() < 0.1) delete (e as Partial<Entry>).shape;
    else e.shape = pick(r, BAD_SHAPES);
    return withHeader(base, `'${name}' shape ${JSON.stringify(e.shape)}`, h);
  },
  // Entries that are not objects, and bad __metadata__.
  badEntry(r, base) {
    const h = structuredClone(base.header);
    if (r.next() < 0.5) {
      const name = pick(r, tensorNames(h));
      h[name] = pick(r, [1, 'BF16', null, [1, 2], true]);
      return withHeader(base, `'${name}' entry ${JSON.stringify(h[name])}`, h);
    }
    h.__metadata__ = pick(r, [5, 'pt', null, [], { format: 1 }, { format: null }, { a: 'b', c: { d: 'e' } }]);
    return withHeader(base, `__metadata__ ${JSON.stringify(h.__metadata__)}`, h);
  },
  // Files shorter than the length field, and random bytes whose header never starts with '{'.
  garbage(r) {
    if (r.next() < 0.4) {
      const size = r.int(0, 8);
      return { what: `${size}-byte file`, prefix: new Uint8Array(size).map(() => r.int(0, 256)), size };
    }
    const size = r.int(8, 200);
    const bytes = new Uint8Array(size).map(() => r.int(0, 256));
    const n = r.int(0, size - 7);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(n), true);
    if (n > 0) bytes[8] = pick(r, [0x00, 0x5b, 0x22, 0x31, 0x80, 0xff, 0x7d]); // never '{' or whitespace
    return { what: `${size} random bytes, header length ${n}`, prefix: bytes, size };
  },
};

function write(path: string, m: Mutant): void {
  const fd = openSync(path, 'w');
  try {
    writeAll(fd, m.prefix.subarray(0, Math.min(m.prefix.length, m.size)));
    if (m.data && m.size > m.prefix.length) writeAll(fd, m.data.subarray(0, m.size - m.prefix.length));
  } finally {
    closeSync(fd);
  }
  truncateSync(path, m.size); // cuts, or extends with a sparse zero-filled tail
}

/** How the loader rejected `path`: 'open' or 'tensor'; throws when it accepted the file. */
function rejection(path: string): { stage: 'open' | 'tensor'; error: unknown } | undefined {
  let f;
  try {
    f = openSafetensors(path);
  } catch (error) {
    return { stage: 'open', error };
  }
  try {
    for (const name of f.tensors.keys()) f.tensor(name).dispose();
  } catch (error) {
    return { stage: 'tensor', error };
  } finally {
    f.close();
  }
  return undefined;
}

/**
 * The native layer alone, handed the header's raw values as if the TypeScript checks had missed
 * them: true when it refuses some tensor (or the file), false when it accepts every one, and
 * undefined when the header is not JSON (nothing to hand over).
 */
function nativeRejects(path: string): boolean | undefined {
  let opened: { handle: unknown; header: Uint8Array };
  try {
    opened = native().ops.safetensorsOpen(path);
  } catch {
    return true;
  }
  try {
    let h: Header;
    try {
      h = JSON.parse(Buffer.from(opened.header).toString('utf8'));
    } catch {
      return undefined;
    }
    if (typeof h !== 'object' || h === null) return undefined;
    for (const [name, e] of Object.entries(h)) {
      if (name === '__metadata__' || typeof e !== 'object' || e === null) continue;
      const { dtype, shape, data_offsets: off } = e as Entry;
      const dt = typeof dtype === 'string' ? SAFETENSORS_DTYPES[dtype] : undefined;
      if (!dt) continue;
      const [b, en] = Array.isArray(off) ? off : [undefined, undefined];
      try {
        native().ops.safetensorsTensor(opened.handle, name, dt, shape, b, en, 'cpu').dispose();
      } catch (err) {
        expect((err as Error).message).toMatch(new RegExp(`^(safetensorsTensor: |${path}: tensor )`));
        return true;
      }
    }
    return false;
  } finally {
    native().ops.safetensorsClose(opened.handle);
  }
}

/** Mutations the native range checks catch by themselves. */
const NATIVE_CHECKED = new Set(['truncate', 'headerLength', 'hugeHeader', 'badRanges', 'shapeMismatch', 'badOffsetValues']);

describe('safetensors fuzz', () => {
  const seed = Number(process.env.FUZZ_SEED ?? rng().seed);
  it(`rejects ${CASES} mutated files with an Error naming the file (seed ${seed})`, () => {
    const r = rng(seed);
    const golden = SHARDS.map(goldenBase);
    const kinds = Object.keys(generators);
    const counts: Record<string, number> = {};
    let nativeChecked = 0;
    // The unmutated bases load: each rejection below is the mutation's doing.
    for (const base of golden) expect(rejection(base.name)).toBeUndefined();
    for (let i = 0; i < CASES; ++i) {
      const fromGolden = i % 5 < 2;
      const base = fromGolden ? golden[r.int(0, golden.length)] : generatedBase(r);
      const path = join(tmp, `case-${i}.safetensors`);
      if (!fromGolden) {
        write(path, { what: 'base', prefix: prefixOf(base.text), data: base.data, size: 8 + base.text.length + base.dataBytes });
        expect(rejection(path), `generated base ${base.text}`).toBeUndefined();
      }
      const kind = kinds[i % kinds.length];
      const m = generators[kind](r, base);
      write(path, m);
      const how = rejection(path);
      const where = `case ${i} (${kind}, ${fromGolden ? base.name : 'generated'}): ${m.what}`;
      expect(how, `${where} was accepted`).toBeDefined();
      expect(how!.error, where).toBeInstanceOf(Error);
      expect((how!.error as Error).message.startsWith(`${path}: `), `${where}: ${(how!.error as Error).message}`).toBe(true);
      counts[`${kind}/${how!.stage}`] = (counts[`${kind}/${how!.stage}`] ?? 0) + 1;
      // Without the TypeScript checks, the native side still refuses every bad range.
      const alone = nativeRejects(path);
      if ((m.native ?? NATIVE_CHECKED.has(kind)) && alone !== undefined) {
        expect(alone, `${where}: accepted by the native layer alone`).toBe(true);
        nativeChecked += 1;
      }
      rmSync(path);
    }
    expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(CASES);
    for (const kind of kinds) expect(Object.keys(counts).some((k) => k.startsWith(`${kind}/`))).toBe(true);
    expect(nativeChecked).toBeGreaterThan(300);
    console.log(`fuzz seed ${seed}:`, counts, `native layer alone refused ${nativeChecked}`);
  });

});
