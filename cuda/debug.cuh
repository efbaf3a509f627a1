// CUDA bodies of the debug ops; see native/params/debug.h.
#pragma once
#include <string>

#include "../native/params/debug.h"
#include "../native/params/launch.h"

namespace dsn::cuda {

std::string debugFillLaunch(const DebugFillParams& p, const CudaLaunch& l);
std::string debugDelayLaunch(const DebugDelayParams& p, const CudaLaunch& l);
std::string debugRaiseDeviceLaunch(const DebugRaiseDeviceParams& p, const CudaLaunch& l);
/** Writes through a null device pointer: the device's context is unusable afterwards. */
std::string debugIllegalAddressLaunch(const DebugFillParams& p, const CudaLaunch& l);

}  // namespace dsn::cuda
