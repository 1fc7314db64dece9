// The tensor-core attention kernels (FlashAttention-2 style, sm_80 and later, bfloat16 or float16
// storage T, float accumulation and softmax): 4 warps per block, each warp owning 16 rows of the
// block's 64 (query rows for the forward and dQ, keys for dK and dV) against tiles of the other
// side, read as T and staged in shared memory by cp.async two tiles deep (the next tile loads
// while the warps work on the current one). Products run on mma.sync m16n8k16 from ldmatrix
// fragments; the f32 accumulators of one product (P, dS) are rounded to T in registers and
// become the A operand of the next, since the accumulator layout of m16n8k16 is its A layout
// column pair by column pair (see cuda/mma.cuh). In an accumulator fragment acc[n][c] of a warp,
// lane l holds row l / 4 + 8 (c / 2) and column 8 n + 2 (l % 4) + c % 2. Scores are kept in
// units of log2(e), so that the probabilities take exp2. Operands whose rows do
// not start 16-byte aligned (or column-major ones) are read element by element instead of by
// cp.async: slower, the same results.
#pragma once
#include <cstdint>
#include "cuda/attention_tiles.cuh"
#include "cuda/mma.cuh"

namespace ignis::cuda {

constexpr int kMmaWarps = 4;
constexpr int kMmaThreads = 32 * kMmaWarps;
constexpr int kMmaRows = 16 * kMmaWarps;  // query rows (forward, dQ) or keys (dK, dV) per block
constexpr int kMmaKeys = 64;              // keys per tile of the forward and dQ
// Queries per tile of the dK/dV kernel: fewer for head dim 128, so that its two tiles of scores
// fit in registers beside the dK and dV accumulators.
constexpr int mma_dkv_queries(int d) { return d == 128 ? 32 : 64; }
// Elements per row of a tile in shared memory: 8 of padding keep each row 16-byte aligned (as
// ldmatrix needs) and put the 8 rows of an 8 x 8 matrix in distinct banks.
constexpr int mma_stride(int d) { return d + 8; }

// Shared memory (bytes) of the kernels below for head dim d: the block's own rows, and two
// buffers of the tiles streamed past them.
constexpr size_t mma_forward_shared(int d) { return sizeof(uint16_t) * size_t((kMmaRows + 4 * kMmaKeys) * mma_stride(d)); }
constexpr size_t mma_dq_shared(int d) { return sizeof(uint16_t) * size_t((2 * kMmaRows + 4 * kMmaKeys) * mma_stride(d)); }
constexpr size_t mma_dkv_shared(int d) {
  return sizeof(uint16_t) * size_t((2 * kMmaRows + 4 * mma_dkv_queries(d)) * mma_stride(d)) + sizeof(float) * 4 * mma_dkv_queries(d);
}

// Rows [first, first + R) of matrix (b, h) of m (D columns) into tile [R][Stride]; rows from
// `end` on are zeros. Where every row starts 16-byte aligned the rows go by cp.async (in shared
// memory after cp_async_wait_all and a __syncthreads); other layouts element by element.
template <int R, int D, int Stride, typename T>
__device__ void load_tile(T* tile, const Matrix<T>& m, int64_t b, int64_t h, int64_t first, int64_t end) {
  constexpr int kChunk = 16 / sizeof(T);  // elements per 16 bytes
  static_assert(D % kChunk == 0 && Stride % kChunk == 0, "load_tile: rows of whole 16-byte chunks");
  if (m.trans || reinterpret_cast<uintptr_t>(m.data) % 16 != 0 || m.ld % kChunk != 0 || m.bs0 % kChunk != 0 || m.bs1 % kChunk != 0) {
    load_rows<R, D, Stride, kMmaThreads>(tile, m, b, h, first, end);
    return;
  }
  const T* base = m.data + b * m.bs0 + h * m.bs1;
  for (int e = threadIdx.x; e < R * D / kChunk; e += kMmaThreads) {
    const int r = e / (D / kChunk), c = e % (D / kChunk) * kChunk;
    const int64_t i = first + r;
    T* to = tile + r * Stride + c;
    if (i < end)
      cp_async_16(to, base + i * m.ld + c);
    else
      *reinterpret_cast<uint4*>(to) = make_uint4(0, 0, 0, 0);
  }
}

// Sets accumulator fragments to zero.
template <int N>
__device__ void clear_fragments(float (&acc)[N][4]) {
#pragma unroll
  for (int n = 0; n < N; n++)
#pragma unroll
    for (int c = 0; c < 4; c++) acc[n][c] = 0;
}

// The A fragment of rows [0, 16), columns [col, col + 16) of tile [.][Stride] (the warp's rows).
template <int Stride, typename T>
__device__ void load_a(uint32_t (&a)[4], const T* rows, int col) {
  const int lane = threadIdx.x % 32;
  ldmatrix_x4(a, rows + (lane % 16) * Stride + col + (lane / 16) * 8);
}

// acc [16][N] = A [16][K] times tile^T, tile [N][Stride] holding the rows of B^T; a(kk, frag)
// gives the A fragment of columns [16 kk, 16 kk + 16).
template <typename T, int K, int N, int Stride, typename AFragment>
__device__ void product_rows(float (&acc)[N / 8][4], AFragment a, const T* tile) {
  const int lane = threadIdx.x % 32;
  clear_fragments(acc);
#pragma unroll
  for (int kk = 0; kk < K / 16; kk++) {
    uint32_t af[4];
    a(kk, af);
#pragma unroll
    for (int nb = 0; nb < N / 16; nb++) {
      // matrices: rows 16 nb + 0..7 then + 8..15 of the tile, each at columns 16 kk + 0..7 and
      // + 8..15; a non-transposed 8 x 8 matrix of B^T rows is B's b0/b1 register
      uint32_t bf[4];
      ldmatrix_x4(bf, tile + (nb * 16 + (lane / 16) * 8 + lane % 8) * Stride + kk * 16 + ((lane / 8) % 2) * 8);
      mma_16816<T>(acc[2 * nb], af, bf[0], bf[1]);
      mma_16816<T>(acc[2 * nb + 1], af, bf[2], bf[3]);
    }
  }
}

// acc [16][N] += P [16][K] times tile [K][Stride] (its first N columns), P given as the f32
// accumulators of product_rows and rounded to T.
template <typename T, int K, int N, int Stride>
__device__ void accumulate_cols(float (&acc)[N / 8][4], const float (&p)[K / 8][4], const T* tile) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int kk = 0; kk < K / 16; kk++) {
    const float(&lo)[4] = p[2 * kk];
    const float(&hi)[4] = p[2 * kk + 1];
    const uint32_t af[4] = {pack_pair<T>(lo[0], lo[1]), pack_pair<T>(lo[2], lo[3]), pack_pair<T>(hi[0], hi[1]),
                            pack_pair<T>(hi[2], hi[3])};
#pragma unroll
    for (int nb = 0; nb < N / 16; nb++) {
      // matrices: rows 16 kk + 0..7 then + 8..15 of the tile, at columns 16 nb + 0..7, then both
      // at + 8..15; transposed, an 8 x 8 matrix of B rows is B's b0/b1 register
      uint32_t bf[4];
      ldmatrix_x4_trans(bf, tile + (kk * 16 + ((lane / 8) % 2) * 8 + lane % 8) * Stride + nb * 16 + (lane / 16) * 8);
      mma_16816<T>(acc[2 * nb], af, bf[0], bf[1]);
      mma_16816<T>(acc[2 * nb + 1], af, bf[2], bf[3]);
    }
  }
}

