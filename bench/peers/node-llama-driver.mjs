/*
 * Peer for the end-to-end benchmark: llama.cpp through node-llama-cpp (what a Node user would
 * pick), its prebuilt CPU binaries. The same protocol as llama-driver.c, so bench/peers/llama.ts
 * drives both alike: one command a line on stdin, one JSON line on stdout per command.
 *
 * usage: node node-llama-driver.mjs NODE_LLAMA_CPP_DIR MODEL.gguf THREADS N_CTX N_SEQ
 *   prefill N SALT      a fresh sequence of N tokens, timed (evaluateWithoutGeneratingNewTokens)
 *   decode B P S SALT   B fresh sequences of P tokens, then S greedy steps each (evaluate with
 *                       temperature 0, not stopping at EOS; the B sequences' steps batched by
 *                       node-llama-cpp), the S
 *                       steps timed
 * Prompt token ids are (j·7 + i·13 + SALT) mod n_vocab, as llama-driver.c makes them.
 */
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [pkgDir, modelPath, threadsArg, nCtxArg, nSeqArg] = process.argv.slice(2);
const threads = Number(threadsArg), nCtx = Number(nCtxArg), nSeq = Number(nSeqArg);
const reply = (o) => process.stdout.write(JSON.stringify(o) + '\n');

try {
  const { getLlama, LlamaLogLevel } = await import(pathToFileURL(join(pkgDir, 'dist', 'index.js')).href);
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error, maxThreads: threads, progressLogs: false });
  const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
  const context = await model.createContext({ contextSize: nCtx, sequences: nSeq, batchSize: 512, threads: { ideal: threads, min: threads } });
  const meta = model.fileInfo.metadata;
  const nVocab = Number(meta[meta.general.architecture]?.vocab_size);
  if (!(nVocab > 0)) throw new Error(`${modelPath}: no ${meta.general.architecture}.vocab_size in the metadata`);
  const prompt = (n, i, salt) => Array.from({ length: n }, (_, j) => (j * 7 + i * 13 + salt) % nVocab);
  reply({ ready: true, vocab: nVocab, threads, nCtx: context.contextSize, buildType: llama.buildType, gpu: llama.gpu });

  for await (const line of createInterface({ input: process.stdin })) {
    const [op, ...args] = line.trim().split(/\s+/);
    const nums = args.map(Number);
    if (op === 'prefill') {
      const [n, salt] = nums;
      const seq = context.getSequence();
      const t0 = performance.now();
      await seq.evaluateWithoutGeneratingNewTokens(prompt(n, 0, salt));
      const s = (performance.now() - t0) / 1e3;
      seq.dispose();
      reply({ op, tokens: n, seconds: s, tokensPerSecond: n / s });
    } else if (op === 'decode') {
      const [b, p, steps, salt] = nums;
      const seqs = Array.from({ length: b }, () => context.getSequence());
      const gens = seqs.map((seq, i) => seq.evaluate(prompt(p, i, salt), { temperature: 0, yieldEogToken: true }));
      await Promise.all(gens.map((g) => g.next())); // the prompts, and each sequence's first token
      const t0 = performance.now();
      for (let step = 0; step < steps; ++step) await Promise.all(gens.map((g) => g.next()));
      const s = (performance.now() - t0) / 1e3;
      await Promise.all(gens.map((g) => g.return()));
      for (const seq of seqs) seq.dispose();
      reply({ op, batch: b, prompt: p, steps, seconds: s, tokensPerSecond: (b * steps) / s });
    } else {
      reply({ error: `unknown command '${op}' (expected prefill or decode)` });
      process.exit(1);
    }
  }
  await context.dispose();
  await model.dispose();
  await llama.dispose();
} catch (e) {
  reply({ error: String(e?.message ?? e) });
  process.exit(1);
}
