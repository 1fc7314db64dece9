#include "cuda/copy.h"

#include "core/dtype.h"
#include "cuda/loop.cuh"
#include "kernels/convert.h"

namespace ignis::cuda {
namespace {

template <typename To, typename From>
struct Convert {
  __device__ To operator()(From v) const { return convert<To, From>(v); }
};

template <typename T>
struct Constant {
  T value;
  __device__ T operator()() const { return value; }
};

}  // namespace

void copy(const TensorPtr& dst, const TensorPtr& src) {
  dispatch_all(dst->dtype, "copy", [&](auto to_tag) {
    using To = decltype(to_tag);
    dispatch_all(src->dtype, "copy", [&](auto from_tag) {
      using From = decltype(from_tag);
      map<To, From>("copy", dst, {src}, Convert<To, From>{});
    });
  });
}

void fill(const TensorPtr& dst, double value) {
  dispatch_all(dst->dtype, "fill", [&](auto tag) {
    using T = decltype(tag);
    map<T>("fill", dst, {}, Constant<T>{convert<T, double>(value)});
  });
}

}  // namespace ignis::cuda
