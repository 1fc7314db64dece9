// Element-wise reduction of several buffers, the arithmetic of every reducing collective.
#pragma once
#include <cstddef>
#include "core/dtype.h"

namespace ignis::dist {

enum class ReduceOp : uint8_t { Sum = 0, Avg, Max, Min, Prod };
const char* reduce_op_name(ReduceOp op);

// out[i] = inputs[0][i] op inputs[1][i] op ... in that order, for `count` elements of `dtype`;
// Avg divides the sum by `n`. 16-bit floats accumulate in float32 and round once; integers wrap.
// `out` may be one of the inputs. Fails with ERR_DTYPE for bool, and for Avg on integers.
void combine(DType dtype, ReduceOp op, void* out, const void* const* inputs, int n, size_t count);

}  // namespace ignis::dist
