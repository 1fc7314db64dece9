#include "core/softmax.h"

#include "core/views.h"
#include "cpu/softmax.h"

namespace ignis {

TensorPtr softmax(const TensorPtr& x, int64_t dim, bool log) {
  const char* name = log ? "logSoftmax" : "softmax";
  if (!is_float(x->dtype)) fail(ERR_DTYPE, name, ": expected a floating-point tensor, got ", dtype_name(x->dtype));
  int nd = x->ndim();
  int64_t d = normalize_dim(dim, nd, name);
  if (nd == 0) return make_view(softmax(make_view(x, {1}, {1}, x->offset), 0, log), {}, {}, 0);
  if (x->strides[d] == 1 || x->shape[d] == 1) {
    // Rows along `dim` are contiguous: softmax each into a contiguous row of an output whose
    // dims are x's with `dim` moved last, then view it in x's dim order.
    Shape perm;
    for (int i = 0; i < nd; i++)
      if (i != d) perm.push_back(i);
    perm.push_back(d);
    TensorPtr rows_in = d == nd - 1 ? x : permute(x, perm);
    TensorPtr rows_out = empty(rows_in->shape, x->dtype, x->device());
    if (rows_out->numel() > 0) cpu::softmax_rows(rows_out, rows_in, log);
    if (d == nd - 1) return rows_out;
    Shape inverse(nd);
    for (int i = 0; i < nd; i++) inverse[perm[i]] = i;
    return permute(rows_out, inverse);
  }
  TensorPtr out = empty(x->shape, x->dtype, x->device());
  if (out->numel() > 0) cpu::softmax_columns(out, contiguous(x), d, log);
  return out;
}

}  // namespace ignis
