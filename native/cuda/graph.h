// CUDA graphs: a training step captured once (stream capture on a side stream) and replayed.
// While a device captures, its ops run on the capture stream (they are recorded, not run), the
// tensors they allocate come from the graph's private pool of the caching allocator (kept
// until the graph is destroyed, so that replays find their memory), and anything that waits for
// the device or copies to or from the host raises ERR_CUDA naming the op.
#pragma once
#include <cstdint>
#include "cuda/runtime.h"

namespace ignis::cuda {

// Whether a graph is being captured on `device`.
bool capturing(int device);
// ERR_CUDA "<op> cannot be captured in a CUDA graph: ..." while `device` captures.
void require_not_capturing(int device, const char* op);
// While `device` captures: a device counter of the graph's replays (1 during the first replay,
// 2 during the second, ...), for kernels whose scalars change from step to step. Else nullptr.
const int64_t* replay_counter(int device);
// While `device` captures: the graph's device count of out-of-range indices met by its index
// scans (cuda/indexing.cu), summed over its replays. Else nullptr.
unsigned long long* index_error_counter(int device);
// The count above of a graph, read back (waits for the device).
int64_t graph_index_errors(void* graph);
// The allocator pool of `device`'s allocations now: the current stream's, or the private pool
// of the graph being captured.
uintptr_t allocation_pool(int device);

// The graph API behind CudaRuntime (core/cuda_runtime.h).
void* graph_begin(int device);
void graph_end(void* graph);
void graph_abort(void* graph) noexcept;
void graph_replay(void* graph);
void graph_destroy(void* graph) noexcept;

}  // namespace ignis::cuda
