// Random tensors on the device: one thread per Philox block (kernels/philox.h), writing that
// block's PerBlock elements.
#include "cuda/creation.h"

#include <type_traits>
#include "core/dtype.h"
#include "cuda/graph.h"
#include "cuda/loop.cuh"
#include "kernels/philox.h"

namespace ignis::cuda {
namespace {

// out[b * PerBlock + k] = value k that draw makes of block offset + b, for every element of out.
// Under graph capture (cuda/graph.h captured_rng) the seed and the offset come from the replay's
// generator state: `replay_rng` {seed, offset} with `offset` taken relative to the capture's start.
template <int PerBlock, typename T, typename Draw>
__global__ void __launch_bounds__(kThreads) philox_kernel(T* out, int64_t n, uint64_t seed, uint64_t offset,
                                                          const uint64_t* replay_rng, Draw draw) {
  if (replay_rng) {
    seed = replay_rng[0];
    offset += replay_rng[1];
  }
  const int64_t blocks = (n + PerBlock - 1) / PerBlock, step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t b = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; b < blocks; b += step) {
    T v[PerBlock];
    draw(philox_block(seed, offset + uint64_t(b)), v);
#pragma unroll
    for (int k = 0; k < PerBlock; k++)
      if (b * PerBlock + k < n) out[b * PerBlock + k] = v[k];
  }
}

template <int PerBlock, typename T, typename Draw>
void fill_from_blocks(const char* name, const TensorPtr& out, uint64_t seed, uint64_t offset, Draw draw) {
  const int64_t n = out->numel();
  if (n == 0) return;
  const int device = out->device().index;
  use_device(device);
  const CapturedRng captured = captured_rng(device);
  if (captured.state) offset -= captured.start;
  philox_kernel<PerBlock><<<grid_for((n + PerBlock - 1) / PerBlock), kThreads, 0, current_stream(device)>>>(
      out->data_as<T>(), n, seed, offset, captured.state, draw);
  check_launch(name);
}

template <typename T>
struct UniformFloat {
  __device__ void operator()(PhiloxBlock r, T* v) const {
    for (int k = 0; k < 4; k++) v[k] = T(uniform_float(r.w[k], uniform_bits<T>()));
  }
};
struct UniformDouble {
  __device__ void operator()(PhiloxBlock r, double* v) const {
    v[0] = uniform_double(r.w[0], r.w[1]);
    v[1] = uniform_double(r.w[2], r.w[3]);
  }
};
template <typename T>
struct NormalFloat {
  __device__ void operator()(PhiloxBlock r, T* v) const {
    for (int h = 0; h < 2; h++) {
      float z0, z1;
      box_muller_float(r.w[2 * h], r.w[2 * h + 1], z0, z1);
      v[2 * h] = T(z0);
      v[2 * h + 1] = T(z1);
    }
  }
};
struct NormalDouble {
  // 1 - u keeps log away from 0
  __device__ void operator()(PhiloxBlock r, double* v) const {
    box_muller(1.0 - uniform_double(r.w[0], r.w[1]), uniform_double(r.w[2], r.w[3]), v[0], v[1]);
  }
};
template <typename T>
struct BoundedInt {
  int64_t low;
  uint64_t range;
  __device__ void operator()(PhiloxBlock r, T* v) const {
    for (int k = 0; k < 2; k++) {
      // unsigned addition wraps where int64 would overflow; the result is in [low, high)
      const auto value = int64_t(uint64_t(low) + bounded_u64(r.w[2 * k], r.w[2 * k + 1], range));
      if constexpr (std::is_integral_v<T>) v[k] = T(value);
      else v[k] = T(acc_t<T>(double(value)));
    }
  }
};

}  // namespace

void uniform(const TensorPtr& out, uint64_t seed, uint64_t offset) {
  dispatch_float(out->dtype, "rand", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, double>) fill_from_blocks<kUniformDoublePerBlock, T>("rand", out, seed, offset, UniformDouble{});
    else fill_from_blocks<kUniformFloatPerBlock, T>("rand", out, seed, offset, UniformFloat<T>{});
  });
}

void normal(const TensorPtr& out, uint64_t seed, uint64_t offset) {
  dispatch_float(out->dtype, "randn", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, double>) fill_from_blocks<kNormalDoublePerBlock, T>("randn", out, seed, offset, NormalDouble{});
    else fill_from_blocks<kNormalFloatPerBlock, T>("randn", out, seed, offset, NormalFloat<T>{});
  });
}

void random_int(const TensorPtr& out, int64_t low, uint64_t range, uint64_t seed, uint64_t offset) {
  dispatch_numeric(out->dtype, "randint", [&](auto tag) {
    using T = decltype(tag);
    fill_from_blocks<kIntPerBlock, T>("randint", out, seed, offset, BoundedInt<T>{low, range});
  });
}

}  // namespace ignis::cuda
