// GEMM on CUDA through cuBLAS's cublasGemmStridedBatchedEx (loaded at run time, cuda/loader.h),
// with the contract of cpu/matmul.h. float32, float64, bfloat16 and float16 run in their own
// dtype (16-bit operands accumulate in float32); float32 uses TF32 tensor cores when
// ignis.cuda.setMatmulPrecision('high') allows it. Operands stored transposed go to cuBLAS with
// the transpose flag, never copied. A single product with few output tiles and a long k (an
// adapter's gradient over many tokens) is split along k into float32 partial products that are
// summed in a fixed order (IGNIS_CUDA_SPLIT_K=off turns this off).
#pragma once
#include "core/matmul.h"

namespace ignis::cuda {

DType gemm_dtype(DType dtype);
void gemm(DType dtype, const Gemm& g);
// gemm with out in `out_dtype`: dtype itself or, for 16-bit operands, float32.
void gemm_to(DType dtype, DType out_dtype, const Gemm& g);

}  // namespace ignis::cuda
