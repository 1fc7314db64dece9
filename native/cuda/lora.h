// CUDA kernels of the fused LoRA layer, with the contracts of cpu/lora.h: every product is a
// cuBLAS GEMM, a LoRA term is added into its base product's output by the GEMM (beta = 1), and
// dy B is computed once in the backward.
#pragma once
#include "cpu/lora.h"

namespace ignis::cuda {

void lora_forward(DType dtype, const cpu::LoraOperands& p, const GemmOperand& a_t, const GemmOperand& b_t, void* y,
                  bool y_holds_bias, void* xa);
void lora_backward(DType dtype, const cpu::LoraOperands& p, const GemmOperand& a, const GemmOperand& b, const GemmOperand& dy,
                   const GemmOperand& xa, void* dy_b, const TensorPtr& dx, const TensorPtr& mask, void* da, void* db);
void lora_delta(DType dtype, Device device, int64_t out, int64_t in, int64_t r, const GemmOperand& b, const GemmOperand& a,
                double scale, void* delta);
// Reads one flag back from the device (a host sync: not allowed while a graph is captured).
bool all_finite(const TensorPtr& t);
void add_into(const TensorPtr& w, const TensorPtr& delta);
void dropout_mask(const TensorPtr& out, const TensorPtr& uniform, double p);

}  // namespace ignis::cuda
