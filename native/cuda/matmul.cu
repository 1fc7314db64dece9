#include "cuda/matmul.h"

#include <library_types.h>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>
#include "core/cuda_runtime.h"
#include "core/dtype.h"
#include "cuda/loader.h"
#include "cuda/loop.cuh"
#include "cuda/runtime.h"

namespace ignis::cuda {
namespace {

// The part of cuBLAS's API used here, declared from its documentation (no cuBLAS header is
// needed to build). Its enums are ints in the C ABI.
using cublasHandle_t = struct cublasContext*;
using cublasStatus_t = int;
constexpr int CUBLAS_OP_N = 0, CUBLAS_OP_T = 1;
constexpr int CUBLAS_COMPUTE_32F = 68, CUBLAS_COMPUTE_32F_FAST_TF32 = 77, CUBLAS_COMPUTE_64F = 70;
constexpr int CUBLAS_GEMM_DEFAULT = -1;

struct Cublas {
  cublasStatus_t (*create)(cublasHandle_t*);
  cublasStatus_t (*set_stream)(cublasHandle_t, cudaStream_t);
  cublasStatus_t (*set_workspace)(cublasHandle_t, void*, size_t);  // optional (cuBLAS 11.0 and later)
  cublasStatus_t (*gemm_strided_batched_ex)(cublasHandle_t handle, int transa, int transb, int m, int n, int k,
                                            const void* alpha, const void* a, cudaDataType a_type, int lda, long long stride_a,
                                            const void* b, cudaDataType b_type, int ldb, long long stride_b, const void* beta,
                                            void* c, cudaDataType c_type, int ldc, long long stride_c, int batch_count,
                                            int compute_type, int algo);
  const char* (*status_string)(cublasStatus_t);  // optional (cuBLAS 11.4 and later)
};

const char* status_name(cublasStatus_t status) {
  switch (status) {
    case 1: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case 3: return "CUBLAS_STATUS_ALLOC_FAILED";
    case 7: return "CUBLAS_STATUS_INVALID_VALUE";
    case 8: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case 11: return "CUBLAS_STATUS_MAPPING_ERROR";
    case 13: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case 14: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case 15: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case 16: return "CUBLAS_STATUS_LICENSE_ERROR";
  }
  return "unknown cuBLAS status";
}

std::mutex g_mutex;  // cuBLAS handles are not thread-safe: calls go one at a time
const Cublas* g_api = nullptr;
cublasHandle_t g_handles[kMaxDevices];

void check_cublas(cublasStatus_t status, const char* call) {
  if (status == 0) return;
  const char* text = g_api && g_api->status_string ? g_api->status_string(status) : nullptr;
  fail(status == 3 ? ERR_OOM : ERR_CUDA, call, ": ", status_name(status), text ? std::string(" (") + text + ")" : "");
}

const Cublas& api_locked() {
  if (!g_api) {
    static Cublas api;
    api.create = function<decltype(api.create)>(Library::Cublas, "cublasCreate_v2");
    api.set_stream = function<decltype(api.set_stream)>(Library::Cublas, "cublasSetStream_v2");
    api.set_workspace = reinterpret_cast<decltype(api.set_workspace)>(optional_symbol(Library::Cublas, "cublasSetWorkspace_v2"));
    api.gemm_strided_batched_ex = function<decltype(api.gemm_strided_batched_ex)>(Library::Cublas, "cublasGemmStridedBatchedEx");
    api.status_string = reinterpret_cast<decltype(api.status_string)>(optional_symbol(Library::Cublas, "cublasGetStatusString"));
    g_api = &api;
  }
  return *g_api;
}

// cuBLAS's workspace, ours and one per stream (streams live as long as the process): GEMMs
// captured in a CUDA graph then use fixed memory, and GEMMs on two streams never share one.
constexpr size_t kWorkspaceBytes = size_t(32) << 20;
std::map<cudaStream_t, void*> g_workspaces[kMaxDevices];

cublasHandle_t handle_locked(const Cublas& api, int device) {
  if (!g_handles[device]) check_cublas(relaxed_capture([&] { return api.create(&g_handles[device]); }), "cublasCreate");
  return g_handles[device];
}

// Points the handle at `stream` and at that stream's workspace (cublasSetStream resets it).
void set_stream_locked(const Cublas& api, cublasHandle_t handle, int device, cudaStream_t stream) {
  check_cublas(api.set_stream(handle, stream), "cublasSetStream");
  if (!api.set_workspace) return;
  void*& workspace = g_workspaces[device][stream];
  if (!workspace) check(relaxed_capture([&] { return cudaMalloc(&workspace, kWorkspaceBytes); }), "cudaMalloc");
  check_cublas(api.set_workspace(handle, workspace, kWorkspaceBytes), "cublasSetWorkspace");
}

cudaDataType data_type(DType dtype) {
  switch (dtype) {
    case DType::Float32: return CUDA_R_32F;
    case DType::Float64: return CUDA_R_64F;
    case DType::BFloat16: return CUDA_R_16BF;
    case DType::Float16: return CUDA_R_16F;
    default: fail(ERR_DTYPE, "matmul: no CUDA GEMM for ", dtype_name(dtype));
  }
}

// One batch dim of the product: its size and each operand's stride (elements).
struct BatchDim {
  int64_t size, a, b, out;
};

// g's batch dims, outermost first, without size-1 dims and with neighbours merged where every
// operand steps through them evenly; the last is the one cuBLAS strides through.
std::vector<BatchDim> batch_dims(const Gemm& g) {
  std::vector<BatchDim> dims;
  int64_t out_stride = g.m * g.n;
  for (size_t d = g.batch.size(); d-- > 0;) {
    if (g.batch[d] != 1) dims.insert(dims.begin(), {g.batch[d], g.a.batch_strides[d], g.b.batch_strides[d], out_stride});
    out_stride *= g.batch[d];
  }
  std::vector<BatchDim> merged;
  for (const BatchDim& d : dims) {
    if (!merged.empty()) {
      BatchDim& outer = merged.back();
      if (outer.a == d.a * d.size && outer.b == d.b * d.size && outer.out == d.out * d.size) {
        outer = {outer.size * d.size, d.a, d.b, d.out};
        continue;
      }
    }
    merged.push_back(d);
  }
  if (merged.empty()) merged.push_back({1, 0, 0, 0});
  return merged;
}

// Split-K: cuBLAS gives each block one tile of the output, so a product with few tiles and a
// long k (a LoRA adapter's gradient, [16, 4096] summed over 8192 tokens) keeps most SMs idle.
// Such a product is cut along k into chunks whose float32 partial products are then summed in
// a fixed order (deterministic). IGNIS_CUDA_SPLIT_K=off turns it off.
constexpr int64_t kTile = 128;           // the output tile assumed per block
constexpr int64_t kMinSplitChunk = 1024;  // no chunk shorter: each partial product stays a real GEMM

int sm_count(int device) {
  static int counts[kMaxDevices];
  if (!counts[device]) check(cudaDeviceGetAttribute(&counts[device], cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute");
  return counts[device];
}

bool split_k_allowed() {
  const char* choice = std::getenv("IGNIS_CUDA_SPLIT_K");
  if (!choice || !*choice || std::strcmp(choice, "auto") == 0) return true;
  if (std::strcmp(choice, "off") == 0) return false;
  fail(ERR_ARG, "matmul: IGNIS_CUDA_SPLIT_K must be auto or off, got '", choice, "'");
}

// The length of g's k chunks (a multiple of kTile), or k itself when g is not split: a single
// 16/32-bit product whose tiles fill at most a quarter of the SMs, split into at most enough
// chunks for two blocks per SM.
int64_t split_k_chunk(DType dtype, const Gemm& g, int64_t products) {
  if (!split_k_allowed() || dtype == DType::Float64 || products != 1 || g.k < 2 * kMinSplitChunk) return g.k;
  const int64_t tiles = ceil_div(g.m, kTile) * ceil_div(g.n, kTile), sms = sm_count(g.device.index);
  if (tiles * 4 > sms) return g.k;
  int64_t parts = 2;
  while (parts * tiles < 2 * sms) parts *= 2;
  parts = std::min(parts, g.k / kMinSplitChunk);
  return ceil_div(ceil_div(g.k, parts), kTile) * kTile;
}

// out[i] = sum of the `parts` partial products at i, in order (+ out[i] when `accumulate`).
template <typename T>
__global__ void __launch_bounds__(kThreads) sum_partials_kernel(const float* partials, int64_t parts, int64_t count, T* out,
                                                               bool accumulate) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
    float sum = 0;
    for (int64_t p = 0; p < parts; p++) sum += partials[p * count + i];
    out[i] = T(accumulate ? sum + float(out[i]) : sum);
  }
}

// The cuBLAS calls of one gemm(), with its handle held: out^T = b^T a^T column-major (a row-major
// operand read column-major is already its transpose), `count` products at the given strides.
struct Launcher {
  const Cublas& api;
  cublasHandle_t handle;
  const Gemm& g;
  cudaDataType type, out_type;
  int compute;
  const void* alpha;