// The rows of the block a lane holds in accumulator fragments: first + warp * 16 + lane / 4 and 8
// further.
__device__ inline int64_t fragment_row(int64_t first, int x) { return first + (threadIdx.x / 32) * 16 + (threadIdx.x % 32) / 4 + 8 * x; }
// The column of element c of fragment n.
__device__ inline int fragment_col(int n, int c) { return 8 * n + 2 * (threadIdx.x % 4) + c % 2; }

// Writes the warp's accumulator fragments acc (its 16 rows from `first` on, D columns), row x of
// the lane multiplied by factor[x], to matrix (b, h) of out; rows from `end` on are left alone.
template <int D, typename T>
__device__ void store_fragments(const FlashOutput<T>& out, int64_t b, int64_t h, int64_t first, int64_t end, const float (&acc)[D / 8][4],
                                const float (&factor)[2]) {
#pragma unroll
  for (int x = 0; x < 2; x++) {
    const int64_t row = fragment_row(first, x);
    if (row >= end) continue;
#pragma unroll
    for (int n = 0; n < D / 8; n++)
#pragma unroll
      for (int c = 2 * x; c < 2 * x + 2; c++) out.at(b, h, row, fragment_col(n, c)) = T(acc[n][c] * factor[x]);
  }
}

// The query rows of a forward or dQ block (the last tiles of queries, under causal masking the
// longest, first): batch b, head h, key/value head kh, first row q0, and how many tiles of keys
// those rows see (tiles the causal limit hides from all of them are never read).
struct QueryTile {
  int64_t b, h, kh, q0, key_tiles;
};
__device__ inline QueryTile query_tile(const FlashSizes& s, int64_t q_tiles) {
  const FlashBlock blk = flash_block(s.heads, q_tiles);
  const int64_t q0 = (q_tiles - 1 - blk.tile) * kMmaRows;
  const int64_t key_end = flash_visible(s, (q0 + kMmaRows < s.q_len ? q0 + kMmaRows : s.q_len) - 1);
  return {blk.b, blk.h, blk.h / (s.heads / s.kv_heads), q0, (key_end + kMmaKeys - 1) / kMmaKeys};
}

