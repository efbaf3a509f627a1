/*
 * Peer for the fp8Gemm benchmark: OpenBLAS sgemm on the same shape, y[M,N] = x[M,K] · w[N,K]ᵀ in
 * f32 (row-major, w transposed as our weights are stored). bench/gemm.bench.ts compiles it with
 * `cc -O2 sgemm.c -lopenblas` when the library is present and drives it over a pipe, so the
 * benchmark harness times it exactly as it times our ops.
 *
 * usage: sgemm M N K THREADS
 *   prints "ready", then for each line "run" on stdin runs one sgemm and prints "ok"; exits at EOF.
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern void openblas_set_num_threads(int);

int main(int argc, char** argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: sgemm M N K THREADS\n");
    return 2;
  }
  int m = atoi(argv[1]), n = atoi(argv[2]), k = atoi(argv[3]), threads = atoi(argv[4]);
  openblas_set_num_threads(threads);
  float* x = malloc(sizeof(float) * (size_t)m * k);
  float* w = malloc(sizeof(float) * (size_t)n * k);
  float* y = malloc(sizeof(float) * (size_t)m * n);
  if (!x || !w || !y) {
    fprintf(stderr, "sgemm: out of memory\n");
    return 1;
  }
  unsigned s = 1;
  for (size_t i = 0; i < (size_t)m * k; ++i) x[i] = (float)((s = s * 1103515245u + 12345u) >> 9) / (1u << 23) - 0.5f;
  for (size_t i = 0; i < (size_t)n * k; ++i) w[i] = (float)((s = s * 1103515245u + 12345u) >> 9) / (1u << 23) - 0.5f;
  printf("ready\n");
  fflush(stdout);
  char line[64];
  while (fgets(line, sizeof line, stdin)) {
    if (strncmp(line, "run", 3) != 0) continue;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x, k, w, k, 0.0f, y, n);
    printf("ok\n");
    fflush(stdout);
  }
  free(x);
  free(w);
  free(y);
  return 0;
}