  // into float32 partial products when `partial`, else into g's output
  void run(const void* a, int64_t stride_a, const void* b, int64_t stride_b, void* out, bool partial, int64_t stride_out, int count,
           int64_t k, const void* beta) const {
    check_cublas(api.gemm_strided_batched_ex(handle, g.b.trans ? CUBLAS_OP_T : CUBLAS_OP_N, g.a.trans ? CUBLAS_OP_T : CUBLAS_OP_N,
                                             int(g.n), int(g.m), int(k), alpha, b, type, int(g.b.ld), stride_b, a, type, int(g.a.ld),
                                             stride_a, beta, out, partial ? CUDA_R_32F : out_type, int(g.n), stride_out, count, compute,
                                             CUBLAS_GEMM_DEFAULT),
                 "cublasGemmStridedBatchedEx");
  }
};

// g, a single 16/32-bit product, as float32 partial products over k chunks of `chunk` (one
// batched call, and one more for a shorter last chunk) summed into g.out.
void split_k_gemm(DType dtype, DType out_dtype, const Launcher& launch, const TensorPtr& partials, int64_t chunk) {
  const Gemm& g = launch.g;
  const int64_t full = g.k / chunk, tail = g.k - full * chunk, area = g.m * g.n;
  // chunk c of a is its columns [c chunk, (c + 1) chunk), of b the same rows
  const int64_t step_a = (g.a.trans ? g.a.ld : 1) * chunk, step_b = (g.b.trans ? 1 : g.b.ld) * chunk;
  const size_t size = dtype_size(dtype);
  const char* a = static_cast<const char*>(g.a.data);
  const char* b = static_cast<const char*>(g.b.data);
  float* out = partials->data_as<float>();
  const float zero = 0;
  launch.run(a, step_a, b, step_b, out, true, area, int(full), chunk, &zero);
  if (tail > 0)
    launch.run(a + full * step_a * int64_t(size), 0, b + full * step_b * int64_t(size), 0, out + full * area, true, 0, 1, tail, &zero);
  const int64_t parts = partials->shape[0];
  dispatch_float(out_dtype, "matmul", [&](auto tag) {
    using T = decltype(tag);
    sum_partials_kernel<<<grid_for(area), kThreads, 0, current_stream(g.device.index)>>>(out, parts, area, static_cast<T*>(g.out),
                                                                                        g.accumulate);
  });
  check_launch("matmul");
}

}  // namespace

DType gemm_dtype(DType dtype) { return dtype; }

void gemm(DType dtype, const Gemm& g) { gemm_to(dtype, dtype, g); }

void gemm_to(DType dtype, DType out_dtype, const Gemm& g) {
  if (out_dtype != dtype && !(out_dtype == DType::Float32 && dtype_size(dtype) == 2))
    fail(ERR_INTERNAL, "matmul: no ", dtype_name(out_dtype), " output for ", dtype_name(dtype), " operands");
  const int device = g.device.index;
  const cudaDataType type = data_type(dtype);
  const bool f64 = dtype == DType::Float64;
  const int compute = f64 ? CUBLAS_COMPUTE_64F
                      : dtype == DType::Float32 && float32_matmul_tf32() ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                                         : CUBLAS_COMPUTE_32F;
  // alpha and beta in the compute type
  const double alpha64 = g.alpha, beta64 = g.accumulate ? 1 : 0;
  const float alpha32 = float(g.alpha), beta32 = float(beta64);
  const void* alpha = f64 ? static_cast<const void*>(&alpha64) : &alpha32;
  const void* beta = f64 ? static_cast<const void*>(&beta64) : &beta32;
  const size_t size = dtype_size(dtype), out_size = dtype_size(out_dtype);
  const std::vector<BatchDim> dims = batch_dims(g);
  const BatchDim inner = dims.back();
  int64_t outer_count = 1;
  for (size_t d = 0; d + 1 < dims.size(); d++) outer_count *= dims[d].size;

  use_device(device);
  const int64_t chunk = split_k_chunk(dtype, g, outer_count * inner.size);
  const TensorPtr partials = chunk < g.k ? empty({ceil_div(g.k, chunk), g.m, g.n}, DType::Float32, g.device) : nullptr;
  std::lock_guard<std::mutex> lock(g_mutex);
  const Cublas& api = api_locked();
  cublasHandle_t handle = handle_locked(api, device);
  set_stream_locked(api, handle, device, current_stream(device));
  const Launcher launch{api, handle, g, type, data_type(out_dtype), compute, alpha};
  if (partials) return split_k_gemm(dtype, out_dtype, launch, partials, chunk);
  for (int64_t o = 0; o < outer_count; o++) {
    int64_t offset_a = 0, offset_b = 0, offset_out = 0;
    for (int64_t d = int64_t(dims.size()) - 2, rest = o; d >= 0; d--) {
      const int64_t index = rest % dims[size_t(d)].size;
      rest /= dims[size_t(d)].size;
      offset_a += index * dims[size_t(d)].a;
      offset_b += index * dims[size_t(d)].b;
      offset_out += index * dims[size_t(d)].out;
    }
    for (int64_t done = 0; done < inner.size; done += INT_MAX) {
      const int count = int(inner.size - done < INT_MAX ? inner.size - done : INT_MAX);
      const char* a = static_cast<const char*>(g.a.data) + (offset_a + done * inner.a) * int64_t(size);
      const char* b = static_cast<const char*>(g.b.data) + (offset_b + done * inner.b) * int64_t(size);
      char* out = static_cast<char*>(g.out) + (offset_out + done * inner.out) * int64_t(out_size);
      launch.run(a, inner.a, b, inner.b, out, false, inner.out, count, g.k, beta);
    }
  }
}

}  // namespace ignis::cuda
