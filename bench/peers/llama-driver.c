/*
 * Peer for the end-to-end benchmark: llama.cpp called from C, without a binding's overhead.
 * bench/peers/llama.ts compiles it with the system cc against node-llama-cpp's prebuilt CPU
 * libllama (+ ggml) and the headers of the llama.cpp commit those binaries were built from, then
 * drives it over a pipe: one command a line on stdin, one JSON line on stdout per command.
 *
 * usage: llama-driver MODEL.gguf THREADS N_CTX N_SEQ BACKEND_DIR
 *   loads the model (the CPU backend variants from BACKEND_DIR) and prints {"ready":true,...}; then
 *   logits PATH N t1 … tN   one sequence of N tokens, one batch, the logits of every position:
 *                           N × n_vocab f32 written to PATH
 *   prefill N SALT          a fresh sequence of N tokens in one batch (only the last position's
 *                           logits), timed
 *   decode B P S SALT       B fresh sequences of P tokens (one batch), then S greedy steps of one
 *                           token per sequence (a batch of B), the S steps timed
 *   exits at EOF. Prompt token ids are (j·7 + i·13 + SALT) mod n_vocab, as the Node side makes them.
 */
#include <ggml-backend.h>
#include <llama.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Errors only (llama.cpp logs every tensor at INFO); DSN_LLAMA_VERBOSE=1 for all of it. */
static void on_log(enum ggml_log_level level, const char* text, void* user) {
  (void)user;
  if (level == GGML_LOG_LEVEL_ERROR || getenv("DSN_LLAMA_VERBOSE")) fputs(text, stderr);
}

static struct llama_context* ctx;
static int n_vocab;
static llama_batch batch;
static int batch_cap;

static void fail(const char* what) {
  printf("{\"error\":\"%s\"}\n", what);
  fflush(stdout);
  exit(1);
}

static void batch_clear(void) { batch.n_tokens = 0; }

static void batch_add(llama_token id, llama_pos pos, llama_seq_id seq, int output) {
  if (batch.n_tokens >= batch_cap) fail("batch overflow");
  int i = batch.n_tokens++;
  batch.token[i] = id;
  batch.pos[i] = pos;
  batch.n_seq_id[i] = 1;
  batch.seq_id[i][0] = seq;
  batch.logits[i] = (int8_t)output;
}

static void decode_or_fail(void) {
  int rc = llama_decode(ctx, batch);
  if (rc != 0) {
    printf("{\"error\":\"llama_decode returned %d\"}\n", rc);
    fflush(stdout);
    exit(1);
  }
}

static int prompt_token(int j, int i, int salt) { return (int)(((long)j * 7 + (long)i * 13 + salt) % n_vocab); }

static int argmax(const float* row) {
  int best = 0;
  for (int v = 1; v < n_vocab; ++v)
    if (row[v] > row[best]) best = v;
  return best;
}

