// CUDA graphs: a training step captured once (stream capture on a side stream) and replayed.
// While a device captures, its ops run on the capture stream (they are recorded, not run), the
// tensors they allocate come from the graph's private pool of the caching allocator (kept
// until the graph is destroyed, so that replays find their memory), and anything that waits for
// the device or copies to or from the host raises ERR_CUDA naming the op.
#pragma once
#include <cstdint>
#include <vector>
#include "cuda/runtime.h"

namespace ignis::cuda {

// Whether a graph is being captured on `device`.
bool capturing(int device);
// ERR_CUDA "<op> cannot be captured in a CUDA graph: ..." while `device` captures.
void require_not_capturing(int device, const char* op);
// While `device` captures: a device counter of the graph's replays (1 during the first replay,
// 2 during the second, ...), for kernels whose scalars change from step to step. Else nullptr.
const int64_t* replay_counter(int device);
// While `device` captures, random ops draw from the generator as it is at each replay: `state`
// points to the graph's device copy of {seed, offset}, stored by the graph's first node from the
// global generator as it is when the replay is launched (which the launch then advances by the
// blocks the capture took, as the eager ops would), and a captured op that took its blocks at generator offset o draws from the state's
// offset + (o - start). Each replay thus draws fresh numbers, the same as the eager step would
// from the same generator state. The capture itself leaves the generator as it found it (its ops
// draw nothing). Else {nullptr, 0}.
struct CapturedRng {
  const uint64_t* state;
  uint64_t start;
};
CapturedRng captured_rng(int device);
// The most per-replay scalars a graph holds.
constexpr int kMaxGraphScalars = 64;
// While `device` captures: the device address of the graph's scalar `slot` (< kMaxGraphScalars),
// stored by the graph's first node with the value graph_replay is given for it (per-step values such
// as a scheduled learning rate). ERR_CUDA when not capturing or out of range.
const double* graph_scalar(int device, int slot);
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
// `scalars[k]` goes to scalar slot k for this replay.
void graph_replay(void* graph, const std::vector<double>& scalars);
void graph_destroy(void* graph) noexcept;

}  // namespace ignis::cuda
