#include "core/optim.h"

#include <cmath>
#include "core/backend.h"
#include "core/views.h"

namespace ignis {

DType optimizer_state_dtype(DType param) {
  return param == DType::BFloat16 || param == DType::Float16 ? DType::Float32 : param;
}

namespace {

void check_count(const char* op, const char* what, size_t got, size_t params) {
  if (got != params) fail(ERR_ARG, op, ": expected one ", what, " per param (", params, "), got ", got);
}

// A finite option value in [lo, below).
void check_option(const char* op, const char* name, double value, double lo, double below = INFINITY) {
  if (std::isfinite(value) && value >= lo && value < below) return;
  if (std::isfinite(below)) fail(ERR_ARG, op, ": ", name, " must be in [", lo, ", ", below, "), got ", value);
  if (std::isfinite(lo)) fail(ERR_ARG, op, ": ", name, " must be a finite number of at least ", lo, ", got ", value);
  fail(ERR_ARG, op, ": ", name, " must be a finite number, got ", value);
}

void check_param(const char* op, size_t k, const TensorPtr& param) {
  if (!is_float(param->dtype)) fail(ERR_DTYPE, op, ": param ", k, " must be a floating-point tensor, got ", dtype_name(param->dtype));
  if (!param->is_contiguous())
    fail(ERR_ARG, op, ": param ", k, " of shape ", shape_str(param->shape), " is not contiguous; params are updated in place and must be");
}

// A gradient or state tensor of param k: same device and shape, and `dtype`.
void check_companion(const char* op, size_t k, const char* what, const TensorPtr& t, const TensorPtr& param, DType dtype) {
  if (t->device() != param->device())
    fail(ERR_DEVICE, op, ": ", what, " of param ", k, " is on ", t->device().str(), ", the param on ", param->device().str());
  if (t->shape != param->shape)
    fail(ERR_SHAPE, op, ": ", what, " of param ", k, " has shape ", shape_str(t->shape), ", the param ", shape_str(param->shape));
  if (t->dtype != dtype)
    fail(ERR_DTYPE, op, ": ", what, " of param ", k, " (", dtype_name(param->dtype), ") must be ", dtype_name(dtype), ", got ",
         dtype_name(t->dtype));
}

void check_state(const char* op, size_t k, const char* what, const TensorPtr& t, const TensorPtr& param) {
  check_companion(op, k, what, t, param, optimizer_state_dtype(param->dtype));
  if (!t->is_contiguous()) fail(ERR_ARG, op, ": ", what, " of param ", k, " is not contiguous");
}

void check_float(const char* op, size_t k, const TensorPtr& t) {
  if (!is_float(t->dtype)) fail(ERR_DTYPE, op, ": tensor ", k, " must be a floating-point tensor, got ", dtype_name(t->dtype));
}

// Every tensor on the device of the first: one kernel call updates them all.
void check_one_device(const char* op, const TensorList& tensors) {
  for (size_t k = 1; k < tensors.size(); k++)
    if (tensors[k]->device() != tensors[0]->device())
      fail(ERR_DEVICE, op, ": tensor ", k, " is on ", tensors[k]->device().str(), ", tensor 0 on ", tensors[0]->device().str());
}

// Gradients are read in place when contiguous, from a contiguous copy otherwise.
TensorList contiguous_all(const TensorList& tensors) {
  TensorList out;
  out.reserve(tensors.size());
  for (const TensorPtr& t : tensors) out.push_back(contiguous(t));
  return out;
}

// A per-replay lr exists only in a CUDA graph (the CUDA kernels check that one is capturing).
void check_lr_slot(const char* op, int lr_slot, const TensorList& params) {
  if (lr_slot >= 0 && params[0]->device().type != DeviceType::CUDA)
    fail(ERR_ARG, op, ": a per-replay lr (slot ", lr_slot, ") needs CUDA params under graph capture, got ",
         params[0]->device().str());
}

}  // namespace

void adamw_step(const TensorList& params, const TensorList& grads, const TensorList& exp_avgs,
                const TensorList& exp_avg_sqs, const std::vector<int64_t>& steps, const AdamWOptions& o) {
  const char* op = "adamw";
  check_count(op, "grad", grads.size(), params.size());
  check_count(op, "exp_avg", exp_avgs.size(), params.size());
  check_count(op, "exp_avg_sq", exp_avg_sqs.size(), params.size());
  check_count(op, "step count", steps.size(), params.size());
  check_option(op, "lr", o.lr, 0);
  check_option(op, "beta1", o.beta1, 0, 1);
  check_option(op, "beta2", o.beta2, 0, 1);
  check_option(op, "eps", o.eps, 0);
  check_option(op, "weightDecay", o.weight_decay, 0);
  for (size_t k = 0; k < params.size(); k++) {
    check_param(op, k, params[k]);
    check_companion(op, k, "grad", grads[k], params[k], params[k]->dtype);
    check_state(op, k, "exp_avg", exp_avgs[k], params[k]);
    check_state(op, k, "exp_avg_sq", exp_avg_sqs[k], params[k]);
    if (steps[k] < 1) fail(ERR_ARG, op, ": the step count of param ", k, " must be at least 1, got ", steps[k]);
  }
  if (params.empty()) return;
  check_one_device(op, params);
  check_lr_slot(op, o.lr_slot, params);
  kernel(&DeviceBackend::adamw_step, params[0]->device(), op)(params, contiguous_all(grads), exp_avgs, exp_avg_sqs, steps, o);
}

void sgd_step(const TensorList& params, const TensorList& grads, const TensorList& momentum_buffers,
              const std::vector<bool>& fresh, const SgdOptions& o) {
  const char* op = "sgd";
  check_count(op, "grad", grads.size(), params.size());
  check_option(op, "lr", o.lr, 0);
  check_option(op, "momentum", o.momentum, 0);
  check_option(op, "dampening", o.dampening, -INFINITY);
  check_option(op, "weightDecay", o.weight_decay, 0);
  if (o.nesterov && (o.momentum <= 0 || o.dampening != 0))
    fail(ERR_ARG, op, ": nesterov needs a positive momentum and zero dampening, got momentum ", o.momentum, " and dampening ", o.dampening);
  const bool with_momentum = o.momentum != 0;
  check_count(op, "momentum buffer", momentum_buffers.size(), with_momentum ? params.size() : 0);
  check_count(op, "fresh flag", fresh.size(), with_momentum ? params.size() : 0);
  for (size_t k = 0; k < params.size(); k++) {
    check_param(op, k, params[k]);
    check_companion(op, k, "grad", grads[k], params[k], params[k]->dtype);
    if (with_momentum) check_state(op, k, "momentum buffer", momentum_buffers[k], params[k]);
  }
  if (params.empty()) return;
  check_one_device(op, params);
  check_lr_slot(op, o.lr_slot, params);
  kernel(&DeviceBackend::sgd_step, params[0]->device(), op)(params, contiguous_all(grads), momentum_buffers, fresh, o);
}

namespace {

void check_norm(const char* op, const TensorList& tensors, double norm_type) {
  if (!(norm_type > 0)) fail(ERR_ARG, op, ": normType must be positive or Infinity, got ", norm_type);
  for (size_t k = 0; k < tensors.size(); k++) {
    check_float(op, k, tensors[k]);
    if (k > 0) check_same_device(op, tensors[0], tensors[k]);
  }
}

void check_scalable(const char* op, const TensorList& tensors) {
  for (size_t k = 0; k < tensors.size(); k++) {
    const TensorPtr& t = tensors[k];
    check_float(op, k, t);
    for (int d = 0; d < t->ndim(); d++)
      if (t->shape[d] > 1 && t->strides[d] == 0)
        fail(ERR_ARG, op, ": tensor ", k, " of shape ", shape_str(t->shape), " is broadcast (expanded) and cannot be scaled in place");
  }
}

}  // namespace

double total_norm(const TensorList& tensors, double norm_type) {
  const char* op = "clipGradNorm";
  check_norm(op, tensors, norm_type);
  if (tensors.empty()) return 0;
  return kernel(&DeviceBackend::total_norm, tensors[0]->device(), op)(contiguous_all(tensors), norm_type);
}

void scale_in_place(const TensorList& tensors, double factor) {
  const char* op = "clipGradNorm";
  check_scalable(op, tensors);
  if (tensors.empty()) return;
  check_one_device(op, tensors);
  kernel(&DeviceBackend::scale_in_place, tensors[0]->device(), op)(tensors, factor);
}

TensorPtr clip_by_total_norm(const TensorList& tensors, double max_norm, double norm_type) {
  const char* op = "clipGradNormTensor";
  check_norm(op, tensors, norm_type);
  check_scalable(op, tensors);
  if (!(max_norm >= 0)) fail(ERR_ARG, op, ": maxNorm must be a number >= 0, got ", max_norm);
  if (tensors.empty()) fail(ERR_ARG, op, ": no tensors (the device of the norm is unknown)");
  TensorPtr norm = empty({}, DType::Float32, tensors[0]->device());
  kernel(&DeviceBackend::clip_by_total_norm, tensors[0]->device(), op)(tensors, contiguous_all(tensors), max_norm, norm_type, norm);
  return norm;
}

}  // namespace ignis
