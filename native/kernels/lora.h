// Per-element math of the LoRA family, shared by the CPU loops and the CUDA kernels.
#pragma once
#include "kernels/common.h"

namespace ignis {

// Inverted dropout's mask value for a uniform sample u in [0, 1): `scale` (1 / keep) when the
// element is kept (u < keep, keep = 1 - p), else 0.
template <typename T>
IGNIS_HD T dropout_mask_value(T u, T keep, T scale) {
  return u < keep ? scale : T(0);
}

}  // namespace ignis
