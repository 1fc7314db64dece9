// Reductions over one (planned) dim, with the contract of cpu/reduce.h: one group of threads
// per output element (cuda/reduce.cuh), rows read along the group, or columns (the innermost
// kept dim contiguous) read by neighbouring groups; sums, max and min of a few long rows or
// columns in two passes over fixed chunks.
#include "cuda/reduce.h"

#include <limits>
#include <type_traits>
#include "core/backend.h"
#include "core/dtype.h"
#include "cuda/reduce.cuh"

namespace ignis::cuda {
namespace {

// Integer and bool sums accumulate in uint64_t, which wraps (like PyTorch's int64) without UB.
template <typename T> using sum_t = std::conditional_t<std::is_floating_point_v<acc_t<T>>, acc_t<T>, uint64_t>;
template <typename T> using sum_out_t = std::conditional_t<std::is_floating_point_v<acc_t<T>>, T, int64_t>;

// out[row] = op(group, first element, elements, stride) for every output element, or, when the
// reduced dim is cut into `chunks` chunks of `chunk` elements, for every chunk of every output
// (out[output * chunks + c]). Groups take the chunks of one output in turn in rows mode, and
// the outputs of one chunk (neighbouring columns) in turn in columns mode.
template <typename T, typename Out, typename Op, bool Columns>
struct ReduceRows {
  const T* in;
  Out* out;
  RowIndex kept;
  int64_t n, stride, chunk, chunks, outputs;
  Op op;
  __device__ void operator()(const Group& g, int64_t row, bool active) const {
    int64_t at = 0, count = 0, output = 0, c = 0;
    if (active) {
      output = Columns ? row % outputs : row / chunks;
      c = Columns ? row / outputs : row % chunks;
      const int64_t first = c * chunk;
      at = kept.offset(output) + first * stride;
      count = n - first < chunk ? n - first : chunk;
    }
    const Out r = op(g, in + at, count, stride);
    if (active && g.lane == 0) out[output * chunks + c] = r;
  }
};

// Reduces `chunks` chunks of `chunk` elements of every row of the plan into out.
template <typename T, typename Out, typename Op>
void run_chunks(const char* name, const TensorPtr& out, const ReducePlan& plan, int64_t chunks, int64_t chunk, Op op) {
  const int64_t outputs = shape_numel(plan.kept_sizes);
  const RowIndex kept = row_index(plan.kept_sizes, plan.kept_strides);
  const T* in = plan.input->data_as<T>();
  Out* o = out->data_as<Out>();
  const int device = out->device().index;
  if (plan.columns)
    run_groups<true>(name, device, outputs * chunks, chunk,
                     ReduceRows<T, Out, Op, true>{in, o, kept, plan.n, plan.stride, chunk, chunks, outputs, op});
  else
    run_groups<false>(name, device, outputs * chunks, chunk,
                      ReduceRows<T, Out, Op, false>{in, o, kept, plan.n, plan.stride, chunk, chunks, outputs, op});
}

template <typename T, typename Out, typename Op>
void run(const char* name, const TensorPtr& out, const ReducePlan& plan, Op op) {
  run_chunks<T, Out>(name, out, plan, 1, plan.n, op);
}

// Few long rows are cut into chunks of kChunk elements: at most kSplitRows rows of at least
// kSplitLength elements (one group of a block each would leave most of the GPU idle).
constexpr int64_t kChunk = 8192;
constexpr int64_t kSplitRows = 64;
constexpr int64_t kSplitLength = 4 * kChunk;

// As run, for ops that reduce partial results of type P the way they reduce elements (sums,
// max, min): few long rows or columns are cut into chunks reduced side by side by `partial`
// into a temporary [outputs, chunks] of `partial_dtype`, whose rows are then reduced the same
// way (by `op` in the end). The chunks depend only on the sizes, so the result stays
// deterministic.
template <typename T, typename Out, typename P, typename PartialOp, typename Op>
void run_split(const char* name, const TensorPtr& out, const ReducePlan& plan, DType partial_dtype, PartialOp partial, Op op) {
  const int64_t outputs = shape_numel(plan.kept_sizes);
  const bool split = plan.columns ? split_columns(outputs, plan.n) : outputs <= kSplitRows && plan.n >= kSplitLength;
  if (!split) return run<T, Out>(name, out, plan, op);
  const int64_t length = plan.columns ? kColumnChunk : kChunk, chunks = (plan.n + length - 1) / length;
  TensorPtr parts = empty({outputs, chunks}, partial_dtype, out->device());
  run_chunks<T, P>(name, parts, plan, chunks, (plan.n + chunks - 1) / chunks, partial);
  ReducePlan second;
  second.input = parts;
  second.kept_sizes = {outputs};
  second.kept_strides = {chunks};
  second.out_strides = {1};
  second.n = chunks;
  run_split<P, Out, P>(name, out, second, partial_dtype, partial, op);
}

// Sum (in A) of a row, finished as Out: divided by `divisor` for a mean.
template <typename A, typename Out>
struct SumOp {
  bool mean;
  int64_t divisor;
  template <typename T>
  __device__ Out operator()(const Group& g, const T* x, int64_t n, int64_t s) const {
    const A total = g.reduce(g.accumulate(x, n, s, A(0), Add{}, Same{}), Add{});
    if constexpr (std::is_floating_point_v<A>) return Out(mean ? total / A(divisor) : total);  // empty mean: 0/0 = NaN
    else return Out(total);
  }
};

// Two passes (mean, then squared deviations from it), as the CPU.
template <typename T>
struct VarOp {
  using A = acc_t<T>;
  int64_t count;
  A divisor;
  __device__ T operator()(const Group& g, const T* x, int64_t n, int64_t s) const {
    const A mean = g.reduce(g.accumulate(x, n, s, A(0), Add{}, Same{}), Add{}) / A(count);
    const A squares = g.reduce(g.accumulate(x, n, s, A(0), Add{}, SquaredFrom<A>{mean}), Add{});
    return T(squares / divisor);
  }
};

template <typename T>
struct LogSumExpOp {
  using A = acc_t<T>;
  __device__ T operator()(const Group& g, const T* x, int64_t n, int64_t s) const {
    const A max = g.reduce(g.accumulate(x, n, s, -std::numeric_limits<A>::infinity(), MaxNan{}, Same{}), MaxNan{});
    const A shift = logsumexp_shift(max);
    const A total = g.reduce(g.accumulate(x, n, s, A(0), Add{}, ExpFrom<A>{shift}), Add{});
    return T(logsumexp_finish(total, shift));
  }
};

// The identity of max (Largest) or min: an infinity for floats, the extreme value for integers.
template <typename A, bool Largest>
__device__ A extreme_identity() {
  if constexpr (std::is_floating_point_v<A>) return Largest ? -std::numeric_limits<A>::infinity() : std::numeric_limits<A>::infinity();
  else return Largest ? std::numeric_limits<A>::lowest() : std::numeric_limits<A>::max();
}

// Max (Largest) or min of a row; NaN wins.
template <typename T, bool Largest>
struct ExtremeOp {
  using A = acc_t<T>;
  __device__ T operator()(const Group& g, const T* x, int64_t n, int64_t s) const {
    const A init = extreme_identity<A, Largest>();
    if constexpr (Largest) return T(g.reduce(g.accumulate(x, n, s, init, MaxNan{}, Same{}), MaxNan{}));
    else return T(g.reduce(g.accumulate(x, n, s, init, MinNan{}, Same{}), MinNan{}));
  }
};

// A value and its index; the better of two is the larger (smaller) value, a NaN before any
// number, and of equal values the first.
template <typename A>
struct Candidate {
  A value;
  int64_t index;
};
template <typename A, bool Largest>
struct BetterOf {
  __device__ Candidate<A> operator()(Candidate<A> a, Candidate<A> b) const {
    const bool a_nan = a.value != a.value, b_nan = b.value != b.value;
    if (a_nan || b_nan) return a_nan && (!b_nan || a.index < b.index) ? a : b;
    if (a.value == b.value) return a.index < b.index ? a : b;
    return (Largest ? a.value > b.value : a.value < b.value) ? a : b;
  }
};

template <typename T, bool Largest>
struct ArgOp {
  using A = acc_t<T>;
  __device__ int64_t operator()(const Group& g, const T* x, int64_t n, int64_t s) const {
    const BetterOf<A, Largest> better;
    Candidate<A> best{extreme_identity<A, Largest>(), std::numeric_limits<int64_t>::max()};
    for (int64_t i = g.lane; i < n; i += g.size) best = better(best, Candidate<A>{A(x[i * s]), i});
    return g.reduce(best, better).index;
  }
};

}  // namespace

void reduce(ReduceOp op, const TensorPtr& out, const ReducePlan& plan, double correction) {
  const DType dtype = plan.input->dtype;
  switch (op) {
    case ReduceOp::Sum:
    case ReduceOp::Mean:
      dispatch_all(dtype, "sum", [&](auto tag) {
        using T = decltype(tag);
        using A = sum_t<T>;
        run_split<T, sum_out_t<T>, A>("sum", out, plan, std::is_same_v<A, uint64_t> ? DType::Int64 : accumulation_dtype(dtype),
                                      SumOp<A, A>{false, plan.n}, SumOp<A, sum_out_t<T>>{op == ReduceOp::Mean, plan.n});
      });
      return;
    case ReduceOp::Var:
      dispatch_float(dtype, "var", [&](auto tag) {
        using T = decltype(tag);
        using A = acc_t<T>;
        run<T, T>("var", out, plan, VarOp<T>{plan.n, A(std::max(0.0, double(plan.n) - correction))});
      });
      return;
    case ReduceOp::LogSumExp:
      dispatch_float(dtype, "logsumexp", [&](auto tag) {
        using T = decltype(tag);
        run<T, T>("logsumexp", out, plan, LogSumExpOp<T>{});
      });
      return;
    case ReduceOp::Max:
    case ReduceOp::Min:
      dispatch_all(dtype, "max", [&](auto tag) {
        using T = decltype(tag);
        if (op == ReduceOp::Max) run_split<T, T, T>("max", out, plan, dtype, ExtremeOp<T, true>{}, ExtremeOp<T, true>{});
        else run_split<T, T, T>("min", out, plan, dtype, ExtremeOp<T, false>{}, ExtremeOp<T, false>{});
      });
      return;
    case ReduceOp::ArgMax:
    case ReduceOp::ArgMin:
      dispatch_all(dtype, "argmax", [&](auto tag) {
        using T = decltype(tag);
        if (op == ReduceOp::ArgMax) run<T, int64_t>("argmax", out, plan, ArgOp<T, true>{});
        else run<T, int64_t>("argmin", out, plan, ArgOp<T, false>{});
      });
      return;
  }
}

double sum(const TensorPtr& t) {
  ReducePlan plan;
  plan.input = t;
  plan.n = t->numel();
  TensorPtr total = empty({}, DType::Float64, t->device());
  const SumOp<double, double> op{false, plan.n};
  if (t->dtype == DType::Float64) run_split<double, double, double>("sum", total, plan, DType::Float64, op, op);
  else if (t->dtype == DType::Float32) run_split<float, double, double>("sum", total, plan, DType::Float64, op, op);
  else fail(ERR_INTERNAL, "sum: expected float32 or float64, got ", dtype_name(t->dtype));
  return to_host_contiguous(total)->data_as<double>()[0];
}

}  // namespace ignis::cuda
