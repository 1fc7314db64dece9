#include "cpu/creation.h"

#include <cmath>
#include <type_traits>
#include "core/parallel.h"
#include "kernels/philox.h"

namespace ignis::cpu {
namespace {

constexpr int64_t kFillGrain = 32768;       // elements: a store and an add each
constexpr int64_t kPhiloxGrain = 4096;      // blocks: ten rounds of multiplies each

// A double that is already in range, stored as T (integers truncate toward zero).
template <typename T>
inline T from_double(double v) {
  if constexpr (std::is_same_v<T, bfloat16> || std::is_same_v<T, float16>) return T(float(v));
  else return static_cast<T>(v);
}

// out[i] for i in [0, n) from the draws of consecutive Philox blocks: draw(block, values) fills
// PerBlock values from one block; element i takes value i % PerBlock of block offset + i / PerBlock.
template <int PerBlock, typename T, typename Draw>
void fill_from_blocks(T* out, int64_t n, uint64_t seed, uint64_t offset, Draw draw) {
  int64_t blocks = (n + PerBlock - 1) / PerBlock;
  parallel_for(blocks, kPhiloxGrain, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; b++) {
      T values[PerBlock];
      draw(philox_block(seed, offset + uint64_t(b)), values);
      T* dst = out + b * PerBlock;
      if (b * PerBlock + PerBlock <= n) {
        for (int k = 0; k < PerBlock; k++) dst[k] = values[k];
      } else {
        for (int64_t k = 0; k < n - b * PerBlock; k++) dst[k] = values[k];
      }
    }
  });
}

// Mantissa bits of a uniform of T: each value k * 2^-bits is exact in T and below 1.
template <typename T>
constexpr int uniform_bits() {
  if constexpr (std::is_same_v<T, bfloat16>) return 8;
  else if constexpr (std::is_same_v<T, float16>) return 11;
  else return 24;
}

}  // namespace

void arange(const TensorPtr& out, double start, double step) {
  int64_t n = out->numel();
  dispatch_numeric(out->dtype, "arange", [&](auto tag) {
    using T = decltype(tag);
    T* dst = out->data_as<T>();
    if constexpr (std::is_integral_v<T>) {
      int64_t first = int64_t(start), stride = int64_t(step);
      parallel_for(n, kFillGrain, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; i++) dst[i] = T(first + i * stride);
      });
    } else {
      parallel_for(n, kFillGrain, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; i++) dst[i] = from_double<T>(start + double(i) * step);
      });
    }
  });
}

void linspace(const TensorPtr& out, double start, double end) {
  int64_t n = out->numel();
  double step = n > 1 ? (end - start) / double(n - 1) : 0.0;
  // Counting back from end in the second half keeps the last value exactly `end`; one step is start.
  int64_t halfway = n == 1 ? 1 : n / 2;
  dispatch_numeric(out->dtype, "linspace", [&](auto tag) {
    using T = decltype(tag);
    T* dst = out->data_as<T>();
    parallel_for(n, kFillGrain, [&](int64_t begin, int64_t stop) {
      for (int64_t i = begin; i < stop; i++)
        dst[i] = from_double<T>(i < halfway ? start + double(i) * step : end - double(n - 1 - i) * step);
    });
  });
}

void eye(const TensorPtr& out) {
  int64_t rows = out->shape[0], cols = out->shape[1];
  dispatch_all(out->dtype, "eye", [&](auto tag) {
    using T = decltype(tag);
    T* dst = out->data_as<T>();
    const T zero = from_double<T>(0.0), one = from_double<T>(1.0);
    parallel_for(rows, kFillGrain / (cols > 0 ? cols : 1), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; i++) {
        T* row = dst + i * cols;
        for (int64_t j = 0; j < cols; j++) row[j] = zero;
        if (i < cols) row[i] = one;
      }
    });
  });
}

void uniform(const TensorPtr& out, uint64_t seed, uint64_t offset) {
  int64_t n = out->numel();
  dispatch_float(out->dtype, "rand", [&](auto tag) {
    using T = decltype(tag);
    T* dst = out->data_as<T>();
    if constexpr (std::is_same_v<T, double>) {
      fill_from_blocks<kUniformDoublePerBlock>(dst, n, seed, offset, [](PhiloxBlock r, double* v) {
        v[0] = uniform_double(r.w[0], r.w[1]);
        v[1] = uniform_double(r.w[2], r.w[3]);
      });
    } else {
      fill_from_blocks<kUniformFloatPerBlock>(dst, n, seed, offset, [](PhiloxBlock r, T* v) {
        for (int k = 0; k < 4; k++) v[k] = T(uniform_float(r.w[k], uniform_bits<T>()));
      });
    }
  });
}

void normal(const TensorPtr& out, uint64_t seed, uint64_t offset) {
  int64_t n = out->numel();
  dispatch_float(out->dtype, "randn", [&](auto tag) {
    using T = decltype(tag);
    T* dst = out->data_as<T>();
    if constexpr (std::is_same_v<T, double>) {
      fill_from_blocks<kNormalDoublePerBlock>(dst, n, seed, offset, [](PhiloxBlock r, double* v) {
        // 1 - u keeps log away from 0
        box_muller(1.0 - uniform_double(r.w[0], r.w[1]), uniform_double(r.w[2], r.w[3]), v[0], v[1]);
      });
    } else {
      fill_from_blocks<kNormalFloatPerBlock>(dst, n, seed, offset, [](PhiloxBlock r, T* v) {
        float z[4];
        box_muller(1.0f - uniform_float(r.w[0], 24), uniform_float(r.w[1], 24), z[0], z[1]);
        box_muller(1.0f - uniform_float(r.w[2], 24), uniform_float(r.w[3], 24), z[2], z[3]);
        for (int k = 0; k < 4; k++) v[k] = T(z[k]);
      });
    }
  });
}

void random_int(const TensorPtr& out, int64_t low, uint64_t range, uint64_t seed, uint64_t offset) {
  int64_t n = out->numel();
  dispatch_numeric(out->dtype, "randint", [&](auto tag) {
    using T = decltype(tag);
    fill_from_blocks<kIntPerBlock>(out->data_as<T>(), n, seed, offset, [low, range](PhiloxBlock r, T* v) {
      for (int k = 0; k < 2; k++) {
        // unsigned addition wraps where int64 would overflow; the result is in [low, high)
        auto value = int64_t(uint64_t(low) + bounded_u64(r.w[2 * k], r.w[2 * k + 1], range));
        if constexpr (std::is_integral_v<T>) v[k] = T(value);
        else v[k] = from_double<T>(double(value));
      }
    });
  });
}

}  // namespace ignis::cpu