// Buffer t % 2 of kv (two buffers of [kMmaKeys][Stride] keys, then as many values), and key tile
// t of key/value head (b, kh) staged into it.
template <int D, typename T>
__device__ T* key_buffer(T* kv, int64_t t) {
  return kv + (t % 2) * 2 * kMmaKeys * mma_stride(D);
}
template <int D, typename T>
__device__ void stage_keys(T* kv, const Matrix<T>& k, const Matrix<T>& v, int64_t b, int64_t kh, int64_t t, int64_t k_len) {
  constexpr int S = mma_stride(D);
  T* ks = key_buffer<D>(kv, t);
  load_tile<kMmaKeys, D, S>(ks, k, b, kh, t * kMmaKeys, k_len);
  load_tile<kMmaKeys, D, S>(ks + kMmaKeys * S, v, b, kh, t * kMmaKeys, k_len);
}

// Key tile t of `tiles` in place for the whole block (its copies waited for, and every warp done
// with tile t - 1, whose buffer tile t + 1 takes), and tile t + 1 staged; returns tile t's keys
// (its values follow them).
template <int D, typename T>
__device__ const T* next_key_tile(T* kv, const Matrix<T>& k, const Matrix<T>& v, int64_t b, int64_t kh, int64_t t, int64_t tiles,
                                  int64_t k_len) {
  cp_async_wait_all();
  __syncthreads();
  if (t + 1 < tiles) stage_keys<D>(kv, k, v, b, kh, t + 1, k_len);
  return key_buffer<D>(kv, t);
}

