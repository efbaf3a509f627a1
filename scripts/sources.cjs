// Lists the addon's C++ sources for binding.gyp (CPU build): everything under native/ except the
// CUDA glue, so a new op file needs no build-file edit. CMakeLists.txt globs the same set.
const fs = require('node:fs');
const path = require('node:path');
const root = path.join(__dirname, '..');
const out = [];
for (const dir of ['native', 'native/runtime', 'native/ops', 'native/cpu', 'native/io']) {
  const abs = path.join(root, dir);
  if (!fs.existsSync(abs)) continue;
  for (const f of fs.readdirSync(abs).sort())
    if (f.endsWith('.cc') && !f.startsWith('cuda_')) out.push(`${dir}/${f}`);
}
console.log(out.join(' '));
