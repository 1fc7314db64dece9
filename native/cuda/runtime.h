// The CUDA runtime as the CUDA backend uses it: whether CUDA can be used here, the current device
// and stream, and status checks that turn every failure into an ignis::Error (never an abort).
#pragma once
#include <cuda_runtime_api.h>
#include <cstdint>
#include "core/tensor.h"

namespace ignis::cuda {

constexpr int kMaxDevices = 64;

// ERR_CUDA "<call>: <message> (<error name>)" unless status is cudaSuccess; the error is cleared
// first where CUDA allows it (a sticky error stays, as it must).
void check(cudaError_t status, const char* call);
// The launch error of the last kernel, checked as above and naming it.
void check_launch(const char* kernel);

// Why CUDA cannot be used here ("" when it can); probed once.
const std::string& unavailable_reason();
int device_count();
// ERR_DEVICE with the reason when CUDA cannot be used, or when `device` does not exist.
void require_device(Device device);
// Makes `device` current on this thread (a no-op when it already is); the device must exist.
void use_device(int device);
// As use_device, for code that must not throw: false when it failed.
bool try_use_device(int device) noexcept;
// The stream the ops of `device` run on now (nullptr: the default stream).
cudaStream_t current_stream(int device);
// Makes `stream` the one ops of `device` run on and returns the previous one (for graph capture;
// the stream numbers of ignis.cuda.currentStream are left as they were).
cudaStream_t exchange_current_stream(int device, cudaStream_t stream);

// f() with this thread's stream capture mode relaxed: calls such as cudaMalloc, cublasCreate
// and cudaFuncSetAttribute are refused while the thread captures a graph, unless relaxed.
template <typename F>
auto relaxed_capture(F&& f) {
  cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
  cudaThreadExchangeStreamCaptureMode(&mode);
  auto result = f();
  cudaThreadExchangeStreamCaptureMode(&mode);
  return result;
}

}  // namespace ignis::cuda
