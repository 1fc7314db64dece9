#include "core/loss.h"

#include "core/backend.h"
#include "core/elementwise.h"
#include "core/indexing.h"
#include "core/reduce.h"
#include "core/loop.h"
#include "core/views.h"

namespace ignis {

Reduction reduction_from_int(int64_t v) {
  if (v < 0 || v > int64_t(Reduction::Sum)) fail(ERR_ARG, "unknown reduction ", v);
  return Reduction(v);
}

// A 0-dim tensor of `dtype` holding `value`.
static TensorPtr scalar_tensor(double value, DType dtype, Device device) {
  TensorPtr out = empty({}, dtype, device);
  fill(out, value);
  return out;
}

// Checks cross-entropy's arguments; returns the targets, contiguous, with their scan.
static TensorPtr checked_labels(const char* op, const TensorPtr& logits, const TensorPtr& target, int64_t ignore_index,
                                double label_smoothing, IndexScan& scan) {
  check_same_device(op, logits, target);
  if (!is_float(logits->dtype)) fail(ERR_DTYPE, op, ": logits must be a floating-point tensor, got ", dtype_name(logits->dtype));
  check_index_dtype(target, op, "target (class indices)");
  if (logits->ndim() == 0) fail(ERR_SHAPE, op, ": logits must have a class dim, got a 0-dim tensor");
  if (!(label_smoothing >= 0 && label_smoothing <= 1)) fail(ERR_ARG, op, ": labelSmoothing must be in [0, 1], got ", label_smoothing);
  const int class_dim = logits->ndim() == 1 ? 0 : 1;
  Shape expected = logits->shape;
  expected.erase(expected.begin() + class_dim);
  if (target->shape != expected)
    fail(ERR_SHAPE, op, ": target of shape ", shape_str(target->shape), " does not fit logits of shape ", shape_str(logits->shape),
         "; expected target shape ", shape_str(expected));
  const int64_t classes = logits->shape[class_dim];
  TensorPtr labels = contiguous(target);
  scan = scan_indices(labels, classes, true, ignore_index);
  if (!scan.all_in_range)
    fail(ERR_INDEX, op, ": target ", scan.first_bad, " is out of range for ", classes, " classes (ignoreIndex is ", ignore_index, ")");
  return labels;
}

CrossEntropyRows cross_entropy_rows(const TensorPtr& logits, const TensorPtr& target, int64_t ignore_index,
                                    double label_smoothing) {
  const auto rows_kernel = kernel(&DeviceBackend::cross_entropy_rows, logits->device(), "crossEntropy");
  IndexScan scan;
  TensorPtr labels = checked_labels("crossEntropy", logits, target, ignore_index, label_smoothing, scan);
  const DType acc = accumulation_dtype(logits->dtype);
  CrossEntropyRows rows{empty(target->shape, acc, logits->device()), empty(target->shape, acc, logits->device()), scan.counted,
                        scan.counted_on_device};
  rows_kernel(rows.loss, rows.logsumexp, logits, labels, ignore_index, label_smoothing);
  return rows;
}

TensorPtr cross_entropy(const TensorPtr& logits, const TensorPtr& target, const CrossEntropyOptions& options,
                        CrossEntropyRows* kept) {
  CrossEntropyRows rows = cross_entropy_rows(logits, target, options.ignore_index, options.label_smoothing);
  if (kept) *kept = rows;
  if (options.reduction == Reduction::None)
    return rows.loss->dtype == logits->dtype ? rows.loss : to_dtype(rows.loss, logits->dtype);
  if (rows.counted_on_device) {
    // capturing a CUDA graph: the sum and the divisor stay on the device
    TensorPtr total = reduce(ReduceOp::Sum, rows.loss, std::nullopt, false, 0);
    if (options.reduction == Reduction::Mean) total = binary(BinaryOp::Div, total, to_dtype(rows.counted_on_device, total->dtype));
    return to_dtype(total, logits->dtype);
  }
  const double total = kernel(&DeviceBackend::sum, logits->device(), "crossEntropy")(rows.loss);
  // 0 / 0 is NaN when every target is ignored, as in PyTorch.
  const double value = options.reduction == Reduction::Mean ? total / double(rows.counted) : total;
  return scalar_tensor(value, logits->dtype, logits->device());
}

TensorPtr cross_entropy_backward(const TensorPtr& grad, const TensorPtr& logits, const TensorPtr& target,
                                 const TensorPtr& logsumexp, const CrossEntropyOptions& options, int64_t counted,
                                 const TensorPtr& counted_on_device) {
  const char* op = "crossEntropy backward";
  const auto backward_kernel = kernel(&DeviceBackend::cross_entropy_backward, logits->device(), op);
  IndexScan scan;
  TensorPtr labels = checked_labels(op, logits, target, options.ignore_index, options.label_smoothing, scan);
  const bool per_row = options.reduction == Reduction::None;
  check_same_device(op, logits, grad);
  check_same_device(op, logits, logsumexp);
  if (grad->dtype != logits->dtype || grad->shape != (per_row ? target->shape : Shape{}))
    fail(ERR_SHAPE, op, ": grad (", dtype_name(grad->dtype), " ", shape_str(grad->shape), ") does not match the loss");
  const DType acc = accumulation_dtype(logits->dtype);
  if (logsumexp->shape != target->shape || logsumexp->dtype != acc || !logsumexp->is_contiguous())
    fail(ERR_SHAPE, op, ": logsumexp must be a contiguous ", dtype_name(acc), " tensor of shape ", shape_str(target->shape));
  const bool on_device = scan.deferred || counted_on_device;
  if (!on_device && counted != scan.counted)
    fail(ERR_ARG, op, ": counted is ", counted, " but ", scan.counted, " targets are not ignored");
  if (counted_on_device) check_same_device(op, logits, counted_on_device);
  TensorPtr row_scale = per_row ? contiguous(to_dtype(grad, acc)) : nullptr;
  double scale = 0;
  if (!per_row && on_device) {
    // the 0-dim grad (over the count for 'mean') as a device scale per row: nothing read back
    TensorPtr s = to_dtype(grad, acc);
    if (options.reduction == Reduction::Mean) {
      s = counted_on_device ? binary(BinaryOp::Div, s, to_dtype(counted_on_device, acc))
                            : binary_scalar(BinaryOp::Mul, s, counted > 0 ? 1.0 / double(counted) : 0.0, false);
    }
    row_scale = contiguous_copy(expand(s, target->shape));
  } else if (!per_row) {
    scale = to_host_contiguous(to_dtype(grad, DType::Float64))->data_as<double>()[0];
    if (options.reduction == Reduction::Mean) scale = counted > 0 ? scale / double(counted) : 0;
  }
  TensorPtr out = empty(logits->shape, logits->dtype, logits->device());
  backward_kernel(out, logits, labels, logsumexp, row_scale, scale, options.ignore_index, options.label_smoothing);
  return out;
}

TensorPtr mse_loss(const TensorPtr& input, const TensorPtr& target, Reduction reduction, DType dtype) {
  check_same_device("mseLoss", input, target);
  if (!is_float(dtype))
    fail(ERR_DTYPE, "mseLoss: expected floating-point tensors, got ", dtype_name(input->dtype), " and ",
         dtype_name(target->dtype));
  const Shape shape = broadcast_shapes(input->shape, target->shape, "mseLoss");
  TensorPtr x = to_dtype(input, dtype), y = to_dtype(target, dtype);
  if (reduction == Reduction::None) {
    TensorPtr out = empty(shape, dtype, input->device());
    kernel(&DeviceBackend::squared_error, input->device(), "mseLoss")(out, x, y);
    return out;
  }
  // The reduction reads both operands flat: broadcast or strided ones are copied first.
  auto flat = [&shape](const TensorPtr& t) { return t->shape == shape ? contiguous(t) : contiguous_copy(expand(t, shape)); };
  const double total = kernel(&DeviceBackend::sum_squared_error, input->device(), "mseLoss")(flat(x), flat(y));
  const double value = reduction == Reduction::Mean ? total / double(shape_numel(shape)) : total;
  return scalar_tensor(value, dtype, input->device());
}

}  // namespace ignis
