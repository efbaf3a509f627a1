/*
 * Peer for the fp8Gemm benchmark: OpenBLAS sgemm on the same shape, y[M,N] = x[M,K] · w[N,K]ᵀ in
 * f32 (row-major, w transposed as our weights are stored). Compiled by bench/gemm.bench.ts with
 * `cc -O2 sgemm.c -lopenblas` when the library is present.
 *
 * usage: sgemm M N K THREADS MIN_MS   → prints one line: "<median seconds> <runs>"
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

extern void openblas_set_num_threads(int);

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char** argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: sgemm M N K THREADS MIN_MS\n");
    return 2;
  }
  int m = atoi(argv[1]), n = atoi(argv[2]), k = atoi(argv[3]), threads = atoi(argv[4]);
  double minMs = atof(argv[5]);
  openblas_set_num_threads(threads);
  float* x = malloc(sizeof(float) * (size_t)m * k);
  float* w = malloc(sizeof(float) * (size_t)n * k);
  float* y = malloc(sizeof(float) * (size_t)m * n);
  if (!x || !w || !y) return 1;
  srand(1);
  for (size_t i = 0; i < (size_t)m * k; ++i) x[i] = (float)rand() / RAND_MAX - 0.5f;
  for (size_t i = 0; i < (size_t)n * k; ++i) w[i] = (float)rand() / RAND_MAX - 0.5f;
  double times[1000];
  int runs = 0;
  double start = now();
  for (int warm = 0; warm < 2; ++warm)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x, k, w, k, 0.0f, y, n);
  start = now();
  while (runs < 1000 && (runs < 5 || (now() - start) * 1e3 < minMs)) {
    double t0 = now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x, k, w, k, 0.0f, y, n);
    times[runs++] = now() - t0;
  }
  qsort(times, runs, sizeof(double), cmp);
  printf("%.9f %d\n", times[runs / 2], runs);
  free(x); free(w); free(y);
  return 0;
}
