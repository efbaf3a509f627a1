// Params of the MoE family (moeRoute, moeDispatch, gatherRows, swiglu, moeCombine) and of embedding:
// one struct per op, used by native/cpu/{moe,embedding}.cc and cuda/{moe,embedding}.cu alike. Plain
// data (pointers are device pointers of the op's device); g++ and nvcc both compile this header.
#pragma once
#include <cstdint>

#include "../runtime/dtype.h"
#include "quant.h"

namespace dsn {

/** DeepSeek's Gate: scores, group-limited top-k, weights. */
struct MoeRouteParams {
  const float* logits = nullptr;  // [tokens, experts] f32
  const float* bias = nullptr;    // optional [experts] f32: added to the scores for choosing only
  int64_t tokens = 0, experts = 0;
  int topk = 1;                   // experts chosen per token, <= topkGroups · experts/nGroups
  int nGroups = 1;                // divides experts
  int topkGroups = 1;             // groups kept per token, <= nGroups
  bool softmax = false;           // scores = softmax(logits) instead of sigmoid(logits)
  float routeScale = 1.0f;        // weights are multiplied by it last
  bool normalize = false;         // weights /= their sum first
  int32_t* ids = nullptr;         // [tokens, topk] i32 out, descending biased score (ties: lower id)
  float* weights = nullptr;       // [tokens, topk] f32 out: unbiased scores of ids, normalised, scaled
};

/** Stable counting sort of (token, choice) slots into expert-contiguous rows. */
struct MoeDispatchParams {
  const int32_t* ids = nullptr;   // [tokens, k] i32, each in [0, experts) (checked when run)
  int64_t tokens = 0, k = 0, experts = 0;
  int32_t* tokenOfRow = nullptr;  // [tokens·k] out: the token of each row
  int32_t* rowOfSlot = nullptr;   // [tokens·k] out: the row of slot t·k + j
  int32_t* offsets = nullptr;     // [experts + 1] out: rows of expert e are offsets[e] … offsets[e+1]−1
};

/** Rows of bytes gathered by index. */
struct GatherRowsParams {
  const void* x = nullptr;        // [rows, rowBytes] raw bytes
  int64_t rows = 0, rowBytes = 0;
  const int32_t* index = nullptr; // [count] i32, each in [0, rows) (checked when run)
  int64_t count = 0;
  void* out = nullptr;            // [count, rowBytes]
};

/** out = silu(gate) · up. */
struct SwigluParams {
  const void* gateUp = nullptr;   // [rows, 2·inter], dtype inType (f32, bf16): gate then up
  DType inType = DType::bf16;
  int64_t rows = 0, inter = 0;
  void* out = nullptr;            // [rows, inter], dtype outType (f32, bf16)
  DType outType = DType::bf16;
  uint8_t* codes = nullptr;       // optional fused actQuant of out (inter a multiple of kQuantBlock):
                                  // [rows, inter] f8e4m3 of out as rounded to outType; null for none
  float* scales = nullptr;        // [rows, inter / 128] f32; set exactly when codes is
  bool ue8m0 = false;             // scales rounded up to a power of two
};

/** The weighted sum of each token's expert rows, plus the shared expert's output. */
struct MoeCombineParams {
  const void* expertOut = nullptr;  // [expertRows, dim], dtype eType (f32, bf16)
  DType eType = DType::bf16;
  int64_t expertRows = 0, dim = 0;
  const int32_t* rowOfSlot = nullptr;  // [tokens·k] i32, each in [0, expertRows) (checked when run)
  const float* weights = nullptr;   // [tokens, k] f32
  const int32_t* ids = nullptr;     // [tokens, k] i32: only orders the sum
  const void* shared = nullptr;     // optional [tokens, dim], dtype sType (f32, bf16)
  DType sType = DType::bf16;
  int64_t tokens = 0, k = 0;
  void* out = nullptr;              // [tokens, dim], dtype outType (f32, bf16)
  DType outType = DType::bf16;
};

/** Rows of the embedding table by token id. */
struct EmbeddingParams {
  const void* table = nullptr;  // [vocab, dim], dtype tableType (f32, bf16)
  DType tableType = DType::bf16;
  int64_t vocab = 0, dim = 0;
  const int32_t* ids = nullptr; // [count] i32, each in [0, vocab) (checked when run)
  int64_t count = 0;
  void* out = nullptr;          // [count, dim], dtype outType (f32, bf16)
  DType outType = DType::bf16;
};

}  // namespace dsn
