// CPU kernels of the DeepSeekMoE layer: the router (DeepSeek's Gate), dispatch of (token, choice)
// slots into expert-contiguous rows, the row gather, SwiGLU, and the weighted combine.
#pragma once
#include <cstdint>

#include "../params/moe.h"
#include "../runtime/threadpool.h"

namespace dsn::cpu {

// The params (native/params/moe.h) are the ones cuda/moe.cu takes.
using dsn::GatherRowsParams;
using dsn::MoeCombineParams;
using dsn::MoeDispatchParams;
using dsn::MoeRouteParams;
using dsn::SwigluParams;

void moeRoute(const MoeRouteParams& p, ThreadPool& pool);

/** Stable counting sort of the slots by expert (then slot index). */
void moeDispatch(const MoeDispatchParams& p, ThreadPool& pool);

void gatherRows(const GatherRowsParams& p, ThreadPool& pool);

/** out = silu(gate) · up = gate / (1 + e^−gate) · up in f32, rounded once. With p.codes, each row is
 *  quantised right after it is written, by actQuant's own routine (actQuantRows). */
void swiglu(const SwigluParams& p, ThreadPool& pool);

/** out[t] = (Σ_j w[t,j] · expertOut[rowOfSlot[t·k+j]] in ascending expert id) + shared[t], in f32
 *  with each product rounded before its add (as the reference's `y[idx] += expert(x) * w`). */
void moeCombine(const MoeCombineParams& p, ThreadPool& pool);

}  // namespace dsn::cpu
