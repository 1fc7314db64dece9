#include "core/softmax.h"

#include <algorithm>
#include "core/backend.h"
#include "core/reduce.h"
#include "core/views.h"

namespace ignis {

TensorPtr softmax(const TensorPtr& x, int64_t dim, bool log) {
  const char* name = log ? "logSoftmax" : "softmax";
  const auto rows_kernel = kernel(&DeviceBackend::softmax_rows, x->device(), name);
  const auto columns_kernel = kernel(&DeviceBackend::softmax_columns, x->device(), name);
  if (!is_float(x->dtype)) fail(ERR_DTYPE, name, ": expected a floating-point tensor, got ", dtype_name(x->dtype));
  const int nd = x->ndim();
  const int d = int(normalize_dim(dim, nd, name));
  if (nd == 0) return make_view(softmax(make_view(x, {1}, {1}, x->offset), 0, log), {}, {}, 0);
  // Walk x in memory order, with `dim` last when its elements are adjacent (rows); otherwise
  // softmax runs down columns, vectorised across the dims inside `dim`. The output is laid out
  // the same way and viewed back in x's dim order.
  std::vector<int> order = memory_order(*x);
  const bool rows = x->strides[d] == 1 || x->shape[d] == 1;
  if (rows) std::stable_partition(order.begin(), order.end(), [d](int i) { return i != d; });
  const int at = int(std::find(order.begin(), order.end(), d) - order.begin());
  TensorPtr in = permute(x, Shape(order.begin(), order.end()));
  // Columns need a contiguous input, and rows that no stride orders (a strided dim, last in
  // memory) a copy too.
  if (at == nd - 1 ? in->strides[at] != 1 && in->shape[at] != 1 : !in->is_contiguous()) in = contiguous_copy(in);
  TensorPtr out = empty(in->shape, x->dtype, x->device());
  if (out->numel() > 0) {
    if (at == nd - 1) rows_kernel(out, in, log);
    else columns_kernel(out, in, at, log);
  }
  Shape inverse(nd);
  for (int i = 0; i < nd; i++) inverse[order[i]] = i;
  return permute(out, inverse);
}

}  // namespace ignis
