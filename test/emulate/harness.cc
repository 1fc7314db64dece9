// Runs the tensor-core attention kernels of native/cuda/attention_mma.cuh on the host emulator
// (emu.h, with override/cuda/mma.cuh in place of the real mma.cuh) and compares them with a
// float64 reference of the same problem (the semantics of native/cpu/attention.cc: bottom-right
// causal alignment, additive mask, rows that see no key give 0 and lse = +inf, grouped-query
// heads). Each case runs under three thread schedules whose results must be bit-identical.
// Built and run by test/cuda/emulated.test.ts:
//   g++ -std=c++17 -O2 -Itest/emulate/override -Inative test/emulate/harness.cc -o harness && ./harness
#include "emu.h"
#include "cuda/attention_mma.cuh"

#include <algorithm>
#include <limits>
#include <map>

using namespace ignis;
using namespace ignis::cuda;

namespace {

std::mt19937 rng(12345);
double uniform(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng); }
const float kNaN = std::numeric_limits<float>::quiet_NaN();
int64_t ceil_div_host(int64_t a, int64_t b) { return (a + b - 1) / b; }

enum class Layout { Contiguous, HeadsInside, Padded, ColumnMajor };
const char* layout_name(Layout l) {
  return l == Layout::Contiguous ? "contig" : l == Layout::HeadsInside ? "blhd" : l == Layout::Padded ? "padded" : "colmajor";
}
enum class MaskKind { None, Full, Broadcast, Transposed };
const char* mask_name(MaskKind m) {
  return m == MaskKind::None ? "none" : m == MaskKind::Full ? "full" : m == MaskKind::Broadcast ? "bcast" : "transposed";
}

// An operand [B, H, L, D] of E in one layout, poisoned with NaN wherever no element lies.
template <typename E>
struct Operand {
  std::vector<E> data;
  Matrix<E> m;
  int64_t B, H, L, D;
  float at(int64_t b, int64_t h, int64_t i, int64_t c) const {
    return float(m.data[b * m.bs0 + h * m.bs1 + (m.trans ? i + c * m.ld : i * m.ld + c)]);
  }
};

template <typename E>
Operand<E> make_operand(int64_t B, int64_t H, int64_t L, int64_t D, Layout layout, const std::function<float()>& value) {
  Operand<E> o;
  o.B = B, o.H = H, o.L = L, o.D = D;
  int64_t ld, bs0, bs1, size;
  bool trans = false;
  switch (layout) {
    case Layout::Contiguous: ld = D, bs1 = L * D, bs0 = H * L * D, size = B * H * L * D; break;
    case Layout::HeadsInside: ld = H * D, bs1 = D, bs0 = L * H * D, size = B * L * H * D; break;
    case Layout::Padded: ld = D + 4, bs1 = (L + 1) * (D + 4), bs0 = (H + 1) * bs1, size = B * bs0 + 7; break;
    default: trans = true, ld = L + 3, bs1 = (L + 3) * D + 2, bs0 = H * bs1 + 1, size = B * bs0 + 3; break;
  }
  o.data.assign(size_t(std::max<int64_t>(size, 1)), E(kNaN));
  o.m = Matrix<E>{o.data.data(), trans, ld, bs0, bs1};
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++)
      for (int64_t i = 0; i < L; i++)
        for (int64_t c = 0; c < D; c++) o.data[size_t(b * bs0 + h * bs1 + (trans ? i + c * ld : i * ld + c))] = E(value());
  return o;
}

// An output [B, H, L, D] of T in a layout with s3 != 1 for ColumnMajor; elements outside stay
// NaN so that stray writes show.
template <typename T>
struct Output {
  std::vector<T> data;
  FlashOutput<T> o;
  std::vector<bool> used;
  int64_t B, H, L, D;
  float get(int64_t b, int64_t h, int64_t i, int64_t c) const { return float(o.at(b, h, i, c)); }
};

