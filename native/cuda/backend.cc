// The CUDA backend's entries in the DeviceBackend table, registered when the addon loads. Ops
// without an entry here raise ERR_DEVICE "op X is not implemented on cuda yet".
#include "core/backend.h"
#include "cuda/allocator.h"
#include "cuda/attention.h"
#include "cuda/copy.h"
#include "cuda/creation.h"
#include "cuda/elementwise.h"
#include "cuda/indexing.h"
#include "cuda/lora.h"
#include "cuda/loss.h"
#include "cuda/matmul.h"
#include "cuda/norm.h"
#include "cuda/optim.h"
#include "cuda/reduce.h"
#include "cuda/softmax.h"
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
  // reductions, softmax, norms, indexing, losses
  b.reduce = reduce;
  b.softmax_rows = softmax_rows;
  b.softmax_columns = softmax_columns;
  b.layer_norm = layer_norm;
  b.rms_norm = rms_norm;
  b.norm_backward = norm_backward;
  b.scan_indices = scan_indices;
  b.embedding = embedding;
  b.embedding_backward = embedding_backward;
  b.gather = gather;
  b.gather_backward = gather_backward;
  b.cross_entropy_rows = cross_entropy_rows;
  b.cross_entropy_backward = cross_entropy_backward;
  b.squared_error = squared_error;
  b.sum_squared_error = sum_squared_error;
  b.sum = sum;
  // random numbers
  b.uniform = uniform;
  b.normal = normal;
  b.random_int = random_int;

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
  b.attention_reads_storage = attention_reads_storage;
  b.attention_forward = attention_forward;
  b.attention_backward = attention_backward;
  return b;
}

const DeviceBackend g_backend = make_backend();
[[maybe_unused]] const bool g_registered = (register_backend(DeviceType::CUDA, &g_backend), true);

}  // namespace
}  // namespace ignis::cuda
