/** Errors of the public API, and the one helper that words argument errors. */

/** Thrown when a disposed tensor, model or sequence is used. */
export class DisposedError extends Error {
  override name = 'DisposedError';
}

/** Thrown when no build of the native addon can be loaded. */
export class AddonLoadError extends Error {
  override name = 'AddonLoadError';
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  if (typeof value === 'string') return `'${value}' of type string`;
  if (typeof value === 'object') return `an object (${(value as object).constructor?.name ?? 'Object'})`;
  return `${String(value)} of type ${typeof value}`;
}

/** "Expected <what> for <name> but received <value>", as a TypeError (or RangeError). */
export function invalidArgument(where: string, name: string, what: string, value: unknown, range = false): Error {
  const message = `${where}: expected ${what} for ${name} but received ${describe(value)}`;
  return range ? new RangeError(message) : new TypeError(message);
}

export function isPositiveInteger(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v > 0;
}

export function isNonNegativeInteger(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0;
}

/** An object that is not null and not an array (a parsed JSON object, an options bag). */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
