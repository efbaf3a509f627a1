// CUDA kernels of the DeepSeekMoE layer and of embedding: the same params and contract as
// native/cpu/moe.h and native/cpu/embedding.h (native/params/moe.h). Routing, dispatch, gather,
// combine and embedding give the CPU's bits exactly; swiglu too (the CPU's exp, cuda/math.cuh), and
// with p.codes set its output's actQuant in the same kernel (one warp per 1×128 group).
// An id or row index out of range sets the stream's error word (the op fails at the next sync).
#pragma once
#include <string>

#include "../native/params/launch.h"
#include "../native/params/moe.h"

namespace dsn::cuda {

std::string moeRouteLaunch(const MoeRouteParams& p, const CudaLaunch& l);
std::string moeDispatchLaunch(const MoeDispatchParams& p, const CudaLaunch& l);
std::string gatherRowsLaunch(const GatherRowsParams& p, const CudaLaunch& l);
std::string swigluLaunch(const SwigluParams& p, const CudaLaunch& l);
std::string moeCombineLaunch(const MoeCombineParams& p, const CudaLaunch& l);
std::string embeddingLaunch(const EmbeddingParams& p, const CudaLaunch& l);

}  // namespace dsn::cuda
