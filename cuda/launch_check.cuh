// The one line every launcher ends with: the launch's own error (bad configuration, too much shared
// memory), as "cudaErrorInvalidConfiguration: invalid configuration argument". Errors of kernels
// queued earlier are taken before the launch by dispatch.h, so they are never blamed on this op.
#pragma once
#include <cuda_runtime.h>

#include <string>

namespace dsn::cuda {

/** "" or "<name>: <description>" for e. */
std::string errorText(cudaError_t e);

/** The error of the launch just made (cudaGetLastError), as errorText. */
inline std::string launchError() { return errorText(cudaGetLastError()); }

}  // namespace dsn::cuda
