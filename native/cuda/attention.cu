#include "cuda/attention.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <utility>
#include "core/dtype.h"
#include "cuda/attention_launch.cuh"
#include "cuda/attention_mma.h"
#include "cuda/copy.h"
#include "cuda/matmul.h"
#include "kernels/attention.h"

namespace ignis::cuda {
namespace {

constexpr int kWarpsPerBlock = 4;

// The sizes a row kernel needs: row r of the scores is query r % q_len of head
// (r / q_len) % heads of batch r / (heads * q_len).
struct Rows {
  int64_t count, heads, q_len, k_len;
  bool causal;
  const void* mask;         // storage dtype, at mask strides [b, h, i, j] (elements)
  int64_t mask_strides[4];
};

Rows rows_of(const cpu::AttentionProblem& p) {
  Rows r{p.batch * p.heads * p.q_len, p.heads, p.q_len, p.k_len, p.causal, p.mask, {0, 0, 0, 0}};
  if (p.mask)
    for (int d = 0; d < 4; d++) r.mask_strides[d] = p.mask_strides[size_t(d)];
  return r;
}

template <typename M>
__device__ const M* mask_row(const Rows& r, int64_t row) {
  if (!r.mask) return nullptr;
  const int64_t i = row % r.q_len, h = (row / r.q_len) % r.heads, b = row / (r.q_len * r.heads);
  return static_cast<const M*>(r.mask) + b * r.mask_strides[0] + h * r.mask_strides[1] + i * r.mask_strides[2];
}

// How many keys of a row are not hidden by the causal limit.
__device__ int64_t visible_keys(const Rows& r, int64_t row) {
  return r.causal ? causal_visible(row % r.q_len, r.q_len, r.k_len, 0, r.k_len) : r.k_len;
}

template <typename A>
__device__ A warp_max(A v) {
  for (int o = 16; o > 0; o /= 2) {
    const A other = __shfl_xor_sync(0xffffffffu, v, o);
    v = other > v || other != other ? other : v;
  }
  return v;
}

template <typename A>
__device__ A warp_sum(A v) {
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// s [rows, k_len] holds scale * q k^T; each row becomes softmax(s + mask) over its visible keys
// (0 elsewhere), and lse[row] its logsumexp (+inf for a row that sees no key).
template <typename A, typename M>
__global__ void __launch_bounds__(32 * kWarpsPerBlock) softmax_rows_kernel(A* s, A* lse, Rows r) {
  const int64_t row = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (row >= r.count) return;
  const int lane = threadIdx.x % 32;
  A* x = s + row * r.k_len;
  const M* mask = mask_row<M>(r, row);
  const int64_t n = visible_keys(r, row);
  A max = A(-INFINITY);
  for (int64_t j = lane; j < n; j += 32) {
    A v = x[j];
    if (mask) v += A(mask[j * r.mask_strides[3]]);
    x[j] = v;
    max = v > max || v != v ? v : max;
  }
  max = warp_max(max);
  const A shift = softmax_shift(max);
  A sum = 0;
  for (int64_t j = lane; j < n; j += 32) sum += exp_acc(x[j] - shift);
  sum = warp_sum(sum);
  const A norm = attention_norm(sum);
  for (int64_t j = lane; j < r.k_len; j += 32) x[j] = j < n ? exp_acc(x[j] - shift) * norm : A(0);
  if (lane == 0) lse[row] = attention_lse(max, sum);
}

// Per row: s holds scale * q k^T and dp holds dO V^T; P = exp(s + mask - lse) over the visible
// keys, delta = sum(dO * O), and dp becomes dS = P * (dP - delta) (the scale goes into the
// GEMMs that read it), s becomes P.
template <typename A, typename M>
__global__ void __launch_bounds__(32 * kWarpsPerBlock) softmax_backward_rows_kernel(A* s, A* dp, const A* lse, Matrix<A> out,
                                                                                    Matrix<A> dout, int64_t value_dim, Rows r) {
  const int64_t row = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (row >= r.count) return;
  const int lane = threadIdx.x % 32;
  const int64_t i = row % r.q_len, h = (row / r.q_len) % r.heads, b = row / (r.q_len * r.heads);
  A delta = 0;
  for (int64_t c = lane; c < value_dim; c += 32) delta += dout.at(b, h, i, c) * out.at(b, h, i, c);
  delta = warp_sum(delta);
  A* x = s + row * r.k_len;
  A* g = dp + row * r.k_len;
  const M* mask = mask_row<M>(r, row);
  const int64_t n = visible_keys(r, row);
  const A row_lse = lse[row];
  for (int64_t j = lane; j < r.k_len; j += 32) {
    A prob = 0;
    if (j < n) {
      A v = x[j];
      if (mask) v += A(mask[j * r.mask_strides[3]]);
      prob = attention_prob(v, row_lse);
    }
    x[j] = prob;
    g[j] = attention_score_grad(prob, g[j], delta);
  }
}

// out = alpha * a b over `batch` (=, or += when accumulate); k == 0 leaves zeros, as cuBLAS
// takes m, n, k > 0.
void product(DType dtype, Device device, int64_t m, int64_t n, int64_t k, Shape batch, const GemmOperand& a, const GemmOperand& b,
             void* out, double alpha, bool accumulate) {
  int64_t count = m * n;
  for (int64_t d : batch) count *= d;
  if (count == 0) return;
  if (k == 0) {
    if (!accumulate) {
      use_device(device.index);
      check(cudaMemsetAsync(out, 0, size_t(count) * dtype_size(dtype), current_stream(device.index)), "cudaMemsetAsync");
    }
    return;
  }
  gemm(dtype, Gemm{m, n, k, std::move(batch), a, b, out, accumulate, alpha, device});
}

// An operand of batch dims [B, H] seen with [B, kv heads, group] (query heads h = kh * group + g).
GemmOperand by_group(const GemmOperand& m, int64_t group) {
  return {m.data, m.trans, m.ld, {m.batch_strides[0], m.batch_strides[1] * group, m.batch_strides[1]}};
}
// A key/value operand read by every query head of its group (stride 0 over the group).
GemmOperand shared_by_group(const GemmOperand& m, bool transpose) {
  return {m.data, m.trans != transpose, m.ld, {m.batch_strides[0], m.batch_strides[1], 0}};
}
// Head `g` of each group of an operand of batch dims [B, H], over [B, kv heads].
GemmOperand group_member(const GemmOperand& m, int64_t group, int64_t g, size_t element_size, bool transpose) {
  return {static_cast<const char*>(m.data) + g * m.batch_strides[1] * int64_t(element_size), m.trans != transpose, m.ld,
          {m.batch_strides[0], m.batch_strides[1] * group}};
}
// The contiguous rows x cols matrices of a [B, H, rows, cols] buffer, as an operand over [B, H].
GemmOperand dense(const TensorPtr& t, int64_t heads, int64_t rows, int64_t cols) {
  return {t->data(), false, cols, {heads * rows * cols, rows * cols}};
}

unsigned row_blocks(int64_t rows) { return unsigned((rows + kWarpsPerBlock - 1) / kWarpsPerBlock); }

// scores [B, H, Lq, Lk] = scale * q k^T, in the compute dtype.
TensorPtr scores(const cpu::AttentionProblem& p, DType compute, Device device) {
  const int64_t group = p.heads / p.kv_heads;
  TensorPtr s = empty({p.batch, p.heads, p.q_len, p.k_len}, compute, device);
  product(compute, device, p.q_len, p.k_len, p.head_dim, {p.batch, p.kv_heads, group}, by_group(p.q, group),
          shared_by_group(p.k, true), s->data(), p.scale, false);
  return s;
}

void materialized_forward(const cpu::AttentionProblem& p, const TensorPtr& out, void* lse) {
  const Device device = out->device();
  const DType compute = accumulation_dtype(out->dtype);
  const int64_t group = p.heads / p.kv_heads;
  TensorPtr probs = scores(p, compute, device);
  const Rows r = rows_of(p);
  dispatch_float(out->dtype, "scaledDotProductAttention", [&](auto tag) {
    using M = decltype(tag);
    using A = acc_t<M>;
    if (r.count == 0) return;
    use_device(device.index);  // the scores' GEMM is skipped when there are no keys
    softmax_rows_kernel<A, M><<<row_blocks(r.count), 32 * kWarpsPerBlock, 0, current_stream(device.index)>>>(
        probs->data_as<A>(), static_cast<A*>(lse), r);
    check_launch("scaledDotProductAttention");
  });
  TensorPtr values = empty(out->shape, compute, device);
  GemmOperand p_op = dense(probs, p.heads, p.q_len, p.k_len);
  product(compute, device, p.q_len, p.value_dim, p.k_len, {p.batch, p.kv_heads, group}, by_group(p_op, group),
          shared_by_group(p.v, false), values->data(), 1, false);
  copy(out, values);
}

void materialized_backward(const cpu::AttentionProblem& p, const GemmOperand& out, const GemmOperand& dout, const void* lse,
                           const TensorPtr& dq, const TensorPtr& dk, const TensorPtr& dv) {
  const Device device = dq->device();
  const DType compute = accumulation_dtype(dq->dtype);
  const size_t es = dtype_size(compute);
  const int64_t group = p.heads / p.kv_heads;
  const Shape by_head{p.batch, p.kv_heads, group}, by_kv_head{p.batch, p.kv_heads};
  TensorPtr probs = scores(p, compute, device);
  TensorPtr grads = empty({p.batch, p.heads, p.q_len, p.k_len}, compute, device);
  product(compute, device, p.q_len, p.k_len, p.value_dim, by_head, by_group(dout, group), shared_by_group(p.v, true), grads->data(),
          1, false);
  const Rows r = rows_of(p);
  dispatch_float(dq->dtype, "scaledDotProductAttention backward", [&](auto tag) {
    using M = decltype(tag);
    using A = acc_t<M>;
    if (r.count == 0) return;
    use_device(device.index);
    softmax_backward_rows_kernel<A, M><<<row_blocks(r.count), 32 * kWarpsPerBlock, 0, current_stream(device.index)>>>(
        probs->data_as<A>(), grads->data_as<A>(), static_cast<const A*>(lse), matrix<A>(out), matrix<A>(dout), p.value_dim, r);
    check_launch("scaledDotProductAttention backward");
  });
  const GemmOperand p_op = dense(probs, p.heads, p.q_len, p.k_len), ds_op = dense(grads, p.heads, p.q_len, p.k_len);
  // dQ = scale dS K
  TensorPtr dq_sum = empty(dq->shape, compute, device);
  product(compute, device, p.q_len, p.head_dim, p.k_len, by_head, by_group(ds_op, group), shared_by_group(p.k, false), dq_sum->data(),
          p.scale, false);
  // dV = sum over the group of P^T dO, dK = sum over the group of scale dS^T Q
  TensorPtr dv_sum = empty(dv->shape, compute, device), dk_sum = empty(dk->shape, compute, device);
  for (int64_t g = 0; g < group; g++) {
    product(compute, device, p.k_len, p.value_dim, p.q_len, by_kv_head, group_member(p_op, group, g, es, true),
            group_member(dout, group, g, es, false), dv_sum->data(), 1, g > 0);
    product(compute, device, p.k_len, p.head_dim, p.q_len, by_kv_head, group_member(ds_op, group, g, es, true),
            group_member(p.q, group, g, es, false), dk_sum->data(), p.scale, g > 0);
  }
  copy(dq, dq_sum);
  copy(dk, dk_sum);
  copy(dv, dv_sum);
}

// ---- The flash kernels: per block, a tile of query rows (or, for dK and dV, of keys) against
// tiles of the other side staged in shared memory, never more than one tile of scores at a time.
// 256 threads see a tile of scores as 16 x 16 threads, thread (ty, tx) owning its rows
// ty + 16 r and columns tx + 16 c; a row's 16 threads are 16 neighbouring lanes of one warp, so
// that its max and sum take four shuffles. Matrices in shared memory are [rows][D + 1] floats:
// the padding puts the 16 rows a warp reads at one column in 16 different banks.

constexpr int kFlashThreads = 256;
constexpr int kFlashSide = 16;  // threads along each side of a tile

// Head dims with flash kernels; the key/value tiles of the backward are smaller for 128 so that
// its four matrices fit the shared memory of every supported GPU (99 KB on sm_86/89).
constexpr int flash_backward_tile(int head_dim) { return head_dim == 128 ? 32 : 64; }
constexpr int kFlashForwardTile = 64;

// out[r][c] = the dot product of row ty + 16 r of a and row tx + 16 c of b (tiles [.][D + 1]).
template <int RA, int RB, int D>
__device__ void dot_rows(float (&out)[RA][RB], const float* a, const float* b, int ty, int tx) {
#pragma unroll
  for (int r = 0; r < RA; r++)
#pragma unroll
    for (int c = 0; c < RB; c++) out[r][c] = 0;
#pragma unroll 4
  for (int d = 0; d < D; d++) {
    float av[RA], bv[RB];
#pragma unroll
    for (int r = 0; r < RA; r++) av[r] = a[(ty + kFlashSide * r) * (D + 1) + d];
#pragma unroll
    for (int c = 0; c < RB; c++) bv[c] = b[(tx + kFlashSide * c) * (D + 1) + d];
#pragma unroll
    for (int r = 0; r < RA; r++)
#pragma unroll
      for (int c = 0; c < RB; c++) out[r][c] += av[r] * bv[c];
  }
}

// acc[r][c] += the sum over j < J of w[ty + 16 r][j] * x[j][tx + 16 c] (w [.][J + 1], x [J][D + 1]).
template <int RA, int D, int J>
__device__ void accumulate_rows(float (&acc)[RA][D / kFlashSide], const float* w, const float* x, int ty, int tx) {
#pragma unroll 4
  for (int j = 0; j < J; j++) {
    float wv[RA], xv[D / kFlashSide];
#pragma unroll
    for (int r = 0; r < RA; r++) wv[r] = w[(ty + kFlashSide * r) * (J + 1) + j];
#pragma unroll
    for (int c = 0; c < D / kFlashSide; c++) xv[c] = x[j * (D + 1) + tx + kFlashSide * c];
#pragma unroll
    for (int r = 0; r < RA; r++)
#pragma unroll
      for (int c = 0; c < D / kFlashSide; c++) acc[r][c] += wv[r] * xv[c];
  }
}

// Shared memory (bytes) of the kernels below, for head dim D and tile side B.
constexpr size_t flash_forward_shared(int d) {
  return sizeof(float) * size_t(2 * kFlashForwardTile * (d + 1) + kFlashForwardTile * (kFlashForwardTile + 1));
}
constexpr size_t flash_backward_shared(int d) {
  const int b = flash_backward_tile(d);
  return sizeof(float) * size_t(4 * b * (d + 1) + b * (b + 1) + 2 * b);
}

// out and lse for one tile of 64 query rows: S = scale Q K^T (+ mask) per tile of 64 keys, the
// rows' online softmax, O += P V; tiles of keys that the causal limit hides from every row of
// the tile are never read.
template <typename T, int D>
__global__ void __launch_bounds__(kFlashThreads)
    flash_forward_kernel(Matrix<float> q, Matrix<float> k, Matrix<float> v, FlashMask<T> mask, FlashOutput<T> out, float* lse,
                         FlashSizes s, int64_t q_tiles) {
  constexpr int BQ = kFlashForwardTile, BK = kFlashForwardTile, RQ = BQ / kFlashSide, RK = BK / kFlashSide, RC = D / kFlashSide;
  extern __shared__ float shared[];
  float* qs = shared;                // [BQ][D + 1]
  float* kv = qs + BQ * (D + 1);     // [BK][D + 1]: K, then V
  float* probs = kv + BK * (D + 1);  // [BQ][BK + 1]
  const int ty = threadIdx.x / kFlashSide, tx = threadIdx.x % kFlashSide;
  // the last tiles of queries (under causal masking, the longest) first
  const FlashBlock blk = flash_block(s.heads, q_tiles);
  const int64_t b = blk.b, h = blk.h, kh = h / (s.heads / s.kv_heads), q0 = (q_tiles - 1 - blk.tile) * BQ;
  load_rows<BQ, D, D + 1, kFlashThreads>(qs, q, b, h, q0, s.q_len);
  int64_t visible[RQ];
  OnlineSoftmax<float> rows[RQ];
  float acc[RQ][RC];
#pragma unroll
  for (int r = 0; r < RQ; r++) {
    visible[r] = flash_visible(s, q0 + ty + kFlashSide * r);
#pragma unroll
    for (int c = 0; c < RC; c++) acc[r][c] = 0;
  }
  const int64_t key_end = flash_visible(s, (q0 + BQ < s.q_len ? q0 + BQ : s.q_len) - 1);
  for (int64_t k0 = 0; k0 < key_end; k0 += BK) {
    __syncthreads();  // the previous tile's probabilities and values are read
    load_rows<BK, D, D + 1, kFlashThreads>(kv, k, b, kh, k0, s.k_len);
    __syncthreads();
    float p[RQ][RK];
    dot_rows<RQ, RK, D>(p, qs, kv, ty, tx);
#pragma unroll
    for (int r = 0; r < RQ; r++) {
      const int64_t i = q0 + ty + kFlashSide * r;
      float tile_max = -INFINITY;
#pragma unroll
      for (int c = 0; c < RK; c++) {
        const int64_t j = k0 + tx + kFlashSide * c;
        if (j < visible[r]) {
          p[r][c] = s.scale * p[r][c] + mask.at(b, h, i, j);
          tile_max = score_max(tile_max, p[r][c]);
        }
      }
      const float rescale = rows[r].merge(lanes_max<kFlashSide>(tile_max));
      const float shift = rows[r].shift();
      float total = 0;
#pragma unroll
      for (int c = 0; c < RK; c++) {
        const int64_t j = k0 + tx + kFlashSide * c;
        p[r][c] = j < visible[r] ? exp_acc(p[r][c] - shift) : 0.0f;
        total += p[r][c];
      }
      rows[r].add(lanes_sum<kFlashSide>(total));
#pragma unroll
      for (int c = 0; c < RC; c++) acc[r][c] *= rescale;
    }
    __syncthreads();  // every thread is done with the keys
#pragma unroll
    for (int r = 0; r < RQ; r++)
#pragma unroll
      for (int c = 0; c < RK; c++) probs[(ty + kFlashSide * r) * (BK + 1) + tx + kFlashSide * c] = p[r][c];
    load_rows<BK, D, D + 1, kFlashThreads>(kv, v, b, kh, k0, s.k_len);
    __syncthreads();
    accumulate_rows<RQ, D, BK>(acc, probs, kv, ty, tx);
  }
#pragma unroll
  for (int r = 0; r < RQ; r++) {
    const int64_t i = q0 + ty + kFlashSide * r;
    if (i >= s.q_len) continue;
    const float norm = rows[r].norm();
#pragma unroll
    for (int c = 0; c < RC; c++) out.at(b, h, i, tx + kFlashSide * c) = T(acc[r][c] * norm);
    if (tx == 0) lse[(b * s.heads + h) * s.q_len + i] = rows[r].lse();
  }
}

// delta[row] = sum(dO * O) over the row (operands of type S, float sums), one warp per row of
// [B, H, Lq].
template <typename S>
__global__ void __launch_bounds__(32 * kWarpsPerBlock)
    attention_delta_kernel(Matrix<S> out, Matrix<S> dout, float* delta, int64_t rows, int64_t heads, int64_t q_len, int64_t dim) {
  const int64_t row = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (row >= rows) return;  // the whole warp
  const int lane = threadIdx.x % 32;
  const int64_t i = row % q_len, h = (row / q_len) % heads, b = row / (q_len * heads);
  float sum = 0;
  for (int64_t c = lane; c < dim; c += 32) sum += float(dout.at(b, h, i, c)) * float(out.at(b, h, i, c));
  sum = warp_sum(sum);
  if (lane == 0) delta[row] = sum;
}

// dQ for one tile of query rows: per tile of keys, P = exp(S - lse) with S as in the forward,
// dP = dO V^T, dS = P * (dP - delta), dQ += scale dS K.
template <typename T, int D>
__global__ void __launch_bounds__(kFlashThreads)
    flash_backward_dq_kernel(Matrix<float> q, Matrix<float> k, Matrix<float> v, Matrix<float> dout, FlashMask<T> mask,
                             FlashOutput<T> dq, const float* lse, const float* delta, FlashSizes s, int64_t q_tiles) {
  constexpr int B = flash_backward_tile(D), R = B / kFlashSide, RC = D / kFlashSide;
  extern __shared__ float shared[];
  float* qs = shared;              // [B][D + 1]
  float* dos = qs + B * (D + 1);   // [B][D + 1]
  float* ks = dos + B * (D + 1);   // [B][D + 1]
  float* vs = ks + B * (D + 1);    // [B][D + 1]
  float* grads = vs + B * (D + 1);  // [B][B + 1]
  const int ty = threadIdx.x / kFlashSide, tx = threadIdx.x % kFlashSide;
  const FlashBlock blk = flash_block(s.heads, q_tiles);
  const int64_t b = blk.b, h = blk.h, kh = h / (s.heads / s.kv_heads), q0 = (q_tiles - 1 - blk.tile) * B;
  const int64_t rows = (b * s.heads + h) * s.q_len;
  load_rows<B, D, D + 1, kFlashThreads>(qs, q, b, h, q0, s.q_len);
  load_rows<B, D, D + 1, kFlashThreads>(dos, dout, b, h, q0, s.q_len);
  int64_t visible[R];
  float row_lse[R], row_delta[R], acc[R][RC];
#pragma unroll
  for (int r = 0; r < R; r++) {
    const int64_t i = q0 + ty + kFlashSide * r;
    visible[r] = flash_visible(s, i);
    row_lse[r] = i < s.q_len ? lse[rows + i] : 0.0f;
    row_delta[r] = i < s.q_len ? delta[rows + i] : 0.0f;
#pragma unroll
    for (int c = 0; c < RC; c++) acc[r][c] = 0;
  }
  const int64_t key_end = flash_visible(s, (q0 + B < s.q_len ? q0 + B : s.q_len) - 1);
  for (int64_t k0 = 0; k0 < key_end; k0 += B) {
    __syncthreads();  // the previous tile's score gradients and keys are read
    load_rows<B, D, D + 1, kFlashThreads>(ks, k, b, kh, k0, s.k_len);
    load_rows<B, D, D + 1, kFlashThreads>(vs, v, b, kh, k0, s.k_len);
    __syncthreads();
    float sc[R][R], dp[R][R];
    dot_rows<R, R, D>(sc, qs, ks, ty, tx);
    dot_rows<R, R, D>(dp, dos, vs, ty, tx);
#pragma unroll
    for (int r = 0; r < R; r++) {
      const int64_t i = q0 + ty + kFlashSide * r;
#pragma unroll
      for (int c = 0; c < R; c++) {
        const int64_t j = k0 + tx + kFlashSide * c;
        float g = 0;
        if (j < visible[r]) {
          const float prob = attention_prob(s.scale * sc[r][c] + mask.at(b, h, i, j), row_lse[r]);
          g = attention_score_grad(prob, dp[r][c], row_delta[r]);
        }
        grads[(ty + kFlashSide * r) * (B + 1) + tx + kFlashSide * c] = g;
      }
    }
    __syncthreads();
    accumulate_rows<R, D, B>(acc, grads, ks, ty, tx);
  }
#pragma unroll
  for (int r = 0; r < R; r++) {
    const int64_t i = q0 + ty + kFlashSide * r;
    if (i >= s.q_len) continue;
#pragma unroll
    for (int c = 0; c < RC; c++) dq.at(b, h, i, tx + kFlashSide * c) = T(s.scale * acc[r][c]);
  }
}

// dK and dV for one tile of keys of a key/value head, summed over the query heads of its group
// and the tiles of query rows that see any of its keys, in a fixed order (no atomics): per
// tile of queries, P^T and dS^T as in flash_backward_dq_kernel (transposed: the tile's rows
// are keys), dV += P^T dO, dK += scale dS^T Q.
template <typename T, int D>
__global__ void __launch_bounds__(kFlashThreads)
    flash_backward_dkv_kernel(Matrix<float> q, Matrix<float> k, Matrix<float> v, Matrix<float> dout, FlashMask<T> mask,
                              FlashOutput<T> dk, FlashOutput<T> dv, const float* lse, const float* delta, FlashSizes s,
                              int64_t k_tiles) {
  constexpr int B = flash_backward_tile(D), R = B / kFlashSide, RC = D / kFlashSide;
  extern __shared__ float shared[];
  float* ks = shared;              // [B][D + 1]
  float* vs = ks + B * (D + 1);    // [B][D + 1]
  float* qs = vs + B * (D + 1);    // [B][D + 1]
  float* dos = qs + B * (D + 1);   // [B][D + 1]
  float* w = dos + B * (D + 1);    // [B][B + 1]: P^T, then dS^T
  float* tile_lse = w + B * (B + 1);  // [B]
  float* tile_delta = tile_lse + B;   // [B]
  const int ty = threadIdx.x / kFlashSide, tx = threadIdx.x % kFlashSide;
  const FlashBlock blk = flash_block(s.kv_heads, k_tiles);
  const int64_t b = blk.b, kh = blk.h, k0 = blk.tile * B, group = s.heads / s.kv_heads;
  load_rows<B, D, D + 1, kFlashThreads>(ks, k, b, kh, k0, s.k_len);
  load_rows<B, D, D + 1, kFlashThreads>(vs, v, b, kh, k0, s.k_len);
  float dk_acc[R][RC], dv_acc[R][RC];
#pragma unroll
  for (int r = 0; r < R; r++)
#pragma unroll
    for (int c = 0; c < RC; c++) dk_acc[r][c] = dv_acc[r][c] = 0;
  // under causal masking, query i sees key k0 from i = k0 - (Lk - Lq) on
  const int64_t first_query = s.causal ? k0 - (s.k_len - s.q_len) : 0;
  const int64_t q_tiles = (s.q_len + B - 1) / B, first_tile = first_query > 0 ? first_query / B : 0;
  for (int64_t g = 0; g < group; g++) {
    const int64_t h = kh * group + g, rows = (b * s.heads + h) * s.q_len;
    for (int64_t qt = first_tile; qt < q_tiles; qt++) {
      const int64_t q0 = qt * B;
      __syncthreads();  // the previous tile's queries, output gradients and weights are read
      load_rows<B, D, D + 1, kFlashThreads>(qs, q, b, h, q0, s.q_len);
      load_rows<B, D, D + 1, kFlashThreads>(dos, dout, b, h, q0, s.q_len);
      if (threadIdx.x < B) {
        const int64_t i = q0 + threadIdx.x;
        tile_lse[threadIdx.x] = i < s.q_len ? lse[rows + i] : 0.0f;
        tile_delta[threadIdx.x] = i < s.q_len ? delta[rows + i] : 0.0f;
      }
      __syncthreads();
      float p[R][R], ds[R][R];
      dot_rows<R, R, D>(p, ks, qs, ty, tx);
      dot_rows<R, R, D>(ds, vs, dos, ty, tx);
#pragma unroll
      for (int c = 0; c < R; c++) {
        const int qc = tx + kFlashSide * c;
        const int64_t i = q0 + qc, visible = flash_visible(s, i);
#pragma unroll
        for (int r = 0; r < R; r++) {
          const int64_t j = k0 + ty + kFlashSide * r;
          float prob = 0, g = 0;
          if (j < visible) {
            prob = attention_prob(s.scale * p[r][c] + mask.at(b, h, i, j), tile_lse[qc]);
            g = attention_score_grad(prob, ds[r][c], tile_delta[qc]);
          }
          ds[r][c] = g;
          w[(ty + kFlashSide * r) * (B + 1) + qc] = prob;
        }
      }
      __syncthreads();
      accumulate_rows<R, D, B>(dv_acc, w, dos, ty, tx);
      __syncthreads();  // P^T is read
#pragma unroll
      for (int r = 0; r < R; r++)
#pragma unroll
        for (int c = 0; c < R; c++) w[(ty + kFlashSide * r) * (B + 1) + tx + kFlashSide * c] = ds[r][c];
      __syncthreads();
      accumulate_rows<R, D, B>(dk_acc, w, qs, ty, tx);
    }
  }
#pragma unroll
  for (int r = 0; r < R; r++) {
    const int64_t j = k0 + ty + kFlashSide * r;
    if (j >= s.k_len) continue;
#pragma unroll
    for (int c = 0; c < RC; c++) {
      dk.at(b, kh, j, tx + kFlashSide * c) = T(s.scale * dk_acc[r][c]);
      dv.at(b, kh, j, tx + kFlashSide * c) = T(dv_acc[r][c]);
    }
  }
}

// Calls f(T{}, std::integral_constant<int, D>{}) for the storage dtype and head dim of a problem
// the flash kernels take.
template <typename F>
void dispatch_flash(DType dtype, int64_t head_dim, F&& f) {
  dispatch_float(dtype, "scaledDotProductAttention", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, double>) {
      fail(ERR_INTERNAL, "scaledDotProductAttention: no flash kernels for float64");
    } else {
      switch (head_dim) {
        case 32: return f(tag, std::integral_constant<int, 32>{});
        case 64: return f(tag, std::integral_constant<int, 64>{});
        case 128: return f(tag, std::integral_constant<int, 128>{});
        default: fail(ERR_INTERNAL, "scaledDotProductAttention: no flash kernels for head dim ", head_dim);
      }
    }
  });
}

// The kernels IGNIS_CUDA_ATTENTION (read at each call) selects.
enum class AttentionChoice { Flash, TensorCore, Materialized };

AttentionChoice attention_choice() {
  const char* choice = std::getenv("IGNIS_CUDA_ATTENTION");
  if (!choice || !*choice || std::strcmp(choice, "flash") == 0) return AttentionChoice::Flash;
  if (std::strcmp(choice, "tensor-core") == 0) return AttentionChoice::TensorCore;
  if (std::strcmp(choice, "materialized") == 0) return AttentionChoice::Materialized;
  fail(ERR_ARG, "scaledDotProductAttention: IGNIS_CUDA_ATTENTION must be flash, tensor-core or materialized, got '", choice, "'");
}

// Whether the flash kernels take p (of storage dtype `dtype`): float32 or a 16-bit dtype, one
// head dim of 32, 64 or 128 for queries, keys and values, grids within CUDA's limit, and shared
// memory within the device's.
bool flash_applies(const cpu::AttentionProblem& p, DType dtype, Device device) {
  const int64_t d = p.head_dim;
  if (dtype == DType::Float64 || d != p.value_dim || (d != 32 && d != 64 && d != 128)) return false;
  constexpr int64_t kMaxBlocks = 0x7fffffff;
  const int64_t tile = std::min<int64_t>(kFlashForwardTile, flash_backward_tile(int(d)));
  const int64_t longest = std::max(p.q_len, p.k_len);
  if (ceil_div(longest, tile) > kMaxBlocks / std::max<int64_t>(p.batch * p.heads, 1)) return false;
  return std::max(flash_forward_shared(int(d)), flash_backward_shared(int(d))) <= shared_memory_optin(device);
}

void flash_forward(const cpu::AttentionProblem& p, const TensorPtr& out, float* lse) {
  const int device = out->device().index;
  use_device(device);
  const FlashSizes s = flash_sizes(p);
  dispatch_flash(out->dtype, p.head_dim, [&](auto tag, auto dim) {
    using T = decltype(tag);
    constexpr int D = decltype(dim)::value;
    const int64_t q_tiles = ceil_div(p.q_len, kFlashForwardTile);
    flash_launch(flash_forward_kernel<T, D>, q_tiles * p.batch * p.heads, kFlashThreads, flash_forward_shared(D), device, "scaledDotProductAttention",
                 matrix<float>(p.q), matrix<float>(p.k), matrix<float>(p.v), flash_mask<T>(p), flash_output<T>(out), lse, s, q_tiles);
  });
}

void flash_backward(const cpu::AttentionProblem& p, const GemmOperand& out, const GemmOperand& dout, const float* lse,
                    const TensorPtr& dq, const TensorPtr& dk, const TensorPtr& dv) {
  const Device device = dq->device();
  use_device(device.index);
  const FlashSizes s = flash_sizes(p);
  TensorPtr delta = attention_delta(p, out, dout, DType::Float32, device);
  dispatch_flash(dq->dtype, p.head_dim, [&](auto tag, auto dim) {
    using T = decltype(tag);
    constexpr int D = decltype(dim)::value;
    constexpr int B = flash_backward_tile(D);
    const int64_t q_tiles = ceil_div(p.q_len, B), k_tiles = ceil_div(p.k_len, B);
    const Matrix<float> q = matrix<float>(p.q), k = matrix<float>(p.k), v = matrix<float>(p.v), dO = matrix<float>(dout);
    flash_launch(flash_backward_dq_kernel<T, D>, q_tiles * p.batch * p.heads, kFlashThreads, flash_backward_shared(D), device.index,
                 "scaledDotProductAttention backward", q, k, v, dO, flash_mask<T>(p), flash_output<T>(dq), lse,
                 static_cast<const float*>(delta->data_as<float>()), s, q_tiles);
    flash_launch(flash_backward_dkv_kernel<T, D>, k_tiles * p.batch * p.kv_heads, kFlashThreads, flash_backward_shared(D), device.index,
                 "scaledDotProductAttention backward", q, k, v, dO, flash_mask<T>(p), flash_output<T>(dk), flash_output<T>(dv), lse,
                 static_cast<const float*>(delta->data_as<float>()), s, k_tiles);
  });
}

}  // namespace