template <typename T>
Output<T> make_output(int64_t B, int64_t H, int64_t L, int64_t D, Layout layout) {
  Output<T> out;
  out.B = B, out.H = H, out.L = L, out.D = D;
  int64_t s0, s1, s2, s3, size;
  switch (layout) {
    case Layout::HeadsInside: s3 = 1, s2 = H * D, s1 = D, s0 = L * H * D, size = B * L * H * D; break;
    case Layout::ColumnMajor: s2 = 1, s3 = L + 2, s1 = (L + 2) * D, s0 = H * s1 + 3, size = B * s0; break;
    case Layout::Padded: s3 = 1, s2 = D + 3, s1 = (L + 1) * (D + 3), s0 = H * s1 + 5, size = B * s0; break;
    default: s3 = 1, s2 = D, s1 = L * D, s0 = H * L * D, size = B * H * L * D; break;
  }
  out.data.assign(size_t(std::max<int64_t>(size, 1)), T(kNaN));
  out.used.assign(out.data.size(), false);
  out.o = FlashOutput<T>{out.data.data(), s0, s1, s2, s3};
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++)
      for (int64_t i = 0; i < L; i++)
        for (int64_t c = 0; c < D; c++) out.used[size_t(b * s0 + h * s1 + i * s2 + c * s3)] = true;
  return out;
}

template <typename T>
bool untouched_outside(const Output<T>& out) {
  for (size_t e = 0; e < out.data.size(); e++)
    if (!out.used[e] && !std::isnan(float(out.data[e]))) return false;
  return true;
}

struct Case {
  int64_t B, H, Hkv, Lq, Lk;
  bool causal;
  MaskKind mask;
  Layout in_layout, out_layout;
  double scale;
};

struct Errors {
  double out = 0, lse = 0, dq = 0, dk = 0, dv = 0, frobenius = 0;  // frobenius: the largest of out, dq, dk, dv
};

// max |got - want| / max(max |want|, 1e-3) over a tensor
struct MaxErr {
  double err = 0, scale = 0, sq_err = 0, sq_want = 0;  // max abs error and max |want|; sums of squares
  bool bad = false;
  void add(double got, double want) {
    if (std::isnan(got) || std::isnan(want)) {
      if (!(std::isnan(got) && std::isnan(want))) bad = true;
      return;
    }
    if (std::isinf(want) || std::isinf(got)) {
      if (got != want) bad = true;
      return;
    }
    err = std::max(err, std::fabs(got - want));
    scale = std::max(scale, std::fabs(want));
    sq_err += (got - want) * (got - want);
    sq_want += want * want;
  }
  // ||got - want|| / ||want|| (the CUDA tests' metric)
  double frobenius() const { return bad ? INFINITY : sq_want > 0 ? std::sqrt(sq_err / sq_want) : std::sqrt(sq_err); }
  double relative() const { return bad ? INFINITY : err / std::max(scale, 1e-3); }
};

template <typename T>
struct Run {
  std::vector<float> out_bits, lse, dq_bits, dk_bits, dv_bits;  // for comparing schedules bit for bit
};