// out and lse for one tile of 64 query rows: S = scale Q K^T (+ mask) per tile of 64 keys, the
// rows' online softmax, O += P V; tiles of keys that the causal limit hides from every row of
// the tile are never read.
template <typename T, int D>
__global__ void __launch_bounds__(kMmaThreads)
    mma_forward_kernel(Matrix<T> q, Matrix<T> k, Matrix<T> v, FlashMask<T> mask, FlashOutput<T> out, float* lse, FlashSizes s,
                       int64_t q_tiles) {
  constexpr int S = mma_stride(D), BQ = kMmaRows, BK = kMmaKeys;
  extern __shared__ __align__(16) unsigned char mma_shared[];
  T* qs = reinterpret_cast<T*>(mma_shared);  // [BQ][S]
  T* kv = qs + BQ * S;                       // two buffers of [BK][S] keys, then [BK][S] values
  const int warp = threadIdx.x / 32;
  const QueryTile tile = query_tile(s, q_tiles);
  const int64_t b = tile.b, h = tile.h, kh = tile.kh, q0 = tile.q0, tiles = tile.key_tiles;
  if (tiles > 0) {
    load_tile<BQ, D, S>(qs, q, b, h, q0, s.q_len);
    stage_keys<D>(kv, k, v, b, kh, 0, s.k_len);
  }
  cp_async_wait_all();
  __syncthreads();
  uint32_t qf[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; kk++) load_a<S>(qf[kk], qs + warp * 16 * S, kk * 16);
  const int64_t row[2] = {fragment_row(q0, 0), fragment_row(q0, 1)};
  const int64_t visible[2] = {flash_visible(s, row[0]), flash_visible(s, row[1])};
  OnlineSoftmax<float, true> soft[2];  // scores in units of log2(e)
  const float scale2 = s.scale * kLog2e;
  float acc[D / 8][4];
  clear_fragments(acc);
  for (int64_t t = 0; t < tiles; t++) {
    const T* ks = next_key_tile<D>(kv, k, v, b, kh, t, tiles, s.k_len);
    const T* vs = ks + BK * S;
    const int64_t k0 = t * BK;
    float sc[BK / 8][4];
    product_rows<T, D, BK, S>(
        sc,
        [&](int kk, uint32_t(&a)[4]) {
#pragma unroll
          for (int e = 0; e < 4; e++) a[e] = qf[kk][e];
        },
        ks);
#pragma unroll
    for (int x = 0; x < 2; x++) {
      float tile_max = -INFINITY;
#pragma unroll
      for (int n = 0; n < BK / 8; n++)
#pragma unroll
        for (int c = 2 * x; c < 2 * x + 2; c++) {
          const int64_t j = k0 + fragment_col(n, c);
          if (j < visible[x]) {
            sc[n][c] = scale2 * sc[n][c] + kLog2e * mask.at(b, h, row[x], j);
            tile_max = score_max(tile_max, sc[n][c]);
          }
        }
      const float rescale = soft[x].merge(lanes_max<4>(tile_max));
      const float shift = soft[x].shift();
      float total = 0;
#pragma unroll
      for (int n = 0; n < BK / 8; n++)
#pragma unroll
        for (int c = 2 * x; c < 2 * x + 2; c++) {
          sc[n][c] = k0 + fragment_col(n, c) < visible[x] ? exp_base<true>(sc[n][c] - shift) : 0.0f;
          total += sc[n][c];
        }
      soft[x].add(lanes_sum<4>(total));
#pragma unroll
      for (int n = 0; n < D / 8; n++) {
        acc[n][2 * x] *= rescale;
        acc[n][2 * x + 1] *= rescale;
      }
    }
    accumulate_cols<T, BK, D, S>(acc, sc, vs);
  }
  const float norm[2] = {soft[0].norm(), soft[1].norm()};
  store_fragments<D>(out, b, h, q0, s.q_len, acc, norm);
  for (int x = 0; x < 2; x++)
    if (row[x] < s.q_len && threadIdx.x % 4 == 0) lse[(b * s.heads + h) * s.q_len + row[x]] = soft[x].lse();
}

