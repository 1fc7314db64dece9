// The seam between the device-neutral core and the device backends. Core ops validate and
// allocate, then call the kernel of their tensors' device through that device's DeviceBackend,
// a table of functions. The CPU backend (cpu/backend.cc) fills every entry. The CUDA backend
// (native/cuda/, built by CMake when nvcc is found, with IGNIS_WITH_CUDA defined) registers
// itself when the addon loads and fills the entries it has: a null entry is an op that device
// does not implement yet, which raises ERR_DEVICE (never a silent fallback to the CPU).
#pragma once
#include <initializer_list>
#include <vector>
#include "core/indexing.h"
#include "core/matmul.h"
#include "core/optim.h"
#include "core/reduce.h"
#include "core/tensor.h"
#include "cpu/attention.h"
#include "cpu/lora.h"
#include "kernels/elementwise.h"

namespace ignis {

struct DeviceBackend {
  const char* name = nullptr;  // "cpu", "cuda"

  // Memory behind Storage. allocate throws (ERR_OOM, ERR_DEVICE, ERR_CUDA) and may return
  // nullptr for 0 bytes; deallocate takes what allocate gave, with the same size.
  void* (*allocate)(Device device, size_t nbytes) = nullptr;
  void (*deallocate)(Device device, void* data, size_t nbytes) noexcept = nullptr;
  // dst <- src, one of them on this backend's device type and the other on the CPU or another
  // device of this type; both contiguous, of one dtype and shape. Returns once src may change
  // (a copy to the CPU has landed when it returns).
  void (*transfer)(const TensorPtr& dst, const TensorPtr& src) = nullptr;

  // Kernels, with the signatures and contracts of their CPU versions (cpu/copy.h,
  // cpu/elementwise.h, cpu/matmul.h).
  void (*copy)(const TensorPtr& dst, const TensorPtr& src) = nullptr;
  void (*fill)(const TensorPtr& dst, double value) = nullptr;
  void (*binary)(BinaryOp op, const TensorPtr& out, const TensorPtr& a, const TensorPtr& b) = nullptr;
  void (*binary_scalar)(BinaryOp op, const TensorPtr& out, const TensorPtr& a, double s, bool reversed) = nullptr;
  void (*binary_backward)(BinaryGrad op, const TensorPtr& out, const TensorPtr& grad, const TensorPtr& self,
                          const TensorPtr& other) = nullptr;
  void (*unary)(UnaryOp op, const TensorPtr& out, const TensorPtr& a) = nullptr;
  void (*clamp)(const TensorPtr& out, const TensorPtr& a, double lo, double hi) = nullptr;
  void (*unary_backward)(UnaryOp op, const TensorPtr& out, const TensorPtr& grad, const TensorPtr& saved) = nullptr;
  void (*clamp_backward)(const TensorPtr& out, const TensorPtr& grad, const TensorPtr& a, double lo, double hi) = nullptr;
  void (*compare)(CompareOp op, const TensorPtr& out, const TensorPtr& a, const TensorPtr& b) = nullptr;
  void (*compare_scalar)(CompareOp op, const TensorPtr& out, const TensorPtr& a, double s) = nullptr;
  void (*where)(const TensorPtr& out, const TensorPtr& condition, const TensorPtr& a, const TensorPtr& b) = nullptr;
  // GEMM: products of operands of a float dtype d run in gemm_dtype(d) (operands are converted
  // to it, and the result back), then gemm(gemm_dtype(d), g).
  DType (*gemm_dtype)(DType dtype) = nullptr;
  void (*gemm)(DType dtype, const Gemm& g) = nullptr;

  // Reductions, softmax, norms, indexing and losses (cpu/reduce.h, cpu/softmax.h, cpu/norm.h,
  // cpu/indexing.h, cpu/loss.h).
  void (*reduce)(ReduceOp op, const TensorPtr& out, const ReducePlan& plan, double correction) = nullptr;
  void (*softmax_rows)(const TensorPtr& out, const TensorPtr& x, bool log) = nullptr;
  void (*softmax_columns)(const TensorPtr& out, const TensorPtr& x, int64_t dim, bool log) = nullptr;
  void (*layer_norm)(const TensorPtr& out, const TensorPtr& mean, const TensorPtr& rstd, const TensorPtr& x,
                     const TensorPtr& weight, const TensorPtr& bias, double eps) = nullptr;
  void (*rms_norm)(const TensorPtr& out, const TensorPtr& rstd, const TensorPtr& x, const TensorPtr& weight, double eps) = nullptr;
  void (*norm_backward)(const TensorPtr& dx, const TensorPtr& dweight, const TensorPtr& dbias, const TensorPtr& grad,
                        const TensorPtr& x, const TensorPtr& weight, const TensorPtr& mean, const TensorPtr& rstd) = nullptr;
  IndexScan (*scan_indices)(const TensorPtr& index, int64_t bound, bool has_ignore, int64_t ignore) = nullptr;
  void (*embedding)(const TensorPtr& out, const TensorPtr& indices, const TensorPtr& weight) = nullptr;
  void (*embedding_backward)(const TensorPtr& dweight, const TensorPtr& grad, const TensorPtr& indices) = nullptr;
  void (*gather)(const TensorPtr& out, const TensorPtr& t, int64_t dim, const TensorPtr& index) = nullptr;
  void (*gather_backward)(const TensorPtr& out, const TensorPtr& grad, int64_t dim, const TensorPtr& index) = nullptr;
  void (*cross_entropy_rows)(const TensorPtr& loss, const TensorPtr& logsumexp, const TensorPtr& logits,
                             const TensorPtr& target, int64_t ignore_index, double label_smoothing) = nullptr;
  void (*cross_entropy_backward)(const TensorPtr& dlogits, const TensorPtr& logits, const TensorPtr& target,
                                 const TensorPtr& logsumexp, const TensorPtr& row_scale, double scale, int64_t ignore_index,
                                 double label_smoothing) = nullptr;
  void (*squared_error)(const TensorPtr& out, const TensorPtr& input, const TensorPtr& target) = nullptr;
  double (*sum_squared_error)(const TensorPtr& input, const TensorPtr& target) = nullptr;
  double (*sum)(const TensorPtr& t) = nullptr;