template <typename T, int D>
Errors run_case(const Case& c, emu::Policy policy, Run<T>* keep, bool* ok) {
  const int64_t B = c.B, H = c.H, Hkv = c.Hkv, Lq = c.Lq, Lk = c.Lk, group = H / Hkv;
  auto rounded = [](double x) { return float(T(float(x))); };
  auto q = make_operand<T>(B, H, Lq, D, c.in_layout, [&] { return rounded(uniform(-2, 2)); });
  auto k = make_operand<T>(B, Hkv, Lk, D, c.in_layout, [&] { return rounded(uniform(-2, 2)); });
  auto v = make_operand<T>(B, Hkv, Lk, D, c.in_layout, [&] { return rounded(uniform(-1, 1)); });
  auto dout = make_operand<T>(B, H, Lq, D, c.in_layout, [&] { return rounded(uniform(-1, 1)); });
  // mask [B or 1, H or 1, Lq, Lk] with some -inf, and row 1 of (0, 0) all -inf
  std::vector<T> mask_data;
  FlashMask<T> mask{nullptr, 0, 0, 0, 0};
  if (c.mask != MaskKind::None) {
    const int64_t mb = c.mask == MaskKind::Broadcast ? 1 : B, mh = c.mask == MaskKind::Broadcast ? 1 : H;
    mask_data.assign(size_t(std::max<int64_t>(mb * mh * Lq * Lk, 1)), T(0.0f));
    int64_t s2 = Lk, s3 = 1;
    if (c.mask == MaskKind::Transposed) s2 = 1, s3 = Lq;
    const int64_t s1 = Lq * Lk, s0 = mh * s1;
    for (int64_t b = 0; b < mb; b++)
      for (int64_t h = 0; h < mh; h++)
        for (int64_t i = 0; i < Lq; i++)
          for (int64_t j = 0; j < Lk; j++) {
            float m = uniform(0, 1) < 0.15 ? -INFINITY : float(uniform(-2, 2));
            if (b == 0 && h == 0 && i == 1) m = -INFINITY;
            mask_data[size_t(b * s0 + h * s1 + i * s2 + j * s3)] = T(m);
          }
    mask = FlashMask<T>{mask_data.data(), mb == 1 ? 0 : s0, mh == 1 ? 0 : s1, s2, s3};
  }
  FlashSizes s{H, Hkv, Lq, Lk, c.causal, float(c.scale)};
  auto visible = [&](int64_t i) { return flash_visible(s, i); };

  // float64 reference
  const size_t nq = size_t(B * H * Lq);
  std::vector<double> ref_out(nq * D, 0), ref_lse(nq, INFINITY), ref_dq(nq * D, 0), ref_dk(size_t(B * Hkv * Lk * D), 0),
      ref_dv(size_t(B * Hkv * Lk * D), 0);
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++) {
      const int64_t kh = h / group;
      for (int64_t i = 0; i < Lq; i++) {
        const int64_t n = visible(i);
        std::vector<double> sc(static_cast<size_t>(n)), p(static_cast<size_t>(n), 0.0), dp(static_cast<size_t>(n));
        double mx = -INFINITY;
        for (int64_t j = 0; j < n; j++) {
          double dot = 0;
          for (int d = 0; d < D; d++) dot += double(q.at(b, h, i, d)) * k.at(b, kh, j, d);
          sc[size_t(j)] = float(c.scale) * dot + (mask.data ? double(mask.at(b, h, i, j)) : 0.0);
          mx = std::max(mx, sc[size_t(j)]);
        }
        double sum = 0;
        if (mx > -INFINITY)
          for (int64_t j = 0; j < n; j++) sum += (p[size_t(j)] = std::exp(sc[size_t(j)] - mx));
        const size_t r = size_t((b * H + h) * Lq + i);
        if (sum > 0) {
          ref_lse[r] = mx + std::log(sum);
          for (int64_t j = 0; j < n; j++) p[size_t(j)] /= sum;
        }
        double delta = 0;
        for (int64_t j = 0; j < n; j++) {
          double dpj = 0;
          for (int d = 0; d < D; d++) dpj += double(dout.at(b, h, i, d)) * v.at(b, kh, j, d);
          dp[size_t(j)] = dpj;
          delta += p[size_t(j)] * dpj;
        }
        for (int64_t j = 0; j < n; j++) {
          const double pj = p[size_t(j)], ds = pj * (dp[size_t(j)] - delta);
          const size_t kr = size_t((b * Hkv + kh) * Lk + j);
          for (int d = 0; d < D; d++) {
            ref_out[r * D + d] += pj * v.at(b, kh, j, d);
            ref_dq[r * D + d] += c.scale * ds * k.at(b, kh, j, d);
            ref_dk[kr * D + d] += c.scale * ds * q.at(b, h, i, d);
            ref_dv[kr * D + d] += pj * dout.at(b, h, i, d);
          }
        }
      }
    }

  // the kernels
  Output<T> out = make_output<T>(B, H, Lq, D, c.out_layout);
  std::vector<float> lse(std::max<size_t>(nq, 1), kNaN);
  const int64_t q_tiles = ceil_div_host(Lq, kMmaRows), k_tiles = ceil_div_host(Lk, kMmaRows);
  auto poison = [] { memset(mma_shared, 0xff, sizeof mma_shared); };  // NaN as float, bf16 and f16
  static_assert(mma_forward_shared(D) <= emu::kMaxShared && mma_dq_shared(D) <= emu::kMaxShared && mma_dkv_shared(D) <= emu::kMaxShared);
  for (int64_t blk = 0; blk < q_tiles * B * H; blk++) {
    poison();
    emu::run_block(kMmaThreads, unsigned(blk), policy, [&] { mma_forward_kernel<T, D>(q.m, k.m, v.m, mask, out.o, lse.data(), s, q_tiles); });
  }
  // delta as attention_delta_kernel: sum of dO * O in float over the stored output
  auto out_f = make_operand<float>(B, H, Lq, D, Layout::Contiguous, [] { return 0.0f; });
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++)
      for (int64_t i = 0; i < Lq; i++)
        for (int d = 0; d < D; d++) out_f.data[size_t(((b * H + h) * Lq + i) * D + d)] = out.get(b, h, i, d);
  std::vector<float> delta(std::max<size_t>(nq, 1), 0.0f);
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++)
      for (int64_t i = 0; i < Lq; i++) {
        float sum = 0;
        for (int d = 0; d < D; d++) sum += dout.at(b, h, i, d) * out_f.at(b, h, i, d);
        delta[size_t((b * H + h) * Lq + i)] = sum;
      }
  Output<T> dq = make_output<T>(B, H, Lq, D, c.out_layout), dk = make_output<T>(B, Hkv, Lk, D, c.out_layout),
            dv = make_output<T>(B, Hkv, Lk, D, c.out_layout);
  for (int64_t blk = 0; blk < q_tiles * B * H; blk++) {
    poison();
    emu::run_block(kMmaThreads, unsigned(blk), policy, [&] {
      mma_backward_dq_kernel<T, D>(q.m, k.m, v.m, dout.m, mask, dq.o, lse.data(), delta.data(), s, q_tiles);
    });
  }
  for (int64_t blk = 0; blk < k_tiles * B * Hkv; blk++) {
    poison();
    emu::run_block(kMmaThreads, unsigned(blk), policy, [&] {
      mma_backward_dkv_kernel<T, D>(q.m, k.m, v.m, dout.m, mask, dk.o, dv.o, lse.data(), delta.data(), s, k_tiles);
    });
  }

  Errors e;
  MaxErr eo, el, eq, ek, ev;
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++)
      for (int64_t i = 0; i < Lq; i++) {
        const size_t r = size_t((b * H + h) * Lq + i);
        el.add(lse[r], ref_lse[r]);
        for (int d = 0; d < D; d++) {
          eo.add(out.get(b, h, i, d), ref_out[r * D + d]);
          eq.add(dq.get(b, h, i, d), ref_dq[r * D + d]);
        }
      }
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < Hkv; h++)
      for (int64_t j = 0; j < Lk; j++)
        for (int d = 0; d < D; d++) {
          const size_t r = size_t(((b * Hkv + h) * Lk + j) * D + d);
          ek.add(dk.get(b, h, j, d), ref_dk[r]);
          ev.add(dv.get(b, h, j, d), ref_dv[r]);
        }
  e = {eo.relative(), el.err, eq.relative(), ek.relative(), ev.relative(),
       std::max({eo.frobenius(), eq.frobenius(), ek.frobenius(), ev.frobenius()})};
  if (el.bad) e.lse = INFINITY;
  *ok = untouched_outside(out) && untouched_outside(dq) && untouched_outside(dk) && untouched_outside(dv);
  if (keep) {
    auto bits = [](const Output<T>& o) {
      std::vector<float> r;
      for (auto x : o.data) r.push_back(float(x));
      return r;
    };
    keep->out_bits = bits(out), keep->lse = lse, keep->dq_bits = bits(dq), keep->dk_bits = bits(dk), keep->dv_bits = bits(dv);
  }
  return e;
}

}  // namespace

