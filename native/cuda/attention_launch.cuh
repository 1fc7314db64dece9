// Host-side pieces shared by the attention kernels of attention.cu and attention_mma.cu: their
// arguments from an AttentionProblem, and their launches.
#pragma once
#include <mutex>
#include <set>
#include <utility>
#include "cpu/attention.h"
#include "cuda/attention_tiles.cuh"
#include "cuda/loop.cuh"

namespace ignis::cuda {

template <typename A>
Matrix<A> matrix(const GemmOperand& m) {
  return {static_cast<const A*>(m.data), m.trans, m.ld, m.batch_strides[0], m.batch_strides[1]};
}

template <typename T>
FlashOutput<T> flash_output(const TensorPtr& t) {
  return {t->data_as<T>(), t->strides[0], t->strides[1], t->strides[2], t->strides[3]};
}

template <typename T>
FlashMask<T> flash_mask(const cpu::AttentionProblem& p) {
  if (!p.mask) return {nullptr, 0, 0, 0, 0};
  return {static_cast<const T*>(p.mask), p.mask_strides[0], p.mask_strides[1], p.mask_strides[2], p.mask_strides[3]};
}

inline FlashSizes flash_sizes(const cpu::AttentionProblem& p) {
  return {p.heads, p.kv_heads, p.q_len, p.k_len, p.causal, float(p.scale)};
}

// Lets `kernel` use `shared` bytes of dynamic shared memory on `device` (past the 48 KB default),
// once per kernel and device: the setting stays, and the first call may come during a capture.
inline void allow_shared_memory(const void* kernel, size_t shared, int device) {
  static std::mutex mutex;
  static std::set<std::pair<const void*, int>> allowed;
  std::lock_guard<std::mutex> lock(mutex);
  if (allowed.count({kernel, device})) return;
  check(relaxed_capture([&] { return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(shared)); }),
        "cudaFuncSetAttribute");
  allowed.insert({kernel, device});
}

// Launches kernel over `blocks` blocks of `threads` with `shared` bytes of dynamic shared memory
// on the current stream of `device`.
template <typename... Params, typename... Args>
void flash_launch(void (*kernel)(Params...), int64_t blocks, unsigned threads, size_t shared, int device, const char* name,
                  Args&&... args) {
  if (blocks == 0) return;
  allow_shared_memory(reinterpret_cast<const void*>(kernel), shared, device);
  kernel<<<unsigned(blocks), threads, shared, current_stream(device)>>>(std::forward<Args>(args)...);
  check_launch(name);
}

// The most dynamic shared memory a block may opt in to on `device`.
size_t shared_memory_optin(Device device);

// delta [B * H * Lq] (float) = the sum of dO * O over each row of the output, for the backward;
// out and dout are operands of dtype `operands`.
TensorPtr attention_delta(const cpu::AttentionProblem& p, const GemmOperand& out, const GemmOperand& dout, DType operands, Device device);

}  // namespace ignis::cuda
