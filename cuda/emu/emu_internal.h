// cuda-emu internals shared by device.cc (the device model) and runtime.cc (the runtime API).
#pragma once
#include <memory>
#include <string>

#include "cuda_emu.h"

namespace cuda_emu {

/** One kernel launch as the stream's host thread runs it. */
struct Launch {
  std::string name;
  dim3 grid, block;
  size_t smem = 0;
  void (*invoke)(void*) = nullptr;
  std::shared_ptr<void> data;
  cudaError_t code = cudaSuccess;  // the launch's error, if it failed
  std::string message;             // names the kernel, block, thread and what went wrong
};

/** Runs every block of the launch (on the calling host thread); sets L.code/L.message on error. */
void runLaunch(Launch& L);

/** Where an address lies relative to the device allocations, for error messages. */
std::string describeGlobal(const void* p);

}  // namespace cuda_emu
