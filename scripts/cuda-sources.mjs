// What a cmake-js build depends on for its configuration: CMakeLists.txt and the list of source
// files it globs (native/**.cc, cuda/*.cu). A change means `cmake-js configure` must run again.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const DIRS = ['native', 'native/runtime', 'native/ops', 'native/cpu', 'native/io', 'cuda'];

/** The sorted source list, one path a line. */
export function sourceList(root) {
  const out = [];
  for (const dir of DIRS) {
    const abs = join(root, dir);
    if (!existsSync(abs)) continue;
    for (const f of readdirSync(abs).sort()) if (f.endsWith('.cc') || f.endsWith('.cu')) out.push(`${dir}/${f}`);
  }
  return out;
}

/** A hash of CMakeLists.txt and the source list. */
export function sourceStamp(root) {
  const h = createHash('sha256');
  const cmake = join(root, 'CMakeLists.txt');
  h.update(existsSync(cmake) ? readFileSync(cmake) : '');
  h.update('\0' + sourceList(root).join('\n'));
  return h.digest('hex');
}
