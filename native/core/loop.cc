#include "core/loop.h"

namespace ignis {

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t n = a.size() > b.size() ? a.size() : b.size();
  Shape out(n);
  for (size_t i = 0; i < n; i++) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1)
      fail(ERR_SHAPE, op, ": shapes ", shape_str(a), " and ", shape_str(b), " cannot be broadcast together");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Shape broadcast_strides(const TensorImpl& t, const Shape& out, const char* op) {
  size_t n = out.size();
  if (size_t(t.ndim()) > n) fail(ERR_SHAPE, op, ": cannot broadcast ", shape_str(t.shape), " to ", shape_str(out));
  Shape strides(n, 0);
  size_t lead = n - t.ndim();
  for (size_t i = lead; i < n; i++) {
    int64_t size = t.shape[i - lead];
    if (size == out[i]) {
      strides[i] = t.strides[i - lead];
    } else if (size != 1) {
      fail(ERR_SHAPE, op, ": cannot broadcast ", shape_str(t.shape), " to ", shape_str(out));
    }
  }
  return strides;
}

}  // namespace ignis
