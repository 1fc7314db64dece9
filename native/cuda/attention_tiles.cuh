// Device-side pieces shared by the attention kernels of attention.cu (float FMA tiles) and
// attention_mma.cu (tensor-core tiles): how they read operands, the mask and the causal limit,
// and how they write outputs. Only device code: no runtime calls.
#pragma once
#include <cstdint>
#include "kernels/attention.h"

namespace ignis::cuda {

// One operand's matrices: element (i, c) of matrix (b, h) at data + b * bs0 + h * bs1 + offset.
template <typename A>
struct Matrix {
  const A* data;
  bool trans;
  int64_t ld, bs0, bs1;
  __device__ A at(int64_t b, int64_t h, int64_t i, int64_t c) const {
    return data[b * bs0 + h * bs1 + (trans ? i + c * ld : i * ld + c)];
  }
};

// The sizes and options the flash kernels need.
struct FlashSizes {
  int64_t heads, kv_heads, q_len, k_len;
  bool causal;
  float scale;
};

// The additive mask, in the storage dtype at element strides [b, h, i, j] (data null: none).
template <typename T>
struct FlashMask {
  const T* data;
  int64_t s0, s1, s2, s3;
  __device__ float at(int64_t b, int64_t h, int64_t i, int64_t j) const {
    return data ? float(data[b * s0 + h * s1 + i * s2 + j * s3]) : 0.0f;
  }
};

// An output [B, H, L, D] in the storage dtype, any strides.
template <typename T>
struct FlashOutput {
  T* data;
  int64_t s0, s1, s2, s3;
  __device__ T& at(int64_t b, int64_t h, int64_t i, int64_t c) const { return data[b * s0 + h * s1 + i * s2 + c * s3]; }
};

// How many keys (from the first) query i sees; 0 past the last query.
__device__ inline int64_t flash_visible(const FlashSizes& s, int64_t i) {
  if (i >= s.q_len) return 0;
  return s.causal ? causal_visible(i, s.q_len, s.k_len, 0, s.k_len) : s.k_len;
}

// Rows [first, first + R) of matrix (b, h) of m (D columns, elements of type Src) into tile
// [R][Stride] as Dst (a float, or a 16-bit storage type rounding to nearest even), by `Threads`
// threads; rows from `end` on are zeros. Consecutive threads read consecutive elements: along
// the rows of a row-major matrix, down the columns of a column-major one.
template <int R, int D, int Stride, int Threads, typename Src, typename Dst>
__device__ void load_rows(Dst* tile, const Matrix<Src>& m, int64_t b, int64_t h, int64_t first, int64_t end) {
  const Src* base = m.data + b * m.bs0 + h * m.bs1;
  for (int e = threadIdx.x; e < R * D; e += Threads) {
    const int r = m.trans ? e % R : e / D, c = m.trans ? e / R : e % D;
    const int64_t i = first + r;
    tile[r * Stride + c] = Dst(i < end ? float(base[m.trans ? i + c * m.ld : i * m.ld + c]) : 0.0f);
  }
}

// The max (NaN skipped) and the sum over groups of `Width` neighbouring lanes (a power of two
// up to 32), every lane of the warp taking part.
template <int Width>
__device__ float lanes_max(float v) {
  for (int o = Width / 2; o > 0; o /= 2) v = score_max(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
template <int Width>
__device__ float lanes_sum(float v) {
  for (int o = Width / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Block x of a grid over (batch, head, tile) with `tiles` tiles per head: its (batch, head) pair
// and its tile.
struct FlashBlock {
  int64_t b, h, tile;
};
__device__ inline FlashBlock flash_block(int64_t heads, int64_t tiles) {
  const int64_t pair = int64_t(blockIdx.x) / tiles;
  return {pair / heads, pair % heads, int64_t(blockIdx.x) % tiles};
}

}  // namespace ignis::cuda
