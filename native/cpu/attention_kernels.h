// The attention engine behind mlaPrefill and mlaDecode (internal to native/cpu).
//
// A work item is up to 64 "lanes" (the heads of one query in decode, up to 64 queries of one head
// in prefill) attending over one list of keys. Each key is a physical row r with a key vector
// [a(r), b(r)] (two segments, e.g. latent and RoPE key) and a value vector v(r); a 64-bit mask per
// key says which lanes see it. Lanes sit side by side in vector registers, so each key element is
// broadcast once and multiplied into every lane, and the softmax runs down the lanes.
//
// Per item, in f32: scores S[k][lane] = (q_lane . key_k) * scale (invisible: -inf); softmax per
// lane; P rounded to the activation dtype; out_lane = sum_k P[k][lane] v_k, rounded to the dtype.
// Paths: bf16 with AVX-512 BF16 (vdpbf16ps: exact bf16 products, f32 sums), and a plain C++ path
// compiled for AVX-512, AVX2 and the baseline (f32, and bf16 on CPUs without BF16 dot products).
#pragma once
#include <cstdint>
#include <vector>

#include "../runtime/dtype.h"

namespace dsn::cpu::attn {

constexpr int kGroup = 16;     // lanes in one vector group
constexpr int kMaxLanes = 64;  // lanes in one work item

/** Where the scores are rounded to bf16, to reproduce the bf16 reference (whose einsums produce bf16):
 *  none (f32 scores, as FlashMLA keeps them); once: s = bf16(bf16(q·k) · scale) (prefill: one einsum
 *  over the whole head); perSegment: s = bf16(bf16(bf16(qa·ka) + bf16(qb·kb)) · scale) (decode: one
 *  einsum per segment, then their sum). */
enum class ScoreRounding { none, once, perSegment };

/** Where keys and values live; strides and lengths in elements of `type`. */
struct Problem {
  DType type = DType::bf16;  // bf16 | f32 (queries, keys, values and output)
  const char* a = nullptr;   // key segment A of row r: a + r * aStride, da elements
  int64_t aStride = 0, da = 0;
  const char* b = nullptr;   // key segment B of row r: b + r * bStride, db elements
  int64_t bStride = 0, db = 0;
  const char* v = nullptr;   // value of row r: v + r * vStride, dv elements
  int64_t vStride = 0, dv = 0;
  float scale = 1;
  ScoreRounding scoreRounding = ScoreRounding::none;  // with type bf16 only
};

/** The queries of one work item: per lane, its two query segments and its output row. */
struct Lanes {
  int n = 0;  // 1..64
  const char* qa[kMaxLanes];  // da elements
  const char* qb[kMaxLanes];  // db elements
  char* out[kMaxLanes];       // dv elements
};

/** The keys of one work item. */
struct Keys {
  std::vector<int64_t> rows;    // physical row of each key
  std::vector<uint64_t> lanes;  // bit l: lane l sees the key
};

/** Runs one work item (on the calling thread). */
void attend(const Problem& p, const Lanes& lanes, const Keys& keys);

}  // namespace dsn::cpu::attn
