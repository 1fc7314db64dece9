#include "cpu/backend.h"

#include "core/allocator.h"
#include "cpu/attention.h"
#include "cpu/copy.h"
#include "cpu/creation.h"
#include "cpu/elementwise.h"
#include "cpu/indexing.h"
#include "cpu/lora.h"
#include "cpu/loss.h"
#include "cpu/matmul.h"
#include "cpu/norm.h"
#include "cpu/optim.h"
#include "cpu/reduce.h"
#include "cpu/softmax.h"

namespace ignis::cpu {
namespace {

void* allocate(Device device, size_t nbytes) {
  void* data = host_alloc(nbytes);
  if (!data) fail(ERR_OOM, "out of memory allocating ", nbytes, " bytes on ", device.str());
  return data;
}

void deallocate(Device, void* data, size_t nbytes) noexcept { host_free(data, nbytes); }

// 16-bit floats are computed in float32: Debian's OpenBLAS 0.3.21 is built without bfloat16
// support, so cblas_sbgemm is declared in cblas.h but missing from the library.
DType gemm_dtype(DType dtype) { return dtype == DType::Float64 ? DType::Float64 : DType::Float32; }

DeviceBackend make_backend() {
  DeviceBackend b;
  b.name = "cpu";
  b.allocate = allocate;
  b.deallocate = deallocate;
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
  b.attention_forward = attention_forward;
  b.attention_backward = attention_backward;
  return b;
}

}  // namespace

const DeviceBackend& backend() {
  static const DeviceBackend b = make_backend();
  return b;
}

}  // namespace ignis::cpu
