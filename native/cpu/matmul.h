#pragma once
#include <string>
#include "core/matmul.h"

namespace ignis::cpu {

// Runs g through cblas_sgemm (float32) or cblas_dgemm (float64). g.out is written (=), or
// accumulated (+=) when g.accumulate. Small matrices in a batch are spread over the thread pool
// with OpenBLAS on one thread; otherwise OpenBLAS threads each product. Both use at most
// num_threads() threads.
void gemm(DType dtype, const Gemm& g);

// OpenBLAS's build and the core it chose at run time, e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH ... Cooperlake".
std::string blas_config();
// The threads OpenBLAS is set to use now.
int blas_threads();

}  // namespace ignis::cpu
