#include "core/creation.h"

#include <cmath>
#include <mutex>
#include "core/backend.h"
#include "cpu/creation.h"
#include "kernels/philox.h"

namespace ignis {
namespace {

constexpr double kTwo63 = 9223372036854775808.0;

std::mutex g_rng_mutex;
RngState g_rng{kDefaultSeed, 0};

int64_t blocks_for(int64_t n, int per_block) { return (n + per_block - 1) / per_block; }

void check_not_bool(DType dtype, const char* op) {
  if (dtype == DType::Bool) fail(ERR_DTYPE, op, ": not supported for bool tensors");
}

// Integer dtypes take integer arguments, truncated; a value out of int64 range cannot be.
double to_integer(double v, const char* op) {
  if (!(std::fabs(v) < kTwo63)) fail(ERR_ARG, op, ": ", v, " is out of range for an integer tensor");
  return std::trunc(v);
}

// Whether the integer v is exact in `dtype` (for floats: every integer up to |v| is).
bool fits(double v, DType dtype) {
  switch (dtype) {
    case DType::Float32: return std::fabs(v) <= 16777216.0;  // 2^24
    case DType::Float64: return std::fabs(v) <= 9007199254740992.0;
    case DType::BFloat16: return std::fabs(v) <= 256.0;
    case DType::Float16: return std::fabs(v) <= 2048.0;
    case DType::Int32: return v >= -2147483648.0 && v <= 2147483647.0;
    default: return v >= -kTwo63 && v < kTwo63;
  }
}

// Number of elements of arange(start, end, step) in `dtype`; ERR_ARG for NaN, infinities, a zero
// step or a step whose sign points away from end.
int64_t arange_length(double start, double end, double step, DType dtype) {
  if (std::isnan(start) || std::isnan(end) || std::isnan(step)) fail(ERR_ARG, "arange: arguments must not be NaN");
  if (!std::isfinite(start) || !std::isfinite(end) || !std::isfinite(step))
    fail(ERR_ARG, "arange: arguments must be finite");
  if (!is_float(dtype)) {
    start = to_integer(start, "arange");
    end = to_integer(end, "arange");
    step = to_integer(step, "arange");
  }
  if (step == 0) fail(ERR_ARG, "arange: step must be nonzero");
  if ((end - start) / step < 0)
    fail(ERR_ARG, "arange: the step ", step, " goes away from end ", end, " when starting at ", start);
  double length = std::ceil((end - start) / step);
  if (!(length < 9007199254740992.0)) fail(ERR_ARG, "arange: ", length, " elements are too many");
  return int64_t(length);
}

// The kernels of arange, linspace and eye run on the CPU: they write into `out` itself there,
// and into a host tensor copied to `out` elsewhere.
template <typename Kernel>
TensorPtr generate(const TensorPtr& out, Kernel kernel_fn) {
  if (out->device().is_cpu()) {
    kernel_fn(out);
    return out;
  }
  TensorPtr host = empty(out->shape, out->dtype, Device{});
  kernel_fn(host);
  if (out->numel() > 0) kernel(&DeviceBackend::transfer, out->device(), "creation")(out, host);
  return out;
}

}  // namespace

TensorPtr arange(double start, double end, double step, DType dtype, Device device) {
  check_not_bool(dtype, "arange");
  int64_t n = arange_length(start, end, step, dtype);
  if (!is_float(dtype)) {
    start = std::trunc(start);
    step = std::trunc(step);
    double last = start + double(n > 0 ? n - 1 : 0) * step;
    if (!fits(start, dtype) || !fits(last, dtype))
      fail(ERR_ARG, "arange: values up to ", last, " do not fit in ", dtype_name(dtype));
  }
  return generate(empty({n}, dtype, device), [&](const TensorPtr& out) { cpu::arange(out, start, step); });
}

TensorPtr linspace(double start, double end, int64_t steps, DType dtype, Device device) {
  check_not_bool(dtype, "linspace");
  if (!std::isfinite(start) || !std::isfinite(end)) fail(ERR_ARG, "linspace: start and end must be finite");
  if (steps < 0) fail(ERR_ARG, "linspace: steps must be non-negative, got ", steps);
  if (!is_float(dtype)) {
    start = to_integer(start, "linspace");
    end = to_integer(end, "linspace");
    if (!fits(start, dtype) || !fits(end, dtype))
      fail(ERR_ARG, "linspace: [", start, ", ", end, "] does not fit in ", dtype_name(dtype));
  }
  return generate(empty({steps}, dtype, device), [&](const TensorPtr& out) { cpu::linspace(out, start, end); });
}

TensorPtr eye(int64_t n, int64_t m, DType dtype, Device device) {
  return generate(empty({n, m}, dtype, device), [](const TensorPtr& out) { cpu::eye(out); });  // empty checks the sizes
}

RngState take_rng_blocks(uint64_t blocks) {
  std::lock_guard<std::mutex> lock(g_rng_mutex);
  RngState taken = g_rng;
  g_rng.offset += blocks;
  return taken;
}

RngState rng_state() {
  std::lock_guard<std::mutex> lock(g_rng_mutex);
  return g_rng;
}

void set_rng_state(RngState state) {
  std::lock_guard<std::mutex> lock(g_rng_mutex);
  g_rng = state;
}

TensorPtr rand(const Shape& shape, DType dtype, Device device) {
  if (!is_float(dtype)) fail(ERR_DTYPE, "rand: expected a floating-point dtype, got ", dtype_name(dtype));
  TensorPtr out = empty(shape, dtype, device);
  int per_block = dtype == DType::Float64 ? kUniformDoublePerBlock : kUniformFloatPerBlock;
  const auto draw = kernel(&DeviceBackend::uniform, device, "rand");
  RngState s = take_rng_blocks(blocks_for(out->numel(), per_block));
  draw(out, s.seed, s.offset);
  return out;
}

TensorPtr randn(const Shape& shape, DType dtype, Device device) {
  if (!is_float(dtype)) fail(ERR_DTYPE, "randn: expected a floating-point dtype, got ", dtype_name(dtype));
  TensorPtr out = empty(shape, dtype, device);
  int per_block = dtype == DType::Float64 ? kNormalDoublePerBlock : kNormalFloatPerBlock;
  const auto draw = kernel(&DeviceBackend::normal, device, "randn");
  RngState s = take_rng_blocks(blocks_for(out->numel(), per_block));
  draw(out, s.seed, s.offset);
  return out;
}

TensorPtr randint(int64_t low, int64_t high, const Shape& shape, DType dtype, Device device) {
  check_not_bool(dtype, "randint");
  if (low >= high) fail(ERR_ARG, "randint: expected low < high, got low ", low, " and high ", high);
  if (!fits(double(low), dtype) || !fits(double(high - 1), dtype))
    fail(ERR_ARG, "randint: [", low, ", ", high, ") does not fit in ", dtype_name(dtype));
  TensorPtr out = empty(shape, dtype, device);
  const auto draw = kernel(&DeviceBackend::random_int, device, "randint");
  RngState s = take_rng_blocks(blocks_for(out->numel(), kIntPerBlock));
  draw(out, low, uint64_t(high) - uint64_t(low), s.seed, s.offset);
  return out;
}

}  // namespace ignis
