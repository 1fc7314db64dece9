#include "cpu/matmul.h"

#include <cblas.h>
#include <algorithm>
#include <mutex>
#include "core/parallel.h"

namespace ignis::cpu {
namespace {

// OpenBLAS's thread count when the library started (OPENBLAS_NUM_THREADS, else the core count):
// ignis never asks it for more.
int blas_thread_limit() {
  static const int limit = openblas_get_num_threads();
  return limit;
}

// openblas_set_num_threads is process-wide: set it only when the wanted count changes. Products
// running on other threads meanwhile stay correct (the pthread build queues concurrent threaded
// calls); they may only run on fewer or more threads than they asked for.
void use_blas_threads(int n) {
  static std::mutex mutex;
  static int current = -1;
  std::lock_guard<std::mutex> lock(mutex);
  if (current != n) {
    openblas_set_num_threads(n);
    current = n;
  }
}

CBLAS_TRANSPOSE blas_trans(bool trans) { return trans ? CblasTrans : CblasNoTrans; }

// Row-major GEMM and GEMV, per element type.
void gemm_call(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, float alpha, const float* a, int lda,
               const float* b, int ldb, float beta, float* c, int ldc) {
  cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
void gemm_call(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, double alpha, const double* a, int lda,
               const double* b, int ldb, double beta, double* c, int ldc) {
  cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
void gemv_call(CBLAS_TRANSPOSE trans, int rows, int cols, float alpha, const float* a, int lda, const float* x, int incx, float* y) {
  cblas_sgemv(CblasRowMajor, trans, rows, cols, alpha, a, lda, x, incx, 1.0f, y, 1);
}
void gemv_call(CBLAS_TRANSPOSE trans, int rows, int cols, double alpha, const double* a, int lda, const double* x, int incx,
               double* y) {
  cblas_dgemv(CblasRowMajor, trans, rows, cols, alpha, a, lda, x, incx, 1.0, y, 1);
}

// One product of g. A single output row or column is a matrix-vector product, which OpenBLAS
// 0.3.21 runs several times faster as GEMV than as GEMM (it does not forward them itself).
template <typename T>
void product(const Gemm& g, const T* a, const T* b, T* out) {
  const int m = int(g.m), n = int(g.n), k = int(g.k), lda = int(g.a.ld), ldb = int(g.b.ld);
  const T alpha = T(g.alpha);
  if (m == 1 || n == 1) {
    // y += A x from zero: GEMV's beta = 0 has not always cleared NaNs in y, and out is uninitialised.
    if (!g.accumulate) std::fill(out, out + (m == 1 ? n : m), T(0));
    if (m == 1) {  // out row = b^T a; b is stored k x n, or n x k when trans
      gemv_call(g.b.trans ? CblasNoTrans : CblasTrans, g.b.trans ? n : k, g.b.trans ? k : n, alpha, b, ldb, a, g.a.trans ? lda : 1, out);
    } else {  // out column = a b; a is stored m x k, or k x m when trans
      gemv_call(g.a.trans ? CblasTrans : CblasNoTrans, g.a.trans ? k : m, g.a.trans ? m : k, alpha, a, lda, b, g.b.trans ? 1 : ldb, out);
    }
    return;
  }
  gemm_call(blas_trans(g.a.trans), blas_trans(g.b.trans), m, n, k, alpha, a, lda, b, ldb, T(g.accumulate ? 1 : 0), out, n);
}

// Multiply-adds per product below which a batch is spread over the thread pool (OpenBLAS on one
// thread per product) rather than each product over OpenBLAS's threads.
constexpr double kBatchParallelWork = double(1 << 24);
// Multiply-adds a pool task should hold at least.
constexpr double kTaskWork = double(1 << 16);

template <typename T>
void gemm_typed(const Gemm& g) {
  const T* a = static_cast<const T*>(g.a.data);
  const T* b = static_cast<const T*>(g.b.data);
  T* out = static_cast<T*>(g.out);
  const int64_t nbatch = shape_numel(g.batch);
  const int batch_dims = int(g.batch.size());
  auto run = [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; i++) {
      int64_t offset_a = 0, offset_b = 0, rest = i;
      for (int d = batch_dims - 1; d >= 0; d--) {
        int64_t index = rest % g.batch[d];
        rest /= g.batch[d];
        offset_a += index * g.a.batch_strides[d];
        offset_b += index * g.b.batch_strides[d];
      }
      product(g, a + offset_a, b + offset_b, out + i * g.m * g.n);
    }
  };
  const double work = double(g.m) * double(g.n) * double(g.k);
  // Inside a pool task already: one thread, as nested threading would only queue.
  const int threads = in_parallel_region() ? 1 : std::min(num_threads(), blas_thread_limit());
  if (threads > 1 && nbatch >= threads && work < kBatchParallelWork) {
    use_blas_threads(1);
    parallel_for(nbatch, std::max<int64_t>(1, int64_t(kTaskWork / work)), run);
  } else {
    use_blas_threads(threads);
    run(0, nbatch);
  }
}

}  // namespace

void gemm(DType dtype, const Gemm& g) {
  switch (dtype) {
    case DType::Float32: return gemm_typed<float>(g);
    case DType::Float64: return gemm_typed<double>(g);
    default: fail(ERR_INTERNAL, "gemm: ", dtype_name(dtype), " must be computed in float32");
  }
}

std::string blas_config() { return openblas_get_config(); }

int blas_threads() { return openblas_get_num_threads(); }

}  // namespace ignis::cpu
