// The CUDA runtime surface the addon uses: devices, memory, streams and copies. Plain C++ (no CUDA
// headers), so native/ compiles without nvcc. Every call returns "" on success or the CUDA error
// string; nothing here aborts.
#pragma once
#include <cstddef>
#include <string>

namespace dsn::cuda {

/** Number of visible CUDA devices; 0 when there is no driver or no GPU. */
int deviceCount();
/** Name, total memory in bytes, compute capability "9.0" of a device. */
std::string deviceProperties(int device, std::string* name, size_t* totalBytes, std::string* capability);
/** Architectures this build compiled, e.g. "sm_90a". */
const char* compiledArchitectures();

std::string allocate(int device, size_t bytes, void** out);
std::string release(int device, void* p);
std::string createStream(int device, void** stream);
/** Synchronous copy from host to device (ordered after earlier work on blocking streams). */
std::string copyHostToDevice(int device, void* dst, const void* src, size_t bytes);
/** Copies device bytes to host memory after all work queued on `stream`, and waits for it. */
std::string copyDeviceToHost(int device, void* stream, void* dst, const void* src, size_t bytes);
/** Waits for all work queued on `stream`; returns the first asynchronous error, if any. */
std::string synchronize(int device, void* stream);

}  // namespace dsn::cuda

namespace dsn::cuda {
/** Device-to-device copy bandwidth in GB/s (bytes read + written), best of a few copies of `bytes`. */
std::string copyBandwidth(int device, size_t bytes, double* gbPerSecond);
}  // namespace dsn::cuda
