// Element conversion between dtypes, shared by the CPU and CUDA copy kernels: through the wider
// of the two arithmetic types (16-bit floats through float); bool means "not zero".
#pragma once
#include <type_traits>
#include "kernels/common.h"
#include "kernels/half.h"

namespace ignis {

template <typename To, typename From>
IGNIS_HD To convert(From v) {
  if constexpr (std::is_same_v<To, bool>) {
    return static_cast<acc_t<From>>(v) != acc_t<From>(0);
  } else if constexpr (std::is_same_v<To, bfloat16> || std::is_same_v<To, float16>) {
    return To(float(v));
  } else {
    return static_cast<To>(static_cast<acc_t<From>>(v));
  }
}

}  // namespace ignis
