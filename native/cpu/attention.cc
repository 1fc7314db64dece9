#include "cpu/attention.h"

#include <algorithm>
#include <limits>
#include <vector>
#include "core/loop.h"
#include "cpu/matmul.h"
#include "kernels/attention.h"

namespace ignis::cpu {
namespace {

// Query rows per task, and keys per tile of scores (the whole row of keys up to 256, so that
// the usual training lengths need no rescaling). Measured on one thread (OpenBLAS 0.3.21,
// Cooperlake kernels, head dim 64): 32 x 256 tiles beat 64-row blocks (whose 64 x 256 x 64
// products exceed the size OpenBLAS runs with its small-matrix kernels, and whose causal blocks
// compute more of the hidden half) by 15% at L = 1024 and match them at L = 128. A tile of
// scores (and, in the backward, of their gradients) is 32 KiB of floats.
constexpr int64_t kBlockQ = 32;
constexpr int64_t kBlockK = 256;
// Multiply-adds a pool task should hold at least.
constexpr double kTaskWork = double(1 << 16);
// The backward gives each (batch, key/value head) pair one task that owns its dK and dV. With
// fewer pairs than this, each pair's query rows are split into parts with their own dK/dV sums
// (as long as those take at most kPartialBytes), so that the work still spreads over threads.
// The split depends on the shape only, so results never depend on the thread count.
constexpr int64_t kBackwardTasks = 8;
constexpr double kPartialBytes = double(64 << 20);

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

template <typename A>
constexpr DType compute_dtype() {
  return sizeof(A) == sizeof(double) ? DType::Float64 : DType::Float32;
}

// Where element (row, col) of an operand's matrix sits, in elements from the matrix's start.
int64_t element_offset(const GemmOperand& m, int64_t row, int64_t col) { return m.trans ? row + col * m.ld : row * m.ld + col; }

// The matrix (b, h) of an operand from element (row, col) on.
template <typename A>
GemmOperand at(const GemmOperand& m, int64_t b, int64_t h, int64_t row, int64_t col) {
  const A* base = static_cast<const A*>(m.data) + b * m.batch_strides[0] + h * m.batch_strides[1];
  return GemmOperand{base + element_offset(m, row, col), m.trans, m.ld, {}};
}

// Columns [first, ...) of a single matrix's operand.
template <typename A>
GemmOperand columns_from(const GemmOperand& m, int64_t first) {
  return GemmOperand{static_cast<const A*>(m.data) + element_offset(m, 0, first), m.trans, m.ld, {}};
}

// The same matrix seen transposed: BLAS reads it with the other transpose flag.
GemmOperand transposed(const GemmOperand& m) { return GemmOperand{m.data, !m.trans, m.ld, {}}; }

// A contiguous row-major buffer of this file with `cols` columns.
GemmOperand dense(const void* data, int64_t cols) { return GemmOperand{data, false, cols, {}}; }

// Row r of a single matrix's operand: where it starts, and the step between its elements.
template <typename A>
const A* row_start(const GemmOperand& m, int64_t r) {
  return static_cast<const A*>(m.data) + element_offset(m, r, 0);
}
int64_t row_step(const GemmOperand& m) { return m.trans ? m.ld : 1; }

// out [m, n] (contiguous) = alpha * a b, or += when `accumulate`; m, n, k > 0.
template <typename A>
void product(int64_t m, int64_t n, int64_t k, const GemmOperand& a, const GemmOperand& b, A* out, double alpha, bool accumulate) {
  gemm(compute_dtype<A>(), Gemm{m, n, k, {}, a, b, out, accumulate, alpha});
}

// dst[c * ld + j] = m(j, c) for j < rows, c < cols: a [rows, cols] matrix transposed, in 8 x 8
// tiles, so that both sides are read and written in runs.
template <typename A>
void transpose_into(const GemmOperand& m, int64_t rows, int64_t cols, A* __restrict dst, int64_t ld) {
  const A* __restrict src = static_cast<const A*>(m.data);
  if (m.trans) {  // column-major: each column is a run already
    for (int64_t c = 0; c < cols; c++) std::copy(src + c * m.ld, src + c * m.ld + rows, dst + c * ld);
    return;
  }
  constexpr int64_t kTile = 8;
  const int64_t full_rows = rows - rows % kTile, full_cols = cols - cols % kTile;
  for (int64_t j0 = 0; j0 < full_rows; j0 += kTile) {
    for (int64_t c0 = 0; c0 < full_cols; c0 += kTile) {
      A tile[kTile][kTile];
      for (int64_t j = 0; j < kTile; j++)
        for (int64_t c = 0; c < kTile; c++) tile[c][j] = src[(j0 + j) * m.ld + c0 + c];
      for (int64_t c = 0; c < kTile; c++)
        for (int64_t j = 0; j < kTile; j++) dst[(c0 + c) * ld + j0 + j] = tile[c][j];
    }
    for (int64_t c = full_cols; c < cols; c++)
      for (int64_t j = j0; j < j0 + kTile; j++) dst[c * ld + j] = src[j * m.ld + c];
  }
  for (int64_t j = full_rows; j < rows; j++)
    for (int64_t c = 0; c < cols; c++) dst[c * ld + j] = src[j * m.ld + c];
}

// The sum of a[i * sa] * b[i * sb] for i < n, over kLanes partial sums so that it vectorises
// when both are contiguous.
template <typename A>
A strided_dot(const A* __restrict a, int64_t sa, const A* __restrict b, int64_t sb, int64_t n) {
  constexpr int kLanes = 8;
  A lanes[kLanes] = {};
  int64_t i = 0;
  if (sa == 1 && sb == 1) {
    for (; i + kLanes <= n; i += kLanes)
      for (int k = 0; k < kLanes; k++) lanes[k] += a[i + k] * b[i + k];
  }
  A total = 0;
  for (; i < n; i++) total += a[i * sa] * b[i * sb];
  for (int k = 0; k < kLanes; k++) total += lanes[k];
  return total;
}

// The keys (or values) of one (batch, key/value head) transposed, [D, Lk] row-major, in a
// buffer of a pool task's own: the products with k^T and v^T are then plain GEMMs, which
// OpenBLAS 0.3.21 runs with its small-matrix kernels (a transposed right operand takes a slower
// path that packs it first). Rows are transposed as the tasks need them and reused while the
// tasks stay on one (batch, head).
template <typename A>
class TransposedRows {
 public:
  explicit TransposedRows(int64_t rows) : rows_(rows) {}

