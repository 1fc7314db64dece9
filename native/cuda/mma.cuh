// Tensor-core and asynchronous-copy instructions of sm_80 and later (PTX mma.sync, ldmatrix,
// cp.async), one wrapper per instruction; every lane of the warp calls mma_16816 and the
// ldmatrix ones together. The register fragment layouts are
// the PTX ISA's; with g = lane / 4 and t = lane % 4:
// - mma_16816, D[16][8] += A[16][16] B[16][8] (f32 accumulators, 16-bit operands, two per 32-bit
//   register, the lower column/row in the low half): a[0] = A[g][2t..2t+1], a[1] = A[g+8][2t..],
//   a[2] = A[g][2t+8..], a[3] = A[g+8][2t+8..]; b0 = B[2t..2t+1][g], b1 = B[2t+8..2t+9][g];
//   d[0..1] = D[g][2t..2t+1], d[2..3] = D[g+8][2t..2t+1].
// - ldmatrix_x4: four 8 x 8 matrices of 16-bit values; lanes 8m..8m+7 give the addresses of the
//   rows of matrix m (16-byte aligned), and r[m] of lane l receives row l / 4, columns
//   2(l % 4)..2(l % 4)+1 of matrix m; ldmatrix_x4_trans delivers each matrix transposed (rows
//   2(l % 4)..2(l % 4)+1 of column l / 4).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include "kernels/half.h"

namespace ignis::cuda {

template <typename T>
__device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (std::is_same_v<T, bfloat16>) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    static_assert(std::is_same_v<T, float16>, "mma_16816: bfloat16 or float16 operands");
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* row) {
  const unsigned address = unsigned(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address)
               : "memory");
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row) {
  const unsigned address = unsigned(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address)
               : "memory");
}

// 16 bytes from global to shared memory (both 16-byte aligned) by cp.async.cg: they are there for
// this thread after cp_async_wait_all, for the whole block after that and a __syncthreads.
__device__ __forceinline__ void cp_async_16(void* shared, const void* global) {
  const unsigned address = unsigned(__cvta_generic_to_shared(shared));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(address), "l"(global) : "memory");
}
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_all;" ::: "memory"); }

// lo and hi rounded to T (to nearest even), lo in the low half: an mma operand register.
template <typename T>
__device__ __forceinline__ uint32_t pack_pair(float lo, float hi) {
  uint32_t bits;
  if constexpr (std::is_same_v<T, bfloat16>) {
    const __nv_bfloat162 pair = __floats2bfloat162_rn(lo, hi);
    memcpy(&bits, &pair, sizeof bits);
  } else {
    const __half2 pair = __floats2half2_rn(lo, hi);
    memcpy(&bits, &pair, sizeof bits);
  }
  return bits;
}

}  // namespace ignis::cuda