// dQ for one tile of 64 query rows: per tile of 64 keys, P = exp(S - lse) with S as in the
// forward, dP = dO V^T, dS = P * (dP - delta), dQ += scale dS K.
template <typename T, int D>
__global__ void __launch_bounds__(kMmaThreads)
    mma_backward_dq_kernel(Matrix<T> q, Matrix<T> k, Matrix<T> v, Matrix<T> dout, FlashMask<T> mask, FlashOutput<T> dq,
                           const float* lse, const float* delta, FlashSizes s, int64_t q_tiles) {
  constexpr int S = mma_stride(D), BQ = kMmaRows, BK = kMmaKeys;
  extern __shared__ __align__(16) unsigned char mma_shared[];
  T* qs = reinterpret_cast<T*>(mma_shared);  // [BQ][S]
  T* dos = qs + BQ * S;                      // [BQ][S]
  T* kv = dos + BQ * S;                      // two buffers of [BK][S] keys, then [BK][S] values
  const int warp = threadIdx.x / 32;
  const QueryTile tile = query_tile(s, q_tiles);
  const int64_t b = tile.b, h = tile.h, kh = tile.kh, q0 = tile.q0, tiles = tile.key_tiles;
  const int64_t rows = (b * s.heads + h) * s.q_len;
  if (tiles > 0) {
    load_tile<BQ, D, S>(qs, q, b, h, q0, s.q_len);
    load_tile<BQ, D, S>(dos, dout, b, h, q0, s.q_len);
    stage_keys<D>(kv, k, v, b, kh, 0, s.k_len);
  }
  const T* my_q = qs + warp * 16 * S;
  const T* my_do = dos + warp * 16 * S;
  int64_t row[2], visible[2];
  float row_lse[2], row_delta[2];  // the lse in units of log2(e), as the scores below
  const float scale2 = s.scale * kLog2e;
#pragma unroll
  for (int x = 0; x < 2; x++) {
    row[x] = fragment_row(q0, x);
    visible[x] = flash_visible(s, row[x]);
    row_lse[x] = row[x] < s.q_len ? kLog2e * lse[rows + row[x]] : 0.0f;
    row_delta[x] = row[x] < s.q_len ? delta[rows + row[x]] : 0.0f;
  }
  float acc[D / 8][4];
  clear_fragments(acc);
  for (int64_t t = 0; t < tiles; t++) {
    const T* ks = next_key_tile<D>(kv, k, v, b, kh, t, tiles, s.k_len);
    const T* vs = ks + BK * S;
    const int64_t k0 = t * BK;
    float sc[BK / 8][4], dp[BK / 8][4];
    product_rows<T, D, BK, S>(sc, [&](int kk, uint32_t(&a)[4]) { load_a<S>(a, my_q, kk * 16); }, ks);
    product_rows<T, D, BK, S>(dp, [&](int kk, uint32_t(&a)[4]) { load_a<S>(a, my_do, kk * 16); }, vs);
#pragma unroll
    for (int n = 0; n < BK / 8; n++)
#pragma unroll
      for (int c = 0; c < 4; c++) {
        const int x = c / 2;
        const int64_t j = k0 + fragment_col(n, c);
        float g = 0;
        if (j < visible[x]) {
          const float prob = attention_prob<true>(scale2 * sc[n][c] + kLog2e * mask.at(b, h, row[x], j), row_lse[x]);
          g = attention_score_grad(prob, dp[n][c], row_delta[x]);
        }
        sc[n][c] = g;
      }
    accumulate_cols<T, BK, D, S>(acc, sc, ks);
  }
  const float scale[2] = {s.scale, s.scale};
  store_fragments<D>(dq, b, h, q0, s.q_len, acc, scale);
}

