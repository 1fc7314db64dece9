#include "cuda/optim.h"

#include <algorithm>
#include <cmath>
#include "core/dtype.h"
#include "core/views.h"
#include "cuda/graph.h"
#include "cuda/loop.cuh"
#include "kernels/optim.h"

namespace ignis::cuda {
namespace {

// Tensors per launch: their pointers, sizes and flags travel as kernel arguments (under 4 KiB).
constexpr int kTensorsPerLaunch = 32;
constexpr int64_t kMaxBlocksPerTensor = 2048;

template <typename P, typename A>
struct AdamWBatch {
  P* p[kTensorsPerLaunch];
  const P* g[kTensorsPerLaunch];
  A* m[kTensorsPerLaunch];
  A* v[kTensorsPerLaunch];
  int64_t n[kTensorsPerLaunch];
  int64_t step[kTensorsPerLaunch];  // the step count, less the replay counter's value under capture
};

struct AdamWHyper {
  double lr, beta1, beta2, eps, weight_decay;
};

// blockIdx.y picks the tensor; the x blocks stride through its elements. The step's scalars are
// computed once per block, in double as on the CPU.
template <typename P, typename A>
__global__ void __launch_bounds__(kThreads) adamw_kernel(AdamWBatch<P, A> b, AdamWHyper h, const int64_t* replays,
                                                          const double* replay_lr) {
  const int k = blockIdx.y;
  __shared__ AdamWScalars<A> s;
  if (threadIdx.x == 0)
    s = adamw_scalars<A>(replay_lr ? *replay_lr : h.lr, h.beta1, h.beta2, h.eps, h.weight_decay,
                         b.step[k] + (replays ? *replays : 0));
  __syncthreads();
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < b.n[k]; i += stride) {
    A p = A(b.p[k][i]), m = b.m[k][i], v = b.v[k][i];
    adamw_update(p, A(b.g[k][i]), m, v, s);
    b.p[k][i] = P(p);
    b.m[k][i] = m;
    b.v[k][i] = v;
  }
}

template <typename P, typename A>
struct SgdBatch {
  P* p[kTensorsPerLaunch];
  const P* g[kTensorsPerLaunch];
  A* buf[kTensorsPerLaunch];  // null without momentum
  int64_t n[kTensorsPerLaunch];
  bool fresh[kTensorsPerLaunch];
};

template <typename P, typename A>
__global__ void __launch_bounds__(kThreads) sgd_kernel(SgdBatch<P, A> b, SgdScalars<A> s, const double* replay_lr) {
  const int k = blockIdx.y;
  if (replay_lr) s.lr = A(*replay_lr);
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < b.n[k]; i += stride) {
    A p = A(b.p[k][i]);
    if (b.buf[k]) {
      A buf = b.buf[k][i];
      sgd_momentum_update(p, A(b.g[k][i]), buf, b.fresh[k], s);
      b.buf[k][i] = buf;
    } else {
      sgd_update(p, A(b.g[k][i]), s);
    }
    b.p[k][i] = P(p);
  }
}

// Calls launch(first, count, blocks) for the tensors of `list` in groups of one dtype and at most
// kTensorsPerLaunch, skipping empty ones; blocks is the x grid for the group's largest tensor.
template <typename F>
void for_each_group(const TensorList& list, F&& launch) {
  std::vector<size_t> order;
  for (size_t k = 0; k < list.size(); k++)
    if (list[k]->numel() > 0) order.push_back(k);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return list[a]->dtype < list[b]->dtype; });
  for (size_t start = 0; start < order.size();) {
    size_t end = start + 1;
    while (end < order.size() && end - start < size_t(kTensorsPerLaunch) && list[order[end]]->dtype == list[order[start]]->dtype) end++;
    int64_t largest = 0;
    for (size_t i = start; i < end; i++) largest = std::max(largest, list[order[i]]->numel());
    const int64_t blocks = std::min(kMaxBlocksPerTensor, (largest + kThreads - 1) / kThreads);
    launch(std::vector<size_t>(order.begin() + int64_t(start), order.begin() + int64_t(end)), dim3(unsigned(blocks), unsigned(end - start)));
    start = end;
  }
}

template <typename T>
T* ptr(const TensorPtr& t) {
  return static_cast<T*>(t->data());
}

// Partial norms: one double per block, the sum of |x|^p over its elements (or the largest |x|,
// NaN winning), reduced in shared memory in a fixed order.
struct NormPart {
  const void* x[kTensorsPerLaunch];
  int64_t n[kTensorsPerLaunch];
};

