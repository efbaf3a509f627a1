// CUDA token selection with the CPU's contract (native/cpu/sampling.cc), on the same params.
//
// argmax: the first index of the largest value, NaN skipped, 0 when no value is above -inf: the
// CPU's ids.
//
// sample / sampleRows: one block per row; only ids and log-probabilities are written, the logits and
// the scratch (the params' workspace) stay on the device. Computed as the CPU computes them, in the
// same f32 operations: the penalties (f32, unfused), the argmax, the weights e^(x/t − m) (expRef is
// sc::exp bit for bit), so every weight has the CPU's bits; the topK set (exact: a count), the minP
// filter and the seeded draw u (sampleUniform, one definition for both). What cannot be the CPU's
// bits are three f64 sums whose order the CPU takes from its own loops: the topP total and prefix
// masses (the CPU sums in nth_element's and partial_sort's order), the draw's cumulative mass (the
// CPU: one running sum in id order; here per-thread chunks, then the chunks in order), and the
// log-softmax denominator. Each is within a few ulps of the CPU's, so the kept set and the chosen id
// differ from the CPU's only when u · total (or topP · total) lies within ~1e-15 relative of a
// cumulative boundary, and logprobs differ by an f32 ulp at most. Every sum here runs in a fixed order:
// the same inputs give the same ids on every run.
#pragma once
#include <string>

#include "../native/params/launch.h"
#include "../native/params/sampling.h"

namespace dsn::cuda {

/** Launches on l.stream; returns "" or the launch error. */
std::string argmaxLaunch(const ArgmaxParams& p, const CudaLaunch& l);
/** p.workspace: [rows, vocab] f32 on the device. */
std::string sampleLaunch(const SampleParams& p, const CudaLaunch& l);
/** p.params and the history arrays on the device; p.workspace: [rows, 2 · vocab] f32; topLogprobs <= 1024. */
std::string sampleRowsLaunch(const SampleRowsParams& p, const CudaLaunch& l);

}  // namespace dsn::cuda
