#!/usr/bin/env node
// cuda-emu: turns a .cu file into host C++ for g++ (the cuda-emu build runs it on every cuda/*.cu).
// Only what the preprocessor cannot do, line for line (a #line directive keeps errors and
// debuggers on the original file):
//   kernel<<<grid, block[, smem[, stream]]>>>(args)  ->  ::cuda_emu::launch(kernel, "kernel", grid, block, ...)(args)
//   __shared__ T name[N]...;                         ->  a per-block allocation in the emulated shared memory
//   extern __shared__ T name[];                      ->  T* const name = the block's dynamic shared memory
// Usage: node rewrite.cjs in.cu out.cc
'use strict';
const fs = require('node:fs');
const path = require('node:path');

function rewrite(src, file) {
  let out = src;
  let tag = 0;
  // extern __shared__ [__align__(N)] T name[];
  out = out.replace(/extern\s+__shared__\s+((?:__align__\s*\(\s*\d+\s*\)\s*|alignas\s*\(\s*\d+\s*\)\s*)?)([A-Za-z_][\w:<>, ]*?)\s+(\w+)\s*\[\s*\]\s*;/g,
    (_m, _align, type, name) => `${type}* const ${name} = static_cast<${type}*>(::cuda_emu::dynamicShared());`);
  // __shared__ [__align__(N)] T name[dims];  (in a function body)
  out = out.replace(/__shared__\s+((?:__align__\s*\(\s*(\d+)\s*\)\s*|alignas\s*\(\s*(\d+)\s*\)\s*)?)([A-Za-z_][\w:<>, ]*?)\s+(\w+)\s*((?:\[[^\];]+\]\s*)*);/g,
    (_m, _a, al1, al2, type, name, dims) => {
      const align = al1 || al2 || '16';
      const t = `${type}${dims.replace(/\s+/g, '')}`;
      const id = `dsn_emu_shared_${name}_${tag++}`;
      return `static const char ${id} = 0; auto& ${name} = ::cuda_emu::sharedVar<${t}>(&${id}, ${align});`;
    });
  // name[<template args>]<<<config>>>(
  out = out.replace(/([A-Za-z_][\w:]*(?:\s*<(?!<)(?:[^<>;]|<[^<>;]*>)*>)?)\s*<<<([\s\S]*?)>>>\s*\(/g,
    (_m, name, cfg) => `::cuda_emu::launch(${name}, ${JSON.stringify(name.replace(/\s+/g, ' '))}, ${cfg})(`);
  return `#line 1 ${JSON.stringify(file)}\n${out}`;
}

if (require.main === module) {
  const [input, output] = process.argv.slice(2);
  if (!input || !output) {
    console.error('usage: node rewrite.cjs in.cu out.cc');
    process.exit(2);
  }
  const text = rewrite(fs.readFileSync(input, 'utf8'), path.resolve(input));
  fs.mkdirSync(path.dirname(output), { recursive: true });
  if (!fs.existsSync(output) || fs.readFileSync(output, 'utf8') !== text) fs.writeFileSync(output, text);
}

module.exports = { rewrite };
