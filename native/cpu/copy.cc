#include "cpu/copy.h"

#include <cstring>
#include "core/loop.h"
#include "kernels/convert.h"

namespace ignis::cpu {

void copy(const TensorPtr& dst, const TensorPtr& src) {
  Shape src_strides = broadcast_strides(*src, dst->shape, "copy");
  auto loop = make_loop<2>(dst->shape, {LoopOperand{dst->data(), dst->strides.data(), dst->element_size()},
                                        LoopOperand{src->data(), src_strides.data(), src->element_size()}});
  dispatch_all(dst->dtype, "copy", [&](auto to_tag) {
    using To = decltype(to_tag);
    dispatch_all(src->dtype, "copy", [&](auto from_tag) {
      using From = decltype(from_tag);
      for_each_strided(loop, kElementwiseGrain, [](char* const* p, const int64_t* s, int64_t n) {
        if constexpr (std::is_same_v<To, From>) {
          if (s[0] == sizeof(To) && s[1] == sizeof(From)) {
            std::memcpy(p[0], p[1], size_t(n) * sizeof(To));
            return;
          }
        }
        if (s[0] == sizeof(To) && s[1] == sizeof(From)) {
          auto* out = reinterpret_cast<To*>(p[0]);
          auto* in = reinterpret_cast<const From*>(p[1]);
          for (int64_t i = 0; i < n; i++) out[i] = convert<To, From>(in[i]);
          return;
        }
        for (int64_t i = 0; i < n; i++)
          *reinterpret_cast<To*>(p[0] + i * s[0]) = convert<To, From>(*reinterpret_cast<const From*>(p[1] + i * s[1]));
      });
    });
  });
}

void fill(const TensorPtr& dst, double value) {
  auto loop = make_loop<1>(dst->shape, {LoopOperand{dst->data(), dst->strides.data(), dst->element_size()}});
  dispatch_all(dst->dtype, "fill", [&](auto tag) {
    using T = decltype(tag);
    const T v = convert<T, double>(value);
    for_each_strided(loop, kElementwiseGrain, [v](char* const* p, const int64_t* s, int64_t n) {
      for (int64_t i = 0; i < n; i++) *reinterpret_cast<T*>(p[0] + i * s[0]) = v;
    });
  });
}

}  // namespace ignis::cpu