// dK and dV for one tile of 64 keys of a key/value head, summed over the query heads of its
// group and the tiles of query rows that see any of its keys, in a fixed order (no atomics):
// per tile of queries, with each warp's 16 keys as rows, S^T = K Q^T, dP^T = V dO^T, P^T and dS^T
// as in mma_backward_dq_kernel, dV += P^T dO, dK += scale dS^T Q.
template <typename T, int D>
__global__ void __launch_bounds__(kMmaThreads)
    mma_backward_dkv_kernel(Matrix<T> q, Matrix<T> k, Matrix<T> v, Matrix<T> dout, FlashMask<T> mask, FlashOutput<T> dk,
                            FlashOutput<T> dv, const float* lse, const float* delta, FlashSizes s, int64_t k_tiles) {
  constexpr int S = mma_stride(D), BK = kMmaRows, BQ = mma_dkv_queries(D);
  extern __shared__ __align__(16) unsigned char mma_shared[];
  T* ks = reinterpret_cast<T*>(mma_shared);  // [BK][S]
  T* vs = ks + BK * S;                       // [BK][S]
  T* qdo = vs + BK * S;                      // two buffers of [BQ][S] queries, then [BQ][S] output gradients
  float* stats = reinterpret_cast<float*>(qdo + 4 * BQ * S);  // two buffers of [BQ] lse, then [BQ] delta
  const int warp = threadIdx.x / 32;
  const FlashBlock blk = flash_block(s.kv_heads, k_tiles);
  const int64_t b = blk.b, kh = blk.h, k0 = blk.tile * BK, group = s.heads / s.kv_heads;
  const float scale2 = s.scale * kLog2e;
  // under causal masking, query i sees key k0 from i = k0 - (Lk - Lq) on
  const int64_t first_query = s.causal ? k0 - (s.k_len - s.q_len) : 0;
  const int64_t q_tiles = (s.q_len + BQ - 1) / BQ, first_tile = first_query > 0 ? first_query / BQ : 0;
  // steps u = 0, 1, ... go over the query heads g of the group, and for each over its tiles of
  // queries from first_tile on
  const int64_t per_head = q_tiles > first_tile ? q_tiles - first_tile : 0, steps = group * per_head;
  auto head_of = [&](int64_t u) { return kh * group + u / per_head; };
  auto first_row_of = [&](int64_t u) { return (first_tile + u % per_head) * BQ; };
  // the queries, output gradients, lse and delta of step u into buffer u % 2
  auto stage = [&](int64_t u) {
    const int64_t h = head_of(u), q0 = first_row_of(u);
    T* qs = qdo + (u % 2) * 2 * BQ * S;
    load_tile<BQ, D, S>(qs, q, b, h, q0, s.q_len);
    load_tile<BQ, D, S>(qs + BQ * S, dout, b, h, q0, s.q_len);
    if (threadIdx.x < BQ) {
      const int64_t i = q0 + threadIdx.x, rows = (b * s.heads + h) * s.q_len;
      float* tile_stats = stats + (u % 2) * 2 * BQ;
      tile_stats[threadIdx.x] = i < s.q_len ? kLog2e * lse[rows + i] : 0.0f;  // in units of log2(e), as the scores
      tile_stats[BQ + threadIdx.x] = i < s.q_len ? delta[rows + i] : 0.0f;
    }
  };
  if (steps > 0) {
    load_tile<BK, D, S>(ks, k, b, kh, k0, s.k_len);
    load_tile<BK, D, S>(vs, v, b, kh, k0, s.k_len);
    stage(0);
  }
  const T* my_k = ks + warp * 16 * S;
  const T* my_v = vs + warp * 16 * S;
  const int64_t key[2] = {fragment_row(k0, 0), fragment_row(k0, 1)};
  float dk_acc[D / 8][4], dv_acc[D / 8][4];
  clear_fragments(dk_acc);
  clear_fragments(dv_acc);
  for (int64_t u = 0; u < steps; u++) {
    cp_async_wait_all();
    __syncthreads();  // step u is in place, and every warp is done with step u - 1, whose buffer stage(u + 1) refills
    if (u + 1 < steps) stage(u + 1);
    const int64_t h = head_of(u), q0 = first_row_of(u);
    const T* qs = qdo + (u % 2) * 2 * BQ * S;
    const T* dos = qs + BQ * S;
    const float* tile_lse = stats + (u % 2) * 2 * BQ;
    const float* tile_delta = tile_lse + BQ;
    float p[BQ / 8][4], ds[BQ / 8][4];
    product_rows<T, D, BQ, S>(p, [&](int kk, uint32_t(&a)[4]) { load_a<S>(a, my_k, kk * 16); }, qs);
    product_rows<T, D, BQ, S>(ds, [&](int kk, uint32_t(&a)[4]) { load_a<S>(a, my_v, kk * 16); }, dos);
#pragma unroll
    for (int n = 0; n < BQ / 8; n++)
#pragma unroll
      for (int c = 0; c < 4; c++) {
        const int x = c / 2, qc = fragment_col(n, c);
        const int64_t i = q0 + qc;
        float prob = 0, grad = 0;
        if (key[x] < flash_visible(s, i)) {
          prob = attention_prob<true>(scale2 * p[n][c] + kLog2e * mask.at(b, h, i, key[x]), tile_lse[qc]);
          grad = attention_score_grad(prob, ds[n][c], tile_delta[qc]);
        }
        p[n][c] = prob;
        ds[n][c] = grad;
      }
    accumulate_cols<T, BQ, D, S>(dv_acc, p, dos);
    accumulate_cols<T, BQ, D, S>(dk_acc, ds, qs);
  }
  const float scale[2] = {s.scale, s.scale}, one[2] = {1.0f, 1.0f};
  store_fragments<D>(dk, b, kh, k0, s.k_len, dk_acc, scale);
  store_fragments<D>(dv, b, kh, k0, s.k_len, dv_acc, one);
}

}  // namespace ignis::cuda
