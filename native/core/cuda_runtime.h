// What the JS side asks of the CUDA runtime (ignis.cuda.*), behind an interface so that the
// N-API glue compiles in every build: the CUDA backend registers its implementation when it is
// built in; without it cuda_runtime() is null and ignis.cuda.isAvailable() is false.
#pragma once
#include <cstdint>
#include <string>
#include <vector>
#include "core/caching_allocator.h"

namespace ignis {

struct CudaDeviceProperties {
  std::string name;
  int64_t total_memory;  // bytes
  int major, minor;      // compute capability
  int multiprocessors;
};

// One run-time library (cuBLAS, cuBLASLt, NCCL) as the loader found it, or not.
struct CudaLibraryInfo {
  std::string name;     // "cublas"
  bool loaded;
  std::string path;     // the file opened
  std::string version;  // "13.0.2"
  std::string error;    // why it is not loaded, with every place looked
};

class CudaRuntime {
 public:
  virtual ~CudaRuntime() = default;

  // Why CUDA cannot be used here (no driver, no device), or "" when it can.
  virtual std::string unavailable_reason() = 0;
  virtual int device_count() = 0;  // 0 when unavailable
  // The calls below raise ERR_DEVICE when CUDA is unavailable or the device does not exist.
  virtual CudaDeviceProperties properties(int device) = 0;
  virtual void synchronize(int device) = 0;
  // CUDA runtime and driver versions, e.g. "13.0".
  virtual std::string runtime_version() = 0;
  virtual std::string driver_version() = 0;

  // Streams are numbered; each device's default stream has a number too. Streams live as long
  // as the process. Work of the ops runs on the current stream of its device.
  virtual int64_t create_stream(int device) = 0;
  virtual int64_t default_stream(int device) = 0;
  virtual int64_t current_stream(int device) = 0;
  virtual void set_current_stream(int64_t stream) = 0;
  virtual int stream_device(int64_t stream) = 0;
  virtual void stream_synchronize(int64_t stream) = 0;
  virtual bool stream_query(int64_t stream) = 0;  // true when all its work is done
  virtual void stream_wait_event(int64_t stream, void* event) = 0;

  // Events: opaque handles from create_event, freed by destroy_event.
  virtual void* create_event(int device, bool timing) = 0;
  virtual void destroy_event(void* event) noexcept = 0;
  virtual void record_event(void* event, int64_t stream) = 0;
  virtual void event_synchronize(void* event) = 0;
  virtual bool event_query(void* event) = 0;
  virtual double elapsed_ms(void* start, void* end) = 0;

  // The caching allocator of a device.
  virtual AllocatorStats memory_stats(int device) = 0;
  virtual void reset_peak_memory_stats(int device) = 0;
  virtual void empty_cache(int device) = 0;

  // Loads cuBLAS, cuBLASLt and NCCL if not yet tried, and says what was found.
  virtual std::vector<CudaLibraryInfo> libraries() = 0;

  // CUDA graphs (cuda/graph.h): graph_begin starts capturing the device's ops and returns the
  // graph; then exactly one of graph_end (instantiates it; ERR_CUDA when the capture failed) or
  // graph_abort (after an error in the captured code). graph_destroy frees a graph in any state.
  virtual void* graph_begin(int device) = 0;
  virtual void graph_end(void* graph) = 0;
  virtual void graph_abort(void* graph) noexcept = 0;
  // scalars[k]: the value of the graph's per-replay scalar k (cuda/graph.h) for this replay.
  virtual void graph_replay(void* graph, const std::vector<double>& scalars) = 0;
  virtual void graph_destroy(void* graph) noexcept = 0;
  // The out-of-range indices the graph's index scans met over its replays (waits for the device).
  virtual int64_t graph_index_errors(void* graph) = 0;
};

// The CUDA backend's runtime, or null in a build without it.
CudaRuntime* cuda_runtime();
void register_cuda_runtime(CudaRuntime* runtime);

// float32 matmuls on CUDA may use TF32 tensor cores ('high') or not ('highest', the default).
void set_float32_matmul_tf32(bool allow);
bool float32_matmul_tf32();

}  // namespace ignis
