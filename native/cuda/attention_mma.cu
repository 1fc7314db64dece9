#include "cuda/attention_mma.h"

#include <algorithm>
#include <type_traits>
#include "core/dtype.h"
#include "cuda/attention_launch.cuh"
#include "cuda/attention_mma.cuh"

namespace ignis::cuda {
namespace {

// Calls f(T{}, std::integral_constant<int, D>{}) for the 16-bit storage dtype and head dim of a
// problem mma_attention_applies to.
template <typename F>
void dispatch_mma(DType dtype, int64_t head_dim, F&& f) {
  dispatch_float(dtype, "scaledDotProductAttention", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, bfloat16> || std::is_same_v<T, float16>) {
      switch (head_dim) {
        case 32: return f(tag, std::integral_constant<int, 32>{});
        case 64: return f(tag, std::integral_constant<int, 64>{});
        case 128: return f(tag, std::integral_constant<int, 128>{});
        default: fail(ERR_INTERNAL, "scaledDotProductAttention: no tensor-core kernels for head dim ", head_dim);
      }
    } else {
      fail(ERR_INTERNAL, "scaledDotProductAttention: no tensor-core kernels for ", dtype_name(dtype));
    }
  });
}

}  // namespace

bool mma_attention_applies(const cpu::AttentionProblem& p, DType dtype, Device device) {
  const int64_t d = p.head_dim;
  if ((dtype != DType::BFloat16 && dtype != DType::Float16) || d != p.value_dim || (d != 32 && d != 64 && d != 128)) return false;
  constexpr int64_t kMaxBlocks = 0x7fffffff;
  if (ceil_div(std::max(p.q_len, p.k_len), kMmaRows) > kMaxBlocks / std::max<int64_t>(p.batch * p.heads, 1)) return false;
  int major = 0;
  use_device(device.index);
  check(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device.index), "cudaDeviceGetAttribute");
  const size_t shared = std::max({mma_forward_shared(int(d)), mma_dq_shared(int(d)), mma_dkv_shared(int(d))});
  return major >= 8 && shared <= shared_memory_optin(device);
}

void mma_attention_forward(const cpu::AttentionProblem& p, const TensorPtr& out, float* lse) {
  const int device = out->device().index;
  use_device(device);
  dispatch_mma(out->dtype, p.head_dim, [&](auto tag, auto dim) {
    using T = decltype(tag);
    constexpr int D = decltype(dim)::value;
    const int64_t q_tiles = ceil_div(p.q_len, kMmaRows);
    flash_launch(mma_forward_kernel<T, D>, q_tiles * p.batch * p.heads, kMmaThreads, mma_forward_shared(D), device,
                 "scaledDotProductAttention", matrix<T>(p.q), matrix<T>(p.k), matrix<T>(p.v), flash_mask<T>(p),
                 flash_output<T>(out), lse, flash_sizes(p), q_tiles);
  });
}

void mma_attention_backward(const cpu::AttentionProblem& p, const GemmOperand& out, const GemmOperand& dout, const float* lse,
                            const TensorPtr& dq, const TensorPtr& dk, const TensorPtr& dv) {
  const Device device = dq->device();
  use_device(device.index);
  TensorPtr delta = attention_delta(p, out, dout, dq->dtype, device);
  dispatch_mma(dq->dtype, p.head_dim, [&](auto tag, auto dim) {
    using T = decltype(tag);
    constexpr int D = decltype(dim)::value;
    const int64_t q_tiles = ceil_div(p.q_len, kMmaRows), k_tiles = ceil_div(p.k_len, kMmaRows);
    const Matrix<T> q = matrix<T>(p.q), k = matrix<T>(p.k), v = matrix<T>(p.v), dO = matrix<T>(dout);
    const float* deltas = delta->data_as<float>();
    flash_launch(mma_backward_dq_kernel<T, D>, q_tiles * p.batch * p.heads, kMmaThreads, mma_dq_shared(D), device.index,
                 "scaledDotProductAttention backward", q, k, v, dO, flash_mask<T>(p), flash_output<T>(dq), lse, deltas,
                 flash_sizes(p), q_tiles);
    flash_launch(mma_backward_dkv_kernel<T, D>, k_tiles * p.batch * p.kv_heads, kMmaThreads, mma_dkv_shared(D), device.index,
                 "scaledDotProductAttention backward", q, k, v, dO, flash_mask<T>(p), flash_output<T>(dk), flash_output<T>(dv), lse,
                 deltas, flash_sizes(p), k_tiles);
  });
}

}  // namespace ignis::cuda
