// The CUDA backend's entries in the DeviceBackend table, registered when the addon loads. Ops
// without an entry here raise ERR_DEVICE "op X is not implemented on cuda yet".
#include "core/backend.h"
#include "cuda/allocator.h"
#include "cuda/attention.h"
#include "cuda/copy.h"
#include "cuda/elementwise.h"
#include "cuda/lora.h"
#include "cuda/matmul.h"
#include "cuda/optim.h"
#include "cuda/transfer.h"

namespace ignis::cuda {
namespace {

DeviceBackend make_backend() {
  DeviceBackend b;
  b.name = "cuda";
  b.allocate = allocate;
  b.deallocate = deallocate;
  b.transfer = transfer;
  b.copy = copy;
  b.fill = fill;
  b.binary = binary;
  b.binary_scalar = binary_scalar;
  b.binary_backward = binary_backward;
  b.unary = unary;
  b.clamp = clamp;
  b.unary_backward = unary_backward;
  b.clamp_backward = clamp_backward;
  b.compare = compare;
  b.compare_scalar = compare_scalar;
  b.where = where;
  b.gemm_dtype = gemm_dtype;
  b.gemm = gemm;
  // training
  b.adamw_step = adamw_step;
  b.sgd_step = sgd_step;
  b.total_norm = total_norm;
  b.scale_in_place = scale_in_place;
  b.clip_by_total_norm = clip_by_total_norm;
  b.lora_forward = lora_forward;
  b.lora_backward = lora_backward;
  b.lora_delta = lora_delta;
  b.all_finite = all_finite;
  b.add_into = add_into;
  b.dropout_mask = dropout_mask;
  b.attention_forward = attention_forward;
  b.attention_backward = attention_backward;
  return b;
}

const DeviceBackend g_backend = make_backend();
[[maybe_unused]] const bool g_registered = (register_backend(DeviceType::CUDA, &g_backend), true);

}  // namespace
}  // namespace ignis::cuda
