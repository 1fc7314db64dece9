// Per-row math of the fused scaled dot-product attention, shared by the CPU loops and the CUDA
// kernels: causal limits, the online softmax over key tiles, the logsumexp the backward reads,
// and the softmax gradient. A is the accumulation type (float, or double for float64).
#pragma once
#include <cmath>
#include <cstdint>
#include "kernels/reduce.h"

namespace ignis {

// How many of the keys [first, first + n) query i sees under causal masking with bottom-right
// alignment: with lq queries and lk keys, query i sits at key position lk - lq + i and sees the
// keys j <= that position (for lq == lk, the usual j <= i; for one decoded token, every key).
IGNIS_HD int64_t causal_visible(int64_t i, int64_t lq, int64_t lk, int64_t first, int64_t n) {
  const int64_t visible = lk - lq + i + 1 - first;
  return visible < 0 ? 0 : visible > n ? n : visible;
}

// Scores may be kept in units of log2(e) (times kLog2e) so that exp becomes exp2, one instruction
// on GPUs: the functions below with Base2 = true take such scores (and such a lse); lse() still
// gives the natural logsumexp.
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2 = 0.693147180559945309f;

// exp of the accumulation type in base e, or in base 2 with Base2.
template <bool Base2, typename A>
IGNIS_HD A exp_base(A x) {
  if constexpr (Base2)
    return std::exp2(x);
  else
    return exp_acc(x);
}

// The value subtracted from a row's scores before exp when its running maximum is m: m, or 0
// while every key seen so far is masked (m = -inf), so that exp(-inf - shift) is 0, not NaN.
template <typename A>
IGNIS_HD A softmax_shift(A m) {
  return std::isinf(m) && m < 0 ? A(0) : m;
}

// The factor a row's running sum and output are multiplied by when its maximum grows from
// old_max to new_max: 1 when it stays (a row still fully masked included).
template <bool Base2 = false, typename A>
IGNIS_HD A online_rescale(A old_max, A new_max) {
  return old_max == new_max ? A(1) : exp_base<Base2>(old_max - new_max);
}

// The larger of a row's running maximum m and a score v, skipping a NaN v (whose exp then makes
// the row's sum NaN).
template <typename A>
IGNIS_HD A score_max(A m, A v) {
  return v > m ? v : m;
}

// The logsumexp of a row saved for the backward, from its final max and sum of exp(s - shift):
// max + log(sum), or +inf for a row that sees no key, so that the backward's probabilities
// exp(s - lse) are 0 there and the row gets zero gradients.
template <typename A>
IGNIS_HD A attention_lse(A max, A sum) {
  return sum > 0 ? softmax_shift(max) + std::log(sum) : A(INFINITY);
}

// The factor that normalises a row's output: 1 / sum, or 0 (a zero output) for a row that sees
// no key.
template <typename A>
IGNIS_HD A attention_norm(A sum) {
  return sum > 0 ? A(1) / sum : A(0);
}

// One row's online softmax over tiles of keys: the maximum of its scores so far, and the sum of
// exp(s - shift()) over them. Per tile: merge(tile maximum) first (it returns the factor the
// output accumulated so far must be multiplied by), then the tile's exp(s - shift()) are taken
// and their total add()ed; at the end, lse() is what the backward reads and norm() turns the
// output into the weighted mean.
// With Base2 the scores are in units of log2(e) and the tile's exp2(s - shift()) are summed.
template <typename A, bool Base2 = false>
struct OnlineSoftmax {
  A max = -A(INFINITY), sum = 0;

  IGNIS_HD A merge(A tile_max) {
    const A new_max = score_max(max, tile_max);
    const A rescale = online_rescale<Base2>(max, new_max);
    max = new_max;
    sum *= rescale;
    return rescale;
  }
  IGNIS_HD A shift() const { return softmax_shift(max); }
  IGNIS_HD void add(A tile_sum) { sum += tile_sum; }
  IGNIS_HD A lse() const { return attention_lse(Base2 ? max * A(kLn2) : max, sum); }
  IGNIS_HD A norm() const { return attention_norm(sum); }
};

// A probability recomputed in the backward from its score and the row's logsumexp (both in
// units of log2(e) with Base2).
template <bool Base2 = false, typename A>
IGNIS_HD A attention_prob(A score, A lse) {
  return exp_base<Base2>(score - lse);
}

// The gradient of one score: P * (dP - delta), with delta the row's sum of dO * O (which equals
// the sum of P * dP).
template <typename A>
IGNIS_HD A attention_score_grad(A p, A dp, A delta) {
  return p * (dp - delta);
}

}  // namespace ignis
