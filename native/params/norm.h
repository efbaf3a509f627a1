// Params of the norm family (rmsNorm, layerNorm): one struct per op, used by native/cpu/norm.cc and
// cuda/norm.cu alike. Plain data (pointers are device pointers of the op's device); g++ and nvcc
// both compile this header.
#pragma once
#include <cstdint>

#include "../runtime/dtype.h"
#include "quant.h"

namespace dsn {

/** RMSNorm over the last dimension, optionally of x + residual (the reference's fused add). */
struct RmsNormParams {
  /** Input, [rows, dim] contiguous, dtype xType. */
  const void* x = nullptr;
  /** Dtype of x, residual, out and residualOut: f32, bf16 or f16. */
  DType xType = DType::f32;
  /** Optional [rows, dim], dtype xType: when set, x + residual (in f32) is normalised. */
  const void* residual = nullptr;
  /** Scale, [dim], dtype wType. */
  const void* weight = nullptr;
  /** Dtype of weight: f32 or bf16. */
  DType wType = DType::f32;
  /** Output, [rows, dim], dtype xType. */
  void* out = nullptr;
  /** [rows, dim], dtype xType: x + residual rounded to xType; set exactly when residual is. */
  void* residualOut = nullptr;
  /** Number of rows (product of all but the last dimension). */
  int64_t rows = 0;
  /** Length of the last dimension, >= 1. */
  int64_t dim = 0;
  /** Added to mean(x²) before the reciprocal square root, >= 0. */
  float eps = 1e-6f;
  /** Optional fused actQuant of out (dim a multiple of kQuantBlock): [rows, dim] f8e4m3 codes of
   *  out as rounded to xType, per 1×kQuantBlock group; null for none. */
  uint8_t* codes = nullptr;
  /** [rows, dim / 128] f32, the groups' scales; set exactly when codes is. */
  float* scales = nullptr;
  /** Scales rounded up to a power of two (actQuant's ue8m0). */
  bool ue8m0 = false;
};

/** LayerNorm over the last dimension (mean and biased variance in f32). */
struct LayerNormParams {
  /** Input, [rows, dim] contiguous, dtype xType (f32 or bf16). */
  const void* x = nullptr;
  /** Dtype of x and out. */
  DType xType = DType::f32;
  /** Scale, [dim], dtype wType (f32 or bf16). */
  const void* weight = nullptr;
  /** Dtype of weight. */
  DType wType = DType::f32;
  /** Optional shift, [dim], dtype bType (f32 or bf16); nullptr for none. */
  const void* bias = nullptr;
  /** Dtype of bias (ignored without one). */
  DType bType = DType::f32;
  /** Output, [rows, dim], dtype xType. */
  void* out = nullptr;
  /** Number of rows. */
  int64_t rows = 0;
  /** Length of the last dimension, >= 1. */
  int64_t dim = 0;
  /** Added to the variance, >= 0. */
  float eps = 1e-5f;
};

}  // namespace dsn