size_t shared_memory_optin(Device device) {
  int optin = 0;
  use_device(device.index);
  check(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device.index), "cudaDeviceGetAttribute");
  return size_t(optin);
}

TensorPtr attention_delta(const cpu::AttentionProblem& p, const GemmOperand& out, const GemmOperand& dout, DType operands, Device device) {
  const int64_t rows = p.batch * p.heads * p.q_len;
  TensorPtr delta = empty({rows}, DType::Float32, device);
  if (rows == 0) return delta;
  use_device(device.index);
  dispatch_float(operands, "scaledDotProductAttention backward", [&](auto tag) {
    using S = decltype(tag);
    if constexpr (std::is_same_v<S, double>) {
      fail(ERR_INTERNAL, "scaledDotProductAttention backward: no flash kernels for float64");
    } else {
      attention_delta_kernel<S><<<row_blocks(rows), 32 * kWarpsPerBlock, 0, current_stream(device.index)>>>(
          matrix<S>(out), matrix<S>(dout), delta->data_as<float>(), rows, p.heads, p.q_len, p.value_dim);
      check_launch("scaledDotProductAttention backward");
    }
  });
  return delta;
}

bool attention_reads_storage(const cpu::AttentionProblem& p, DType dtype, Device device) {
  return attention_choice() == AttentionChoice::TensorCore && mma_attention_applies(p, dtype, device);
}

void attention_forward(const cpu::AttentionProblem& p, const TensorPtr& out, void* lse) {
  const AttentionChoice choice = attention_choice();
  if (attention_reads_storage(p, out->dtype, out->device()))
    mma_attention_forward(p, out, static_cast<float*>(lse));
  else if (choice != AttentionChoice::Materialized && flash_applies(p, out->dtype, out->device()))
    flash_forward(p, out, static_cast<float*>(lse));
  else
    materialized_forward(p, out, lse);
}

void attention_backward(const cpu::AttentionProblem& p, const GemmOperand& out, const GemmOperand& dout, const void* lse,
                        const TensorPtr& dq, const TensorPtr& dk, const TensorPtr& dv) {
  const AttentionChoice choice = attention_choice();
  if (attention_reads_storage(p, dq->dtype, dq->device()))
    mma_attention_backward(p, out, dout, static_cast<const float*>(lse), dq, dk, dv);
  else if (choice != AttentionChoice::Materialized && flash_applies(p, dq->dtype, dq->device()))
    flash_backward(p, out, dout, static_cast<const float*>(lse), dq, dk, dv);
  else
    materialized_backward(p, out, dout, lse, dq, dk, dv);
}

}  // namespace ignis::cuda