int main(int argc, char** argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: llama-driver MODEL.gguf THREADS N_CTX N_SEQ BACKEND_DIR\n");
    return 2;
  }
  const char* model_path = argv[1];
  int threads = atoi(argv[2]), n_ctx = atoi(argv[3]), n_seq = atoi(argv[4]);
  if (threads < 1 || n_ctx < 1 || n_seq < 1) fail("THREADS, N_CTX and N_SEQ must be positive integers");
  llama_log_set(on_log, NULL);
  ggml_backend_load_all_from_path(argv[5]);
  llama_backend_init();

  struct llama_model_params mp = llama_model_default_params();
  mp.n_gpu_layers = 0;
  struct llama_model* model = llama_model_load_from_file(model_path, mp);
  if (!model) fail("cannot load the model");
  n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
  if (n_vocab < 1) fail("the model has no vocabulary size");

  struct llama_context_params cp = llama_context_default_params();
  cp.n_ctx = (uint32_t)n_ctx;
  cp.n_batch = cp.n_ubatch = 512;
  cp.n_seq_max = (uint32_t)n_seq;
  cp.n_threads = cp.n_threads_batch = threads;
  cp.no_perf = true;
  ctx = llama_init_from_model(model, cp);
  if (!ctx) fail("cannot create a context");
  batch_cap = 4096;
  batch = llama_batch_init(batch_cap, 0, 1);
  printf("{\"ready\":true,\"vocab\":%d,\"threads\":%d,\"nCtx\":%u,\"system\":\"%s\"}\n", n_vocab, threads, llama_n_ctx(ctx),
         llama_print_system_info());
  fflush(stdout);

  char line[1 << 16];
  char path[4096];
  while (fgets(line, sizeof line, stdin)) {
    llama_memory_clear(llama_get_memory(ctx), true);
    if (strncmp(line, "logits ", 7) == 0) {
      int n = 0, used = 0;
      if (sscanf(line + 7, "%4095s %d%n", path, &n, &used) != 2 || n < 1 || n > batch_cap) fail("logits: expected PATH N ids");
      const char* p = line + 7 + used;
      batch_clear();
      for (int j = 0; j < n; ++j) {
        char* end;
        long id = strtol(p, &end, 10);
        if (end == p || id < 0 || id >= n_vocab) fail("logits: a token id is missing or out of range");
        p = end;
        batch_add((llama_token)id, j, 0, 1);
      }
      decode_or_fail();
      FILE* f = fopen(path, "wb");
      if (!f) fail("logits: cannot open the output file");
      for (int j = 0; j < n; ++j) {
        const float* row = llama_get_logits_ith(ctx, j);
        if (!row || fwrite(row, sizeof(float), (size_t)n_vocab, f) != (size_t)n_vocab) fail("logits: cannot write");
      }
      fclose(f);
      printf("{\"op\":\"logits\",\"tokens\":%d,\"vocab\":%d}\n", n, n_vocab);
    } else if (strncmp(line, "prefill ", 8) == 0) {
      int n = 0, salt = 0;
      if (sscanf(line + 8, "%d %d", &n, &salt) != 2 || n < 1 || n > batch_cap) fail("prefill: expected N SALT");
      batch_clear();
      for (int j = 0; j < n; ++j) batch_add(prompt_token(j, 0, salt), j, 0, j == n - 1);
      double t0 = now_s();
      decode_or_fail();
      llama_synchronize(ctx);
      double s = now_s() - t0;
      printf("{\"op\":\"prefill\",\"tokens\":%d,\"seconds\":%.6f,\"tokensPerSecond\":%.3f}\n", n, s, n / s);
    } else if (strncmp(line, "decode ", 7) == 0) {
      int b = 0, prompt = 0, steps = 0, salt = 0;
      if (sscanf(line + 7, "%d %d %d %d", &b, &prompt, &steps, &salt) != 4 || b < 1 || b > n_seq || prompt < 1 || steps < 1 ||
          b * prompt > batch_cap)
        fail("decode: expected B P S SALT with B <= N_SEQ");
      batch_clear();
      for (int i = 0; i < b; ++i)
        for (int j = 0; j < prompt; ++j) batch_add(prompt_token(j, i, salt), j, i, j == prompt - 1);
      decode_or_fail();
      int next[256];
      if (b > 256) fail("decode: B > 256");
      for (int i = 0; i < b; ++i) next[i] = argmax(llama_get_logits_ith(ctx, (i + 1) * prompt - 1));
      double t0 = now_s();
      for (int step = 0; step < steps; ++step) {
        batch_clear();
        for (int i = 0; i < b; ++i) batch_add(next[i], prompt + step, i, 1);
        decode_or_fail();
        for (int i = 0; i < b; ++i) next[i] = argmax(llama_get_logits_ith(ctx, i));
      }
      double s = now_s() - t0;
      printf("{\"op\":\"decode\",\"batch\":%d,\"prompt\":%d,\"steps\":%d,\"seconds\":%.6f,\"tokensPerSecond\":%.3f}\n", b, prompt, steps, s,
             (double)b * steps / s);
    } else {
      fail("unknown command (expected logits, prefill or decode)");
    }
    fflush(stdout);
  }
  llama_batch_free(batch);
  llama_free(ctx);
  llama_model_free(model);
  return 0;
}
