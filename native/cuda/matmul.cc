#include "cuda/matmul.h"

#include <library_types.h>
#include <climits>
#include <map>
#include <mutex>
#include <vector>
#include "core/cuda_runtime.h"
#include "cuda/loader.h"
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

}  // namespace

DType gemm_dtype(DType dtype) { return dtype; }

void gemm(DType dtype, const Gemm& g) {
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
  const size_t size = dtype_size(dtype);
  const std::vector<BatchDim> dims = batch_dims(g);
  const BatchDim inner = dims.back();
  int64_t outer_count = 1;
  for (size_t d = 0; d + 1 < dims.size(); d++) outer_count *= dims[d].size;

  use_device(device);
  std::lock_guard<std::mutex> lock(g_mutex);
  const Cublas& api = api_locked();
  cublasHandle_t handle = handle_locked(api, device);
  set_stream_locked(api, handle, device, current_stream(device));
  // cuBLAS is column-major: the row-major out = a b is computed as out^T = b^T a^T, where a
  // row-major operand read column-major is already its transpose.
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
      char* out = static_cast<char*>(g.out) + (offset_out + done * inner.out) * int64_t(size);
      check_cublas(api.gemm_strided_batched_ex(handle, g.b.trans ? CUBLAS_OP_T : CUBLAS_OP_N, g.a.trans ? CUBLAS_OP_T : CUBLAS_OP_N,
                                               int(g.n), int(g.m), int(g.k), alpha, b, type, int(g.b.ld), inner.b, a, type,
                                               int(g.a.ld), inner.a, beta, out, type, int(g.n), inner.out, count, compute,
                                               CUBLAS_GEMM_DEFAULT),
                   "cublasGemmStridedBatchedEx");
    }
  }
}

}  // namespace ignis::cuda
