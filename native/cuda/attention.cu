#include "cuda/attention.h"

#include "core/dtype.h"
#include "cuda/copy.h"
#include "cuda/loop.cuh"
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

template <typename A>
Matrix<A> matrix(const GemmOperand& m) {
  return {static_cast<const A*>(m.data), m.trans, m.ld, m.batch_strides[0], m.batch_strides[1]};
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

}  // namespace

void attention_forward(const cpu::AttentionProblem& p, const TensorPtr& out, void* lse) {
  const Device device = out->device();
  const DType compute = accumulation_dtype(out->dtype);
  const int64_t group = p.heads / p.kv_heads;
  TensorPtr probs = scores(p, compute, device);
  const Rows r = rows_of(p);
  dispatch_float(out->dtype, "scaledDotProductAttention", [&](auto tag) {
    using M = decltype(tag);
    using A = acc_t<M>;
    if (r.count == 0) return;
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

void attention_backward(const cpu::AttentionProblem& p, const GemmOperand& out, const GemmOperand& dout, const void* lse,
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

}  // namespace ignis::cuda