  // Rows [0, count) of matrix (b, h) of m [rows, cols], transposed: an operand [cols, count].
  GemmOperand get(const GemmOperand& m, int64_t b, int64_t h, int64_t count, int64_t cols) {
    if (data_.empty()) data_.resize(size_t(rows_ * cols));
    if (b != b_ || h != h_) {
      b_ = b;
      h_ = h;
      done_ = 0;
    }
    if (count > done_) {
      transpose_into(at<A>(m, b, h, done_, 0), count - done_, cols, data_.data() + done_, rows_);
      done_ = count;
    }
    return GemmOperand{data_.data(), false, rows_, {}};
  }

 private:
  int64_t rows_, b_ = -1, h_ = -1, done_ = 0;
  std::vector<A> data_;
};

// A block of query rows [first, first + count) of one (batch, head), reading key/value head g;
// under causal masking its last row sees keys [0, keys) and the others fewer.
struct QueryBlock {
  int64_t b, h, g, first, count, keys;
};

QueryBlock query_block(const AttentionProblem& p, int64_t b, int64_t h, int64_t block) {
  const int64_t first = block * kBlockQ, count = std::min(kBlockQ, p.q_len - first);
  const int64_t keys = p.causal ? std::clamp<int64_t>(p.k_len - p.q_len + first + count, 0, p.k_len) : p.k_len;
  return QueryBlock{b, h, h / (p.heads / p.kv_heads), first, count, keys};
}

// How many of the keys [first, first + n) row r of the block sees.
int64_t visible_keys(const AttentionProblem& p, const QueryBlock& blk, int64_t r, int64_t first, int64_t n) {
  return p.causal ? causal_visible(blk.first + r, p.q_len, p.k_len, first, n) : n;
}

template <typename A, typename T>
IGNIS_VECTOR_CLONES void add_mask_row(A* __restrict s, const T* __restrict mask, int64_t stride, int64_t n) {
  if (stride == 1) {
    for (int64_t j = 0; j < n; j++) s[j] += A(mask[j]);
  } else {
    for (int64_t j = 0; j < n; j++) s[j] += A(mask[j * stride]);
  }
}

// One row of a score tile turned into exp(s - shift) in place: its first `visible` scores, the
// rest set to 0 (keys the causal mask hides), merged into the row's online softmax. Returns the
// factor its output accumulated so far must be multiplied by. A NaN score is skipped by the max
// and makes the sum NaN.
template <typename A>
IGNIS_VECTOR_CLONES A online_softmax_row(A* __restrict s, int64_t n, int64_t visible, OnlineSoftmax<A>& row) {
  constexpr int kLanes = 8;
  const int64_t vector_end = visible - visible % kLanes;
  A lanes[kLanes];
  for (int k = 0; k < kLanes; k++) lanes[k] = -std::numeric_limits<A>::infinity();
  for (int64_t j = 0; j < vector_end; j += kLanes)
    for (int k = 0; k < kLanes; k++) lanes[k] = score_max(lanes[k], s[j + k]);
  A tile_max = -std::numeric_limits<A>::infinity();
  for (int k = 0; k < kLanes; k++) tile_max = score_max(tile_max, lanes[k]);
  for (int64_t j = vector_end; j < visible; j++) tile_max = score_max(tile_max, s[j]);
  const A rescale = row.merge(tile_max);
  const A shift = row.shift();
  A totals[kLanes] = {};
  for (int64_t j = 0; j < vector_end; j += kLanes) {
    for (int k = 0; k < kLanes; k++) {
      const A e = exp_acc(s[j + k] - shift);
      s[j + k] = e;
      totals[k] += e;
    }
  }
  A total = 0;
  for (int k = 0; k < kLanes; k++) total += totals[k];
  for (int64_t j = vector_end; j < visible; j++) {
    s[j] = exp_acc(s[j] - shift);
    total += s[j];
  }
  for (int64_t j = visible; j < n; j++) s[j] = 0;
  row.add(total);
  return rescale;
}

// One row of a score tile turned back into probabilities exp(s - lse) in place; 0 past `visible`.
template <typename A>
IGNIS_VECTOR_CLONES void probability_row(A* __restrict s, int64_t n, int64_t visible, A lse) {
  for (int64_t j = 0; j < visible; j++) s[j] = attention_prob(s[j], lse);
  for (int64_t j = visible; j < n; j++) s[j] = 0;
}

// dS = P * (dP - delta) for one row, in place over dP.
template <typename A>
IGNIS_VECTOR_CLONES void score_grad_row(const A* __restrict p, A* __restrict dp, int64_t n, A delta) {
  for (int64_t j = 0; j < n; j++) dp[j] = attention_score_grad(p[j], dp[j], delta);
}

// s [count, n] = scale * q k^T for the block's rows and the keys [first, first + n) (keys_t:
// the transposed keys of the block's pair), plus the mask where the rows see the keys.
template <typename A, typename T>
void score_tile(const AttentionProblem& p, const QueryBlock& blk, const GemmOperand& keys_t, int64_t first, int64_t n, A* s) {
  product<A>(blk.count, n, p.head_dim, at<A>(p.q, blk.b, blk.h, blk.first, 0), columns_from<A>(keys_t, first), s, p.scale, false);
  if (!p.mask) return;
  const Shape& ms = p.mask_strides;
  const T* mask = static_cast<const T*>(p.mask) + blk.b * ms[0] + blk.h * ms[1] + blk.first * ms[2] + first * ms[3];
  for (int64_t r = 0; r < blk.count; r++) add_mask_row(s + r * n, mask + r * ms[2], ms[3], visible_keys(p, blk, r, first, n));
}

// Rows [first, first + count) of matrix (b, h) of t (storage dtype T, any strides) = src
// [count, cols] (contiguous).
template <typename T, typename A>
void store_rows(const TensorPtr& t, int64_t b, int64_t h, int64_t first, int64_t count, int64_t cols, const A* src) {
  const Shape& s = t->strides;
  T* base = t->data_as<T>() + b * s[0] + h * s[1] + first * s[2];
  for (int64_t r = 0; r < count; r++)
    for (int64_t c = 0; c < cols; c++) base[r * s[2] + c * s[3]] = T(src[r * cols + c]);
}

// Tasks of `work` multiply-adds each per pool chunk.
int64_t task_grain(double work) { return std::max<int64_t>(1, int64_t(kTaskWork / std::max(work, 1.0))); }

template <typename T>
void forward_typed(const AttentionProblem& p, const TensorPtr& out, acc_t<T>* lse) {
  using A = acc_t<T>;
  const int64_t blocks = ceil_div(p.q_len, kBlockQ), vd = p.value_dim;
  const double work = double(std::min(kBlockQ, p.q_len)) * double(p.k_len) * double(p.head_dim + vd);
  parallel_for(p.batch * p.heads * blocks, task_grain(work), [&](int64_t begin, int64_t end) {
    std::vector<A> scores(size_t(kBlockQ * kBlockK)), acc(size_t(kBlockQ * vd));
    TransposedRows<A> keys_t(p.k_len);
    OnlineSoftmax<A> rows[kBlockQ];
    for (int64_t task = begin; task < end; task++) {
      const QueryBlock blk = query_block(p, task / (p.heads * blocks), task / blocks % p.heads, task % blocks);
      // One query row (decoding) makes q k^T a matrix-vector product, as fast with k as it is.
      const GemmOperand kt = blk.count == 1 ? transposed(at<A>(p.k, blk.b, blk.g, 0, 0)) : keys_t.get(p.k, blk.b, blk.g, blk.keys, p.head_dim);
      std::fill(acc.begin(), acc.end(), A(0));
      std::fill(rows, rows + kBlockQ, OnlineSoftmax<A>{});
      for (int64_t first = 0; first < blk.keys; first += kBlockK) {
        const int64_t n = std::min(kBlockK, blk.keys - first);
        score_tile<A, T>(p, blk, kt, first, n, scores.data());
        for (int64_t r = 0; r < blk.count; r++) {
          const A rescale = online_softmax_row(scores.data() + r * n, n, visible_keys(p, blk, r, first, n), rows[r]);
          if (rescale != A(1))
            for (int64_t c = 0; c < vd; c++) acc[r * vd + c] *= rescale;
        }
        product<A>(blk.count, vd, n, dense(scores.data(), n), at<A>(p.v, blk.b, blk.g, first, 0), acc.data(), 1, true);
      }
      A* row_lse = lse + (blk.b * p.heads + blk.h) * p.q_len + blk.first;
      for (int64_t r = 0; r < blk.count; r++) {
        const A norm = rows[r].norm();
        for (int64_t c = 0; c < vd; c++) acc[r * vd + c] *= norm;
        row_lse[r] = rows[r].lse();
      }
      store_rows<T>(out, blk.b, blk.h, blk.first, blk.count, vd, acc.data());
    }
  });
}

// Per block of query rows and tile of keys: S = scale Q K^T (+ mask), P = exp(S - lse),
// dV += P^T dO, dP = dO V^T, dS = P * (dP - delta), dQ += scale dS K, dK += scale dS^T Q.
template <typename T>
void backward_typed(const AttentionProblem& p, const GemmOperand& out, const GemmOperand& dout, const acc_t<T>* lse,
                    const TensorPtr& dq, const TensorPtr& dk, const TensorPtr& dv) {
  using A = acc_t<T>;
  const int64_t blocks = ceil_div(p.q_len, kBlockQ), group = p.heads / p.kv_heads, items = group * blocks;
  const int64_t hd = p.head_dim, vd = p.value_dim, pairs = p.batch * p.kv_heads, lk = p.k_len;
  // Per task (pair, part): dK [Lk, D] then dV [Lk, Dv], accumulated (+=) over the part's query
  // rows; kept for a final sum only when the pairs are split into parts.
  const int64_t width = lk * (hd + vd);
  const int64_t room = int64_t(kPartialBytes / (double(sizeof(A)) * double(std::max<int64_t>(pairs * width, 1))));
  const int64_t parts = std::clamp<int64_t>(std::min(ceil_div(kBackwardTasks, std::max<int64_t>(pairs, 1)), room), 1, std::max<int64_t>(items, 1));
  const bool split = parts > 1;
  std::vector<A> partials(split ? size_t(pairs * parts * width) : 0);
  const double work = 2.5 * double(p.q_len) * double(group) / double(parts) * double(lk) * double(hd + vd);
  parallel_for(pairs * parts, task_grain(work), [&](int64_t begin, int64_t end) {
    std::vector<A> probs(size_t(kBlockQ * kBlockK)), grads(size_t(kBlockQ * kBlockK)), dq_rows(size_t(kBlockQ * hd));
    std::vector<A> local(split ? 0 : size_t(width));
    TransposedRows<A> keys_t(lk), values_t(lk);
    A delta[kBlockQ];
    for (int64_t task = begin; task < end; task++) {
      const int64_t pair = task / parts, part = task % parts, b = pair / p.kv_heads, g = pair % p.kv_heads;
      const GemmOperand kt = keys_t.get(p.k, b, g, lk, hd), vt = values_t.get(p.v, b, g, lk, vd);
      A* dk_sum = split ? partials.data() + task * width : local.data();
      A* dv_sum = dk_sum + lk * hd;
      std::fill(dk_sum, dk_sum + width, A(0));
      for (int64_t item = part; item < items; item += parts) {
        const QueryBlock blk = query_block(p, b, g * group + item / blocks, item % blocks);
        const int64_t count = blk.count;
        const GemmOperand q_rows = at<A>(p.q, b, blk.h, blk.first, 0);
        const GemmOperand do_rows = at<A>(dout, b, blk.h, blk.first, 0), o_rows = at<A>(out, b, blk.h, blk.first, 0);
        for (int64_t r = 0; r < count; r++) {
          delta[r] = strided_dot(row_start<A>(do_rows, r), row_step(do_rows), row_start<A>(o_rows, r), row_step(o_rows), vd);
        }
        std::fill(dq_rows.begin(), dq_rows.end(), A(0));
        const A* row_lse = lse + (b * p.heads + blk.h) * p.q_len + blk.first;
        for (int64_t first = 0; first < blk.keys; first += kBlockK) {
          const int64_t n = std::min(kBlockK, blk.keys - first);
          score_tile<A, T>(p, blk, kt, first, n, probs.data());
          for (int64_t r = 0; r < count; r++) probability_row(probs.data() + r * n, n, visible_keys(p, blk, r, first, n), row_lse[r]);
          product<A>(n, vd, count, transposed(dense(probs.data(), n)), do_rows, dv_sum + first * vd, 1, true);
          product<A>(count, n, vd, do_rows, columns_from<A>(vt, first), grads.data(), 1, false);
          for (int64_t r = 0; r < count; r++) score_grad_row(probs.data() + r * n, grads.data() + r * n, n, delta[r]);
          product<A>(count, hd, n, dense(grads.data(), n), at<A>(p.k, b, g, first, 0), dq_rows.data(), p.scale, true);
          product<A>(n, hd, count, transposed(dense(grads.data(), n)), q_rows, dk_sum + first * hd, p.scale, true);
        }
        store_rows<T>(dq, b, blk.h, blk.first, count, hd, dq_rows.data());
      }
      if (!split) {
        store_rows<T>(dk, b, g, 0, lk, hd, dk_sum);
        store_rows<T>(dv, b, g, 0, lk, vd, dv_sum);
      }
    }
  });
  if (!split) return;
  // dK and dV: each pair's parts summed in order (onto the first part).
  parallel_for(pairs, task_grain(double(parts) * double(width)), [&](int64_t begin, int64_t end) {
    for (int64_t pair = begin; pair < end; pair++) {
      A* sum = partials.data() + pair * parts * width;
      for (int64_t part = 1; part < parts; part++) {
        const A* partial = sum + part * width;
        for (int64_t i = 0; i < width; i++) sum[i] += partial[i];
      }
      store_rows<T>(dk, pair / p.kv_heads, pair % p.kv_heads, 0, lk, hd, sum);
      store_rows<T>(dv, pair / p.kv_heads, pair % p.kv_heads, 0, lk, vd, sum + lk * hd);
    }
  });
}

}  // namespace

void attention_forward(const AttentionProblem& p, const TensorPtr& out, void* lse) {
  dispatch_float(out->dtype, "scaledDotProductAttention", [&](auto tag) {
    using T = decltype(tag);
    forward_typed<T>(p, out, static_cast<acc_t<T>*>(lse));
  });
}

void attention_backward(const AttentionProblem& p, const GemmOperand& out, const GemmOperand& dout, const void* lse,
                        const TensorPtr& dq, const TensorPtr& dk, const TensorPtr& dv) {
  dispatch_float(dq->dtype, "scaledDotProductAttention", [&](auto tag) {
    using T = decltype(tag);
    backward_typed<T>(p, out, dout, static_cast<const acc_t<T>*>(lse), dq, dk, dv);
  });
}

}  // namespace ignis::cpu