template <typename T, int D>
int run_all(const char* dtype, const std::vector<Case>& cases, const std::vector<emu::Policy>& policies, double tol) {
  int failures = 0;
  for (size_t n = 0; n < cases.size(); n++) {
    const Case& c = cases[n];
    Run<T> first;
    Errors worst;
    bool all_ok = true, same = true;
    for (size_t pi = 0; pi < policies.size(); pi++) {
      rng.seed(unsigned(1000 + n));
      emu::g_rng.seed(unsigned(77 + pi));
      Run<T> run;
      bool ok = true;
      const Errors e = run_case<T, D>(c, policies[pi], &run, &ok);
      all_ok = all_ok && ok;
      worst = {std::max(worst.out, e.out), std::max(worst.lse, e.lse), std::max(worst.dq, e.dq), std::max(worst.dk, e.dk),
               std::max(worst.dv, e.dv), std::max(worst.frobenius, e.frobenius)};
      auto eq = [](const std::vector<float>& a, const std::vector<float>& b) {
        return a.size() == b.size() && memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
      };
      if (pi == 0) first = run;
      else
        same = same && eq(first.out_bits, run.out_bits) && eq(first.lse, run.lse) && eq(first.dq_bits, run.dq_bits) &&
               eq(first.dk_bits, run.dk_bits) && eq(first.dv_bits, run.dv_bits);
    }
    const bool pass = all_ok && same && worst.out <= tol && worst.dq <= tol && worst.dk <= tol && worst.dv <= tol && worst.lse <= 1e-3;
    if (!pass) failures++;
    printf("%-4s %s D=%-3d B%lld H%lld/%lld Lq=%-4lld Lk=%-4lld %-6s mask=%-10s in=%-8s out=%-8s | out %.2e lse %.2e dq %.2e dk %.2e dv %.2e | frob %.1e%s%s\n",
           pass ? "ok" : "FAIL", dtype, D, (long long)c.B, (long long)c.H, (long long)c.Hkv, (long long)c.Lq, (long long)c.Lk,
           c.causal ? "causal" : "full", mask_name(c.mask), layout_name(c.in_layout), layout_name(c.out_layout), worst.out, worst.lse,
           worst.dq, worst.dk, worst.dv, worst.frobenius, all_ok ? "" : " [stray write]", same ? "" : " [schedule-dependent]");
    fflush(stdout);
  }
  return failures;
}