  // Random numbers (cpu/creation.h): the same for a seed on every device.
  void (*uniform)(const TensorPtr& out, uint64_t seed, uint64_t offset) = nullptr;
  void (*normal)(const TensorPtr& out, uint64_t seed, uint64_t offset) = nullptr;
  void (*random_int)(const TensorPtr& out, int64_t low, uint64_t range, uint64_t seed, uint64_t offset) = nullptr;

  // Training: optimizers, the fused LoRA layer and attention, with the signatures and contracts
  // of their CPU versions (cpu/optim.h, cpu/lora.h, cpu/attention.h).
  void (*adamw_step)(const TensorList& params, const TensorList& grads, const TensorList& exp_avgs,
                     const TensorList& exp_avg_sqs, const std::vector<int64_t>& steps, const AdamWOptions& options) = nullptr;
  void (*sgd_step)(const TensorList& params, const TensorList& grads, const TensorList& momentum_buffers,
                   const std::vector<bool>& fresh, const SgdOptions& options) = nullptr;
  double (*total_norm)(const TensorList& tensors, double norm_type) = nullptr;
  void (*scale_in_place)(const TensorList& tensors, double factor) = nullptr;
  void (*clip_by_total_norm)(const TensorList& tensors, const TensorList& contiguous, double max_norm, double norm_type,
                             const TensorPtr& norm) = nullptr;
  void (*lora_forward)(DType dtype, const cpu::LoraOperands& p, const GemmOperand& a_t, const GemmOperand& b_t, void* y,
                       bool y_holds_bias, void* xa) = nullptr;
  void (*lora_backward)(DType dtype, const cpu::LoraOperands& p, const GemmOperand& a, const GemmOperand& b, const GemmOperand& dy,
                        const GemmOperand& xa, void* dy_b, const TensorPtr& dx, const TensorPtr& mask, void* da, void* db) = nullptr;
  void (*lora_delta)(DType dtype, Device device, int64_t out, int64_t in, int64_t r, const GemmOperand& b, const GemmOperand& a,
                     double scale, void* delta) = nullptr;
  bool (*all_finite)(const TensorPtr& t) = nullptr;
  void (*add_into)(const TensorPtr& w, const TensorPtr& delta) = nullptr;
  void (*dropout_mask)(const TensorPtr& out, const TensorPtr& uniform, double p) = nullptr;
  // Whether attention_forward/backward take p's operands (q, k, v, and the backward's out and
  // dout) in the storage dtype `dtype` rather than the compute dtype (null: never); p holds the
  // sizes and options only.
  bool (*attention_reads_storage)(const cpu::AttentionProblem& p, DType dtype, Device device) = nullptr;
  void (*attention_forward)(const cpu::AttentionProblem& p, const TensorPtr& out, void* lse) = nullptr;
  void (*attention_backward)(const cpu::AttentionProblem& p, const GemmOperand& out, const GemmOperand& dout, const void* lse,
                             const TensorPtr& dq, const TensorPtr& dk, const TensorPtr& dv) = nullptr;
};

// Called once by a backend built into the addon (from a static initializer).
void register_backend(DeviceType type, const DeviceBackend* backend);
// The backend of a device; ERR_DEVICE when this build has none for its type.
const DeviceBackend& backend(Device device);
// "cpu" or "cuda".
const char* device_type_name(DeviceType type);

// A kernel of `device`'s backend, or ERR_DEVICE "op <op> is not implemented on cuda yet".
template <typename Fn>
Fn kernel(Fn DeviceBackend::*entry, Device device, const char* op) {
  const DeviceBackend& b = backend(device);
  Fn fn = b.*entry;
  if (!fn) fail(ERR_DEVICE, "op ", op, " is not implemented on ", b.name, " yet");
  return fn;
}

// For ops that have only CPU kernels so far: ERR_DEVICE as above when a tensor (null ones are
// skipped) lives elsewhere.
void require_cpu(const char* op, const TensorPtr& t);
void require_cpu(const char* op, const std::vector<TensorPtr>& tensors);
template <typename... Tensors>
void cpu_only(const char* op, const Tensors&... tensors) {
  (require_cpu(op, tensors), ...);
}

// t on `device`: t itself (an alias) when it is there already, else a contiguous copy there.
TensorPtr to_device(const TensorPtr& t, Device device);
// t's elements, contiguous, in host memory: t itself when it already is.
TensorPtr to_host_contiguous(const TensorPtr& t);

}  // namespace ignis
