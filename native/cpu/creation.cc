#include "cpu/creation.h"

#include <algorithm>
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

// Blocks generated together, stored word by word (words[k][j] = word k of block j), so that
// the rounds run on several blocks at once in vector registers.
constexpr int kBatch = 64;
using Words = uint32_t[4][kBatch];

void philox_batch(uint64_t seed, uint64_t first, int count, Words& words) {
  for (int j = 0; j < count; j++) {
    PhiloxBlock r = philox_block(seed, first + uint64_t(j));
    for (int k = 0; k < 4; k++) words[k][j] = r.w[k];
  }
}

// out[i] for i in [0, n) from consecutive Philox blocks: element i takes value i % PerBlock of
// block offset + i / PerBlock. draw(words, count, values) turns a batch of `count` blocks into
// count * PerBlock values in that order.
template <int PerBlock, typename T, typename Draw>
void fill_from_blocks(T* out, int64_t n, uint64_t seed, uint64_t offset, Draw draw) {
  int64_t blocks = (n + PerBlock - 1) / PerBlock;
  parallel_for(blocks, kPhiloxGrain, [&](int64_t begin, int64_t end) {
    alignas(64) Words words;
    T values[kBatch * PerBlock];
    for (int64_t b = begin; b < end; b += kBatch) {
      int count = int(std::min<int64_t>(kBatch, end - b));
      philox_batch(seed, offset + uint64_t(b), count, words);
      draw(words, count, values);
      int64_t first = b * PerBlock;
      int64_t last = std::min(n, (b + count) * PerBlock);
      std::copy(values, values + (last - first), out + first);
    }
  });
}

// Calls piece(first, count) over [begin, end) in pieces of at most 2^30 elements, so that
// loops inside count with a 32-bit int: its conversion to double vectorises, a 64-bit one's
// does not. first + j is exactly double(first) + double(j) below 2^53.
template <typename F>
void in_int_pieces(int64_t begin, int64_t end, F piece) {
  constexpr int64_t kPiece = int64_t(1) << 30;
  for (int64_t first = begin; first < end; first += kPiece) piece(first, int(std::min(kPiece, end - first)));
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
        in_int_pieces(begin, end, [&](int64_t first, int count) {
          T* d = dst + first;
          double base = double(first);
          for (int j = 0; j < count; j++) d[j] = from_double<T>(start + (base + double(j)) * step);
        });
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
      in_int_pieces(begin, std::min(stop, halfway), [&](int64_t first, int count) {
        T* d = dst + first;
        double base = double(first);
        for (int j = 0; j < count; j++) d[j] = from_double<T>(start + (base + double(j)) * step);
      });
      in_int_pieces(std::max(begin, halfway), stop, [&](int64_t first, int count) {
        T* d = dst + first;
        double back = double(n - 1 - first);  // steps from the end
        for (int j = 0; j < count; j++) d[j] = from_double<T>(end - (back - double(j)) * step);
      });
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
      fill_from_blocks<kUniformDoublePerBlock>(dst, n, seed, offset, [](const Words& w, int count, double* v) {
        for (int j = 0; j < count; j++) {
          v[2 * j] = uniform_double(w[0][j], w[1][j]);
          v[2 * j + 1] = uniform_double(w[2][j], w[3][j]);
        }
      });
    } else {
      fill_from_blocks<kUniformFloatPerBlock>(dst, n, seed, offset, [](const Words& w, int count, T* v) {
        for (int j = 0; j < count; j++)
          for (int k = 0; k < 4; k++) v[4 * j + k] = T(uniform_float(w[k][j], uniform_bits<T>()));
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
      fill_from_blocks<kNormalDoublePerBlock>(dst, n, seed, offset, [](const Words& w, int count, double* v) {
        // 1 - u keeps log away from 0
        for (int j = 0; j < count; j++)
          box_muller(1.0 - uniform_double(w[0][j], w[1][j]), uniform_double(w[2][j], w[3][j]), v[2 * j], v[2 * j + 1]);
      });
    } else {
      // Box-Muller (kernels/philox.h) on words (0, 1) and (2, 3) of each block, in passes: the
      // library sqrt keeps errno, so a loop over it cannot vectorise, while the others can.
      fill_from_blocks<kNormalFloatPerBlock>(dst, n, seed, offset, [](const Words& w, int count, T* v) {
        float radius[2][kBatch], sin_t[2][kBatch], cos_t[2][kBatch];
        for (int h = 0; h < 2; h++) {
          for (int j = 0; j < count; j++) {
            radius[h][j] = -2.0f * log_poly(1.0f - uniform_float(w[2 * h][j], 24));
            sincos_turns(uniform_float(w[2 * h + 1][j], 24), sin_t[h][j], cos_t[h][j]);
          }
          for (int j = 0; j < count; j++) radius[h][j] = sqrtf(radius[h][j]);
        }
        for (int j = 0; j < count; j++) {
          for (int h = 0; h < 2; h++) {
            v[4 * j + 2 * h] = T(radius[h][j] * cos_t[h][j]);
            v[4 * j + 2 * h + 1] = T(radius[h][j] * sin_t[h][j]);
          }
        }
      });
    }
  });
}

void random_int(const TensorPtr& out, int64_t low, uint64_t range, uint64_t seed, uint64_t offset) {
  int64_t n = out->numel();
  dispatch_numeric(out->dtype, "randint", [&](auto tag) {
    using T = decltype(tag);
    fill_from_blocks<kIntPerBlock>(out->data_as<T>(), n, seed, offset, [low, range](const Words& w, int count, T* v) {
      for (int j = 0; j < count; j++) {
        for (int k = 0; k < 2; k++) {
          // unsigned addition wraps where int64 would overflow; the result is in [low, high)
          auto value = int64_t(uint64_t(low) + bounded_u64(w[2 * k][j], w[2 * k + 1][j], range));
          if constexpr (std::is_integral_v<T>) v[2 * j + k] = T(value);
          else v[2 * j + k] = from_double<T>(double(value));
        }
      }
    });
  });
}

}  // namespace ignis::cpu