int main() {
  const std::vector<emu::Policy> policies = {emu::Policy::Forward, emu::Policy::Reverse, emu::Policy::Random};
  using L = Layout;
  using M = MaskKind;
  const std::vector<Case> cases = {
      {1, 2, 2, 64, 64, false, M::None, L::Contiguous, L::Contiguous, 0.125},
      {1, 1, 1, 130, 130, true, M::None, L::Contiguous, L::Contiguous, 0.125},
      {1, 2, 1, 17, 65, true, M::None, L::HeadsInside, L::HeadsInside, 0.2},
      {1, 2, 2, 130, 17, true, M::None, L::Padded, L::Padded, 0.1},
      {1, 1, 1, 1, 100, true, M::None, L::Contiguous, L::Contiguous, 0.125},
      {1, 1, 1, 100, 1, false, M::None, L::Contiguous, L::Contiguous, 0.125},
      {1, 2, 2, 0, 5, false, M::None, L::Contiguous, L::Contiguous, 0.125},
      {1, 2, 2, 5, 0, true, M::None, L::Contiguous, L::Contiguous, 0.125},
      {2, 4, 2, 70, 70, true, M::Full, L::ColumnMajor, L::ColumnMajor, 0.125},
      {1, 2, 1, 65, 130, false, M::Broadcast, L::HeadsInside, L::Contiguous, 0.3},
      {1, 2, 2, 33, 47, true, M::Transposed, L::Padded, L::HeadsInside, 0.125},
  };
  const std::vector<Case> few = {cases[1], cases[2], cases[8]};
  int failures = 0;
  failures += run_all<bfloat16, 64>("bf16", cases, policies, 2e-2);
  failures += run_all<bfloat16, 128>("bf16", cases, policies, 2e-2);
  failures += run_all<float16, 64>("f16", cases, policies, 4e-3);
  failures += run_all<float16, 128>("f16", few, policies, 4e-3);
  failures += run_all<bfloat16, 32>("bf16", few, policies, 2e-2);
  failures += run_all<float16, 32>("f16", few, policies, 4e-3);
  printf("%d failing case(s); %ld warp collectives, %ld block barriers emulated\n", failures, emu::g_collectives, emu::g_barriers);
  return failures ? 1 : 0;
}
