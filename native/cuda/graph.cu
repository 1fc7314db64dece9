#include "cuda/graph.h"

#include <algorithm>
#include <atomic>
#include <string>
#include "core/creation.h"
#include "cuda/allocator.h"

namespace ignis::cuda {
namespace {

// What a replay reads that changes from one replay to the next, copied to the device before each.
struct ReplayInputs {
  uint64_t rng[2];  // the generator's seed and offset when the replay starts
  double scalars[kMaxGraphScalars];
};

struct Graph {
  int device;
  cudaStream_t stream = nullptr;    // the device's capture stream
  cudaStream_t previous = nullptr;  // the device's current stream before the capture
  uintptr_t pool = 0;               // the private pool of the caching allocator
  int64_t* replays = nullptr;       // device counter, incremented by the graph's first node
  unsigned long long* index_errors = nullptr;  // device count of bad indices met by the replays
  ReplayInputs* inputs = nullptr;   // on the device
  RngState rng_start{};             // the generator when the capture started
  uint64_t rng_blocks = 0;          // the Philox blocks the captured ops take at each replay
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  cudaGraphNode_t first = nullptr;  // begin_replay's node
};

// The graph each device is capturing, if any.
std::atomic<Graph*> g_capturing[kMaxDevices];
// Each device's side stream for captures, made at the first (never destroyed: cuBLAS keeps a
// workspace per stream).
cudaStream_t g_capture_streams[kMaxDevices];

// The graph's first node: counts the replay and stores its inputs where the captured kernels read
// them. The inputs are the node's arguments, set before each launch (cudaGraphExecKernelNodeSetParams
// applies to the launches after it and copies the arguments, so replays can be queued).
__global__ void begin_replay(int64_t* replays, ReplayInputs* inputs, ReplayInputs values) {
  ++*replays;
  *inputs = values;
}

// The node of begin_replay in a captured graph: its only root (everything captured follows it).
cudaGraphNode_t first_node(cudaGraph_t graph) {
  size_t count = 0;
  check(cudaGraphGetRootNodes(graph, nullptr, &count), "cudaGraphGetRootNodes");
  cudaGraphNode_t node = nullptr;
  cudaGraphNodeType type = cudaGraphNodeTypeEmpty;
  if (count == 1) {
    check(cudaGraphGetRootNodes(graph, &node, &count), "cudaGraphGetRootNodes");
    check(cudaGraphNodeGetType(node, &type), "cudaGraphNodeGetType");
  }
  if (count != 1 || type != cudaGraphNodeTypeKernel)
    fail(ERR_INTERNAL, "cuda.graph: the captured graph does not start with its replay node (", count, " root nodes)");
  return node;
}

// What the capture holds, given back: the device's stream restored, the capture ended.
void stop_capture(Graph* g) noexcept {
  if (g_capturing[g->device].load() != g) return;
  g_capturing[g->device].store(nullptr);
  exchange_current_stream(g->device, g->previous);
}

// The generator put back where the capture found it: the captured random ops drew nothing (the
// replays take their blocks), so that the first replay draws what the eager step would have
// drawn in place of the capture. Left alone, and false, when reseeded during the capture.
bool rewind_rng(const Graph* g) noexcept {
  const RngState rng = rng_state();
  const bool same_stream = rng.seed == g->rng_start.seed && rng.offset >= g->rng_start.offset;
  if (same_stream) set_rng_state(g->rng_start);
  return same_stream;
}

// Everything a graph owns, released (safe on a partly built one).
void release(Graph* g) noexcept {
  if (!try_use_device(g->device)) return;
  if (g->exec) cudaGraphExecDestroy(g->exec);
  if (g->graph) cudaGraphDestroy(g->graph);
  if (g->pool) allocator(g->device).release_private_pool(g->pool);
  if (g->replays) cudaFree(g->replays);  // waits for the replays queued
  if (g->index_errors) cudaFree(g->index_errors);
  if (g->inputs) cudaFree(g->inputs);
  cudaGetLastError();
  delete g;
}

// The graph `device` is capturing, or null (also for a device index out of range).
Graph* capturing_graph(int device) { return device >= 0 && device < kMaxDevices ? g_capturing[device].load() : nullptr; }

}  // namespace

bool capturing(int device) { return capturing_graph(device) != nullptr; }

void require_not_capturing(int device, const char* op) {
  if (capturing(device))
    fail(ERR_CUDA, op, " cannot be captured in a CUDA graph: it waits for the device or copies between host and device (cuda:",
         device, " is capturing; do it before or after ig.cuda.graph)");
}

const int64_t* replay_counter(int device) {
  Graph* g = capturing_graph(device);
  return g ? g->replays : nullptr;
}

CapturedRng captured_rng(int device) {
  Graph* g = capturing_graph(device);
  return g ? CapturedRng{g->inputs->rng, g->rng_start.offset} : CapturedRng{nullptr, 0};
}

const double* graph_scalar(int device, int slot) {
  Graph* g = capturing_graph(device);
  if (!g) fail(ERR_CUDA, "cuda.graph: a per-replay scalar outside a capture (cuda:", device, " is not capturing)");
  if (slot < 0 || slot >= kMaxGraphScalars)
    fail(ERR_CUDA, "cuda.graph: per-replay scalar ", slot, " out of range (a graph holds at most ", kMaxGraphScalars, ")");
  return g->inputs->scalars + slot;
}

unsigned long long* index_error_counter(int device) {
  Graph* g = capturing_graph(device);
  return g ? g->index_errors : nullptr;
}

int64_t graph_index_errors(void* handle) {
  Graph* g = static_cast<Graph*>(handle);
  require_not_capturing(g->device, "CudaGraph.indexErrors");
  use_device(g->device);
  unsigned long long count = 0;
  // after the replays queued on the current stream (where graph_replay launches them)
  cudaStream_t stream = current_stream(g->device);
  check(cudaMemcpyAsync(&count, g->index_errors, sizeof count, cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync");
  check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  return int64_t(count);
}

uintptr_t allocation_pool(int device) {
  Graph* g = g_capturing[device].load();
  return g ? g->pool : uintptr_t(current_stream(device));
}

void* graph_begin(int device) {
  require_device(Device{DeviceType::CUDA, device});
  use_device(device);
  if (capturing(device)) fail(ERR_CUDA, "cuda.graph: cuda:", device, " is already capturing a graph (captures do not nest)");
  Graph* g = new Graph{device};
  try {
    if (!g_capture_streams[device])
      check(cudaStreamCreateWithFlags(&g_capture_streams[device], cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
    g->stream = g_capture_streams[device];
    check(cudaMalloc(&g->replays, sizeof(int64_t)), "cudaMalloc");
    check(cudaMemset(g->replays, 0, sizeof(int64_t)), "cudaMemset");
    check(cudaMalloc(&g->index_errors, sizeof(unsigned long long)), "cudaMalloc");
    check(cudaMemset(g->index_errors, 0, sizeof(unsigned long long)), "cudaMemset");
    check(cudaMalloc(&g->inputs, sizeof(ReplayInputs)), "cudaMalloc");
    check(cudaMemset(g->inputs, 0, sizeof(ReplayInputs)), "cudaMemset");
    // the capture starts after the work queued so far on the current stream
    check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    g->pool = allocator(device).create_private_pool();
    // loads the kernel now (CUDA loads kernels lazily, at their first launch): this one is only
    // ever launched while capturing, when loading may be refused
    cudaFuncAttributes attributes;
    check(cudaFuncGetAttributes(&attributes, begin_replay), "cudaFuncGetAttributes");
    check(cudaStreamBeginCapture(g->stream, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
    begin_replay<<<1, 1, 0, g->stream>>>(g->replays, g->inputs, ReplayInputs{});
    check_launch("cuda.graph");
  } catch (...) {
    cudaGraph_t partial = nullptr;
    if (g->stream && cudaStreamEndCapture(g->stream, &partial) == cudaSuccess && partial) cudaGraphDestroy(partial);
    release(g);
    throw;
  }
  g->rng_start = rng_state();
  g->previous = exchange_current_stream(device, g->stream);
  g_capturing[device].store(g);
  return g;
}

void graph_end(void* handle) {
  Graph* g = static_cast<Graph*>(handle);
  stop_capture(g);
  g->rng_blocks = rng_state().offset - g->rng_start.offset;
  const bool reseeded = !rewind_rng(g);
  cudaError_t status = cudaStreamEndCapture(g->stream, &g->graph);
  if (status == cudaSuccess) status = cudaGraphInstantiate(&g->exec, g->graph, 0);
  if (status != cudaSuccess) {
    cudaGetLastError();
    fail(ERR_CUDA, "cuda.graph: the capture failed: ", cudaGetErrorString(status), " (", cudaGetErrorName(status),
         "); an op in the function cannot be captured");
  }
  g->first = first_node(g->graph);
  if (reseeded)
    fail(ERR_CUDA, "cuda.graph: the random generator was reseeded during the capture (the captured random ops would not "
         "know which state to draw from); seed before capturing");
}

void graph_abort(void* handle) noexcept {
  Graph* g = static_cast<Graph*>(handle);
  if (g_capturing[g->device].load() == g) rewind_rng(g);
  stop_capture(g);
  cudaGraph_t partial = nullptr;
  cudaStreamCaptureStatus state = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(g->stream, &state) == cudaSuccess && state != cudaStreamCaptureStatusNone &&
      cudaStreamEndCapture(g->stream, &partial) == cudaSuccess && partial)
    cudaGraphDestroy(partial);
  cudaGetLastError();
}

void graph_replay(void* handle, const std::vector<double>& scalars) {
  Graph* g = static_cast<Graph*>(handle);
  if (!g->exec) fail(ERR_CUDA, "cuda.graph: replay of a graph whose capture did not finish");
  require_not_capturing(g->device, "CudaGraph.replay");
  if (scalars.size() > size_t(kMaxGraphScalars))
    fail(ERR_CUDA, "CudaGraph.replay: ", scalars.size(), " per-replay scalars (at most ", kMaxGraphScalars, ")");
  use_device(g->device);
  ReplayInputs values{};
  const RngState rng = take_rng_blocks(g->rng_blocks);
  values.rng[0] = rng.seed;
  values.rng[1] = rng.offset;
  std::copy(scalars.begin(), scalars.end(), values.scalars);
  void* arguments[] = {&g->replays, &g->inputs, &values};
  // the node's launch as begin_replay was captured, with these arguments (not read back from the
  // node: cudaGraphKernelNodeGetParams may give a func the runtime does not take back)
  cudaKernelNodeParams params{};
  params.func = reinterpret_cast<void*>(begin_replay);
  params.gridDim = dim3(1);
  params.blockDim = dim3(1);
  params.sharedMemBytes = 0;
  params.kernelParams = arguments;
  params.extra = nullptr;
  check(cudaGraphExecKernelNodeSetParams(g->exec, g->first, &params), "cudaGraphExecKernelNodeSetParams");
  check(cudaGraphLaunch(g->exec, current_stream(g->device)), "cudaGraphLaunch");
}

void graph_destroy(void* handle) noexcept {
  Graph* g = static_cast<Graph*>(handle);
  stop_capture(g);
  release(g);
}

}  // namespace ignis::cuda
