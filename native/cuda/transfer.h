// Copies between host and device memory (DeviceBackend::transfer), through page-locked staging
// buffers so that they run as DMA on the current stream: a copy to the device returns as soon
// as its bytes are staged (the source may then change or go), a copy to the host once they
// have landed. Staging takes a few 8 MiB buffers per device, reused round robin; large copies
// go through them in pieces, the host-side memcpy of one piece overlapping the DMA of another.
#pragma once
#include "core/tensor.h"

namespace ignis::cuda {

// dst <- src: host to device, device to host, or between two devices; both contiguous, of one
// dtype and shape.
void transfer(const TensorPtr& dst, const TensorPtr& src);

}  // namespace ignis::cuda
