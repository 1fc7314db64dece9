// Reductions over dims (sum, mean, var, logsumexp, max, min, argmax, argmin): the
// device-neutral entry point validates, allocates the output and brings the input into a layout
// the kernels take (ReducePlan).
#pragma once
#include <optional>
#include "core/tensor.h"
#include "kernels/reduce.h"

namespace ignis {

// t's dims from outermost to innermost in memory: size-1 dims first (their strides mean
// nothing), then by decreasing stride, ties kept in order. Walking a permuted (transposed)
// tensor in this order reads it like a contiguous one.
std::vector<int> memory_order(const TensorImpl& t);

// A reduction brought down to one reduced dim: every output element reduces `n` elements spaced
// `stride` apart, starting at the input offset its position in the kept dims gives. Kept dims
// are coalesced (size-1 dims dropped, neighbours merged where strides allow); the output is
// contiguous over them.
struct ReducePlan {
  TensorPtr input;     // the tensor reduced: the op's input or a contiguous copy with the reduced dims last
  Shape kept_sizes;    // coalesced kept dims, outermost first
  Shape kept_strides;  // their strides in `input`, in elements
  Shape out_strides;   // their strides in the output, in elements
  int64_t n = 1;       // elements per reduction
  int64_t stride = 1;  // stride of the reduced dim in `input`
  // The innermost kept dim has stride 1 in `input` and the reduced dim does not: reduce whole
  // rows of that dim at once, vectorised across it (leading-dim reductions).
  bool columns = false;
};

// `dims`: the dims to reduce (any order, negatives allowed), or nullopt for all of them.
// Argmax/argmin over all dims give the flat (row-major) index. `correction` is var's. The output
// keeps the memory order of x's kept dims (contiguous when x is).
TensorPtr reduce(ReduceOp op, const TensorPtr& x, const std::optional<Shape>& dims, bool keepdim, double correction);

int64_t reduce_op_from_int(int64_t v);

}  // namespace ignis