__device__ double nan_max(double a, double b) { return b > a || b != b ? b : a; }

// The block's values combined (summed, or the NaN-winning max) in a fixed tree order; the
// result is valid in thread 0.
__device__ double block_combine(double v, bool is_max) {
  __shared__ double shared[kThreads];
  shared[threadIdx.x] = v;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half /= 2) {
    if (int(threadIdx.x) < half) {
      const double other = shared[threadIdx.x + half];
      shared[threadIdx.x] = is_max ? nan_max(shared[threadIdx.x], other) : shared[threadIdx.x] + other;
    }
    __syncthreads();
  }
  return shared[0];
}

template <typename T>
__global__ void __launch_bounds__(kThreads) norm_partials_kernel(NormPart b, double norm_type, double* partials) {
  const int k = blockIdx.y;
  const T* x = static_cast<const T*>(b.x[k]);
  const bool is_max = isinf(norm_type);
  double acc = 0;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < b.n[k]; i += stride) {
    const double v = fabs(double(acc_t<T>(x[i])));
    if (is_max) acc = nan_max(acc, v);
    else acc += norm_type == 2 ? v * v : norm_type == 1 ? v : pow(v, norm_type);
  }
  acc = block_combine(acc, is_max);
  if (threadIdx.x == 0) partials[blockIdx.y * gridDim.x + blockIdx.x] = acc;
}

// total = the partials combined (one block, fixed order), then the p-th root.
__global__ void __launch_bounds__(kThreads) norm_total_kernel(const double* partials, int64_t count, double norm_type, double* total) {
  const bool is_max = isinf(norm_type);
  double acc = 0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) acc = is_max ? nan_max(acc, partials[i]) : acc + partials[i];
  const double s = block_combine(acc, is_max);
  if (threadIdx.x == 0) {
    *total = is_max ? s : norm_type == 2 ? sqrt(s) : norm_type == 1 ? s : pow(s, 1.0 / norm_type);
  }
}

template <typename T>
struct Scale {
  acc_t<T> factor;
  __device__ T operator()(T x) const { return T(acc_t<T>(x) * factor); }
};

}  // namespace

void adamw_step(const TensorList& params, const TensorList& grads, const TensorList& exp_avgs,
                const TensorList& exp_avg_sqs, const std::vector<int64_t>& steps, const AdamWOptions& o) {
  const int device = params[0]->device().index;
  use_device(device);
  const int64_t* replays = replay_counter(device);
  const double* replay_lr = o.lr_slot >= 0 ? graph_scalar(device, o.lr_slot) : nullptr;
  const AdamWHyper h{o.lr, o.beta1, o.beta2, o.eps, o.weight_decay};
  for_each_group(params, [&](const std::vector<size_t>& group, dim3 grid) {
    dispatch_float(params[group[0]]->dtype, "adamw", [&](auto tag) {
      using P = decltype(tag);
      using A = acc_t<P>;
      AdamWBatch<P, A> b{};
      for (size_t i = 0; i < group.size(); i++) {
        const size_t k = group[i];
        b.p[i] = ptr<P>(params[k]);
        b.g[i] = ptr<P>(grads[k]);
        b.m[i] = ptr<A>(exp_avgs[k]);
        b.v[i] = ptr<A>(exp_avg_sqs[k]);
        b.n[i] = params[k]->numel();
        // the first replay applies the captured step count, each later one the next
        b.step[i] = replays ? steps[k] - 1 : steps[k];
      }
      adamw_kernel<P, A><<<grid, kThreads, 0, current_stream(device)>>>(b, h, replays, replay_lr);
      check_launch("adamw");
    });
  });
}

void sgd_step(const TensorList& params, const TensorList& grads, const TensorList& momentum_buffers,
              const std::vector<bool>& fresh, const SgdOptions& o) {
  const int device = params[0]->device().index;
  use_device(device);
  const bool with_momentum = o.momentum != 0;
  const double* replay_lr = o.lr_slot >= 0 ? graph_scalar(device, o.lr_slot) : nullptr;
  for_each_group(params, [&](const std::vector<size_t>& group, dim3 grid) {
    dispatch_float(params[group[0]]->dtype, "sgd", [&](auto tag) {
      using P = decltype(tag);
      using A = acc_t<P>;
      SgdBatch<P, A> b{};
      for (size_t i = 0; i < group.size(); i++) {
        const size_t k = group[i];
        b.p[i] = ptr<P>(params[k]);
        b.g[i] = ptr<P>(grads[k]);
        b.buf[i] = with_momentum ? ptr<A>(momentum_buffers[k]) : nullptr;
        b.n[i] = params[k]->numel();
        b.fresh[i] = with_momentum && fresh[k];
      }
      const SgdScalars<A> s{A(o.lr), A(o.momentum), A(1.0 - o.dampening), A(o.weight_decay), o.nesterov};
      sgd_kernel<P, A><<<grid, kThreads, 0, current_stream(device)>>>(b, s, replay_lr);
      check_launch("sgd");
    });
  });
}

