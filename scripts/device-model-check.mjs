// The model on a GPU against DeepSeek's golden logits (plain Node, no vitest; the device check runs
// it after the op check): the golden runs of tiny-dense and tiny-sparse (prompts prefilled as one
// batch, then one decode step per `then`) in f32 and bf16 activations on the device, each row's
// relative L2 distance to the reference's logits, and the bounds of test/model/golden.test.ts (the
// CUDA ones: tiny-sparse's f32 rows are looser because the CUDA topK breaks ties among DSA scores by
// another rule than torch's CPU order; the numbers in GOLDEN_DIR/f32-bounds.json). Then decode steps
// replayed as CUDA graphs against the same steps run eagerly. Prints one line per check, then
// "N passed, N failed"; exits 1 on a failure.
//
//   DEEPSEEK_NATIVE_BUILD=cuda node scripts/device-model-check.mjs GOLDEN_DIR [--device cuda:0]
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { loadModel } from '../dist/lib/index.js';

const golden = process.argv[2];
const at = process.argv.indexOf('--device');
const device = at > 0 ? process.argv[at + 1] : 'cuda:0';

function relL2(a, b) {
  let num = 0, den = 0;
  for (let i = 0; i < b.length; ++i) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
}
const median = (xs) => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)];

/** Per row: our relative L2 distance to `want` ('logits_f32' | 'logits_bf16'), and the reference's own f32-vs-bf16 gap. */
async function rows(model, runs, want) {
  const out = [];
  for (const run of runs) {
    const seqs = run.prompts.map(() => model.createSequence());
    const steps = [await model.forward(run.prompts.map((tokens, i) => ({ sequence: seqs[i], tokens })))];
    for (const ids of run.then) steps.push(await model.forward(ids.map((id, i) => ({ sequence: seqs[i], tokens: [id] }))));
    for (const s of seqs) s.dispose();
    steps.forEach((r, s) => r.forEach((row, k) => out.push({ ours: relL2(row, run[want][s][k]), ref: relL2(run.logits_f32[s][k], run.logits_bf16[s][k]) })));
  }
  return out;
}

// The golden test's CUDA bounds, from the file it reads them from: beside the checkpoints in the
// device bundle, else in this checkout's test/golden (a golden folder from elsewhere has none).
const boundsFile = [join(golden, 'f32-bounds.json'), join(import.meta.dirname, '..', 'test', 'golden', 'f32-bounds.json')].find((f) => existsSync(f));
if (!boundsFile) throw new Error(`device-model-check: no f32-bounds.json in ${golden} or test/golden`);
const F32 = JSON.parse(readFileSync(boundsFile, 'utf8')).cuda;
let passed = 0, failed = 0;
for (const name of ['tiny-dense', 'tiny-sparse']) {
  const { runs } = JSON.parse(readFileSync(join(golden, `${name}.v32.logits.json`), 'utf8'));
  for (const act of ['f32', 'bf16']) {
    const t0 = performance.now();
    const model = await loadModel(join(golden, name), { device, activations: act, maxSequences: 4, maxContext: 192 });
    const r = await rows(model, runs, act === 'f32' ? 'logits_f32' : 'logits_bf16');
    await model.dispose();
    const ours = r.map((x) => x.ours);
    const mean = (xs) => xs.reduce((p, q) => p + q, 0) / xs.length;
    let ok, what;
    if (act === 'f32') {
      const b = F32[name], exact = ours.filter((e) => e < 1e-4).length / ours.length;
      ok = median(ours) < b.median && exact >= b.exactShare && Math.max(...ours) < b.maxRow;
      what = `median ${median(ours).toExponential(2)} (< ${b.median}), ${(exact * 100).toFixed(1)} % < 1e-4 (>= ${b.exactShare * 100} %), max ${Math.max(...ours).toExponential(2)} (< ${b.maxRow})`;
    } else {
      // As the golden test's f32-scores case: no further from logits_bf16 than the reference's f32 run, summed over the rows.
      ok = mean(ours) <= mean(r.map((x) => x.ref));
      what = `mean ${mean(ours).toFixed(4)} (reference f32 vs bf16: ${mean(r.map((x) => x.ref)).toFixed(4)})`;
    }
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${name} ${act} on ${device}: ${r.length} rows, ${what}, ${((performance.now() - t0) / 1e3).toFixed(1)} s`);
    if (ok) passed++;
    else failed++;
  }
}
// Decode steps replayed as CUDA graphs (the default) against the same steps run eagerly: tiny-sparse
// in f32, two sequences whose decode crosses a graph's key capacity (64 -> 128 keys). (The CPU has
// no graphs: run with --device cpu, the script checks only the golden logits.)
if (device !== 'cpu') {
  const t0 = performance.now();
  const opts = { device, activations: 'f32', maxSequences: 2, maxContext: 256 };
  const graphed = await loadModel(join(golden, 'tiny-sparse'), opts);
  const eager = await loadModel(join(golden, 'tiny-sparse'), { ...opts, decodeGraphs: false });
  const prompts = [Array.from({ length: 57 }, (_, j) => (j * 37 + 5) % 512), Array.from({ length: 12 }, (_, j) => (j * 53 + 9) % 512)];
  const gs = prompts.map(() => graphed.createSequence()), es = prompts.map(() => eager.createSequence());
  await graphed.forward(prompts.map((tokens, i) => ({ sequence: gs[i], tokens })));
  await eager.forward(prompts.map((tokens, i) => ({ sequence: es[i], tokens })));
  let worst = 0;
  for (let step = 0; step < 10; ++step) {
    const g = await graphed.forward(gs.map((sequence, i) => ({ sequence, tokens: [(step * 31 + i * 7) % 512] })));
    const e = await eager.forward(es.map((sequence, i) => ({ sequence, tokens: [(step * 31 + i * 7) % 512] })));
    for (let i = 0; i < 2; ++i) worst = Math.max(worst, relL2(g[i], e[i]));
  }
  const stats = graphed.decodeGraphStats;
  await graphed.dispose();
  await eager.dispose();
  const ok = worst < 1e-5 && stats.captures === 2 && stats.replays === 10;
  console.log(`${ok ? 'ok  ' : 'FAIL'} decode graphs on ${device}: 10 replayed steps vs eager, worst rel L2 ${worst.toExponential(2)} (< 1e-5), ${JSON.stringify(stats)}, ${((performance.now() - t0) / 1e3).toFixed(1)} s`);
  if (ok) passed++;
  else failed++;
}
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed ? 1 : 0;
