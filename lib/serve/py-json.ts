/**
 * JSON written as Python's `json.dumps(value, ensure_ascii=False)` writes it (", " and ": "
 * separators, non-ASCII kept, floats in Python's repr), so prompts match DeepSeek's own encoder
 * character for character. `parsePyJson` reads JSON keeping what `JSON.parse` loses and Python keeps:
 * whether a number was written as an int or a float, big ints' digits, and key order.
 */

/** A number as Python holds it after `json.loads`: an int (exact digits) or a float. */
export class PyNumber {
  constructor(readonly text: string, readonly isFloat: boolean) {}
}

/** A JSON value as `json.loads` gives it: objects keep their key order (integer-like keys included). */
export type PyValue = null | boolean | string | number | PyNumber | PyValue[] | PyObject;
export class PyObject {
  constructor(readonly entries: [string, PyValue][]) {}
}

/** Python's `repr(float)`: shortest round-trip digits, exponent form below 1e-4 and from 1e16. */
export function pyFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return 'Infinity';
  if (x === -Infinity) return '-Infinity';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const [mant, expText] = x.toExponential().split('e'); // shortest digits: "-1.2345e+3"
  const exp = Number(expText);
  const neg = mant.startsWith('-');
  const digits = mant.replace('-', '').replace('.', '');
  const sign = neg ? '-' : '';
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const e = Math.abs(exp).toString().padStart(2, '0');
    return `${sign}${m}e${exp < 0 ? '-' : '+'}${e}`;
  }
  if (exp < 0) return `${sign}0.${'0'.repeat(-exp - 1)}${digits}`;
  const intPart = digits.slice(0, exp + 1).padEnd(exp + 1, '0');
  const frac = digits.slice(exp + 1);
  return `${sign}${intPart}.${frac || '0'}`;
}

function dumpString(s: string): string {
  // JSON.stringify escapes what json.dumps(ensure_ascii=False) escapes (quote, backslash, controls
  // as \n \t … or \u00XX), except that it writes lone surrogates as \udXXX where Python keeps them.
  return JSON.stringify(s);
}

/** `json.dumps(value, ensure_ascii=False)` of a parsed (`PyValue`) or plain JavaScript value. */
export function pyJsonDumps(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (value === true) return 'true';
  if (value === false) return 'false';
  if (typeof value === 'string') return dumpString(value);
  if (typeof value === 'number') return Number.isInteger(value) && Math.abs(value) < 2 ** 53 ? String(value) : pyFloatRepr(value);
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof PyNumber) return value.isFloat ? pyFloatRepr(Number(value.text)) : BigInt(value.text).toString();
  if (Array.isArray(value)) return `[${value.map(pyJsonDumps).join(', ')}]`;
  if (value instanceof PyObject) return `{${value.entries.map(([k, v]) => `${dumpString(k)}: ${pyJsonDumps(v)}`).join(', ')}}`;
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    return `{${entries.map(([k, v]) => `${dumpString(k)}: ${pyJsonDumps(v)}`).join(', ')}}`;
  }
  throw new TypeError(`cannot write a value of type ${typeof value} as JSON`);
}

/** Parses JSON text into `PyValue`s (numbers as `PyNumber`, objects as ordered `PyObject`). */
export function parsePyJson(text: string): PyValue {
  let i = 0;
  const fail = (what: string): never => {
    throw new SyntaxError(`invalid JSON at position ${i}: ${what}`);
  };
  const ws = (): void => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) ++i;
  };
  const value = (): PyValue => {
    ws();
    const c = text[i];
    if (c === '{') {
      ++i;
      const entries: [string, PyValue][] = [];
      ws();
      if (text[i] === '}') {
        ++i;
        return new PyObject(entries);
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('expected a key');
        const k = str();
        ws();
        if (text[i++] !== ':') fail("expected ':'");
        const v = value();
        const at = entries.findIndex(([key]) => key === k);
        if (at >= 0) entries[at][1] = v; // json.loads keeps the last value, at the first key's place
        else entries.push([k, v]);
        ws();
        if (text[i] === ',') ++i;
        else if (text[i] === '}') {
          ++i;
          return new PyObject(entries);
        } else fail("expected ',' or '}'");
      }
    }
    if (c === '[') {
      ++i;
      const items: PyValue[] = [];
      ws();
      if (text[i] === ']') {
        ++i;
        return items;
      }
      for (;;) {
        items.push(value());
        ws();
        if (text[i] === ',') ++i;
        else if (text[i] === ']') {
          ++i;
          return items;
        } else fail("expected ',' or ']'");
      }
    }
    if (c === '"') return str();
    if (text.startsWith('true', i)) return (i += 4), true;
    if (text.startsWith('false', i)) return (i += 5), false;
    if (text.startsWith('null', i)) return (i += 4), null;
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
    if (!m) return fail('unexpected character');
    i += m[0].length;
    return new PyNumber(m[0], m[2] !== undefined || m[3] !== undefined);
  };
  const str = (): string => {
    const m = /^"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/.exec(text.slice(i));
    if (!m) return fail('bad string');
    i += m[0].length;
    return JSON.parse(m[0]) as string;
  };
  const v = value();
  ws();
  if (i !== text.length) fail('extra data');
  return v;
}