namespace {

// The norm of the tensors computed on the device: a pointer to it (a double) inside `scratch`,
// which holds the block partials too; nullptr when the tensors have no elements.
const double* device_total_norm(const TensorList& tensors, double norm_type, TensorPtr& scratch) {
  const Device dev = tensors[0]->device();
  const int device = dev.index;
  use_device(device);
  // every group's blocks write their partials one after the other
  std::vector<std::pair<std::vector<size_t>, dim3>> groups;
  int64_t count = 0;
  for_each_group(tensors, [&](const std::vector<size_t>& group, dim3 grid) {
    groups.push_back({group, grid});
    count += int64_t(grid.x) * grid.y;
  });
  if (count == 0) return nullptr;
  scratch = empty({count + 1}, DType::Float64, dev);
  double* base = ptr<double>(scratch);
  const cudaStream_t stream = current_stream(device);
  int64_t offset = 0;
  for (const auto& entry : groups) {
    const std::vector<size_t>& group = entry.first;
    const dim3 grid = entry.second;
    dispatch_float(tensors[group[0]]->dtype, "clipGradNorm", [&](auto tag) {
      using T = decltype(tag);
      NormPart b{};
      for (size_t i = 0; i < group.size(); i++) {
        b.x[i] = tensors[group[i]]->data();
        b.n[i] = tensors[group[i]]->numel();
      }
      norm_partials_kernel<T><<<grid, kThreads, 0, stream>>>(b, norm_type, base + offset);
      check_launch("clipGradNorm");
    });
    offset += int64_t(grid.x) * grid.y;
  }
  norm_total_kernel<<<1, kThreads, 0, stream>>>(base, count, norm_type, base + count);
  check_launch("clipGradNorm");
  return base + count;
}

// x * max_norm / (norm + 1e-6) when that factor is below 1 or NaN, else x; the norm read on the device.
template <typename T>
struct ClipByNorm {
  const double* norm;
  double max_norm;
  __device__ T operator()(T x) const {
    const double coef = max_norm / (*norm + 1e-6);
    return coef >= 1 ? x : T(acc_t<T>(x) * acc_t<T>(coef));
  }
};

__global__ void store_norm(const double* total, float* out) { *out = total ? float(*total) : 0.0f; }

}  // namespace

double total_norm(const TensorList& tensors, double norm_type) {
  const int device = tensors[0]->device().index;
  require_not_capturing(device, "clipGradNorm (it reads the norm on the host; clipGradNormTensor does not)");
  TensorPtr scratch;
  const double* total_on_device = device_total_norm(tensors, norm_type, scratch);
  if (!total_on_device) return 0;
  const cudaStream_t stream = current_stream(device);
  double total = 0;
  check(cudaMemcpyAsync(&total, total_on_device, sizeof total, cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync");
  check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  return total;
}

void clip_by_total_norm(const TensorList& tensors, const TensorList& contiguous, double max_norm, double norm_type,
                        const TensorPtr& norm) {
  const int device = norm->device().index;
  TensorPtr scratch;
  const double* total = device_total_norm(contiguous, norm_type, scratch);
  store_norm<<<1, 1, 0, current_stream(device)>>>(total, norm->data_as<float>());
  check_launch("clipGradNormTensor");
  if (!total) return;
  for (const TensorPtr& t : tensors) {
    dispatch_float(t->dtype, "clipGradNormTensor", [&](auto tag) {
      using T = decltype(tag);
      map<T, T>("clipGradNormTensor", t, {t}, ClipByNorm<T>{total, max_norm});
    });
  }
}

void scale_in_place(const TensorList& tensors, double factor) {
  for (const TensorPtr& t : tensors) {
    dispatch_float(t->dtype, "clipGradNorm", [&](auto tag) {
      using T = decltype(tag);
      map<T, T>("clipGradNorm", t, {t}, Scale<T>{acc_t<T>(factor)});
    });
  }
}

}  // namespace ignis::cuda
