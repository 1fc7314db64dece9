#include "cuda/runtime.h"

#include <dlfcn.h>
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>
#include "core/cuda_runtime.h"
#include "cuda/allocator.h"
#include "cuda/graph.h"
#include "cuda/loader.h"

namespace ignis::cuda {
namespace {

std::string version_str(int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); }

std::string driver_cuda_version() {
  int v = 0;
  if (cudaDriverGetVersion(&v) != cudaSuccess || v == 0) return "";
  return version_str(v);
}

struct Probe {
  std::string reason;
  int count = 0;
};

Probe run_probe() {
  Probe p;
  // The runtime loads the driver's library itself; loading it first tells a missing driver apart.
  if (!dlopen("libcuda.so.1", RTLD_NOW | RTLD_GLOBAL)) {
    const char* why = dlerror();
    p.reason = std::string("no NVIDIA driver: libcuda.so.1 cannot be loaded (") + (why ? why : "not found") + ")";
    return p;
  }
  int count = 0;
  cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    cudaGetLastError();
    int runtime = 0;
    cudaRuntimeGetVersion(&runtime);
    if (status == cudaErrorNoDevice) {
      const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
      p.reason = std::string("no CUDA device found") +
                 (visible ? std::string(" (CUDA_VISIBLE_DEVICES is \"") + visible + "\")" : std::string());
    } else if (status == cudaErrorInsufficientDriver) {
      std::string driver = driver_cuda_version();
      p.reason = "the NVIDIA driver is too old for this build's CUDA runtime " + version_str(runtime) +
                 (driver.empty() ? std::string() : " (the driver supports CUDA " + driver + ")");
    } else {
      p.reason = std::string("cudaGetDeviceCount failed: ") + cudaGetErrorString(status) + " (" + cudaGetErrorName(status) + ")";
    }
    return p;
  }
  if (count == 0) p.reason = "no CUDA device found";
  p.count = count < kMaxDevices ? count : kMaxDevices;
  return p;
}

const Probe& probe() {
  static const Probe p = run_probe();
  return p;
}

// The device this thread last made current through use_device (-1: not yet).
thread_local int t_device = -1;

// Streams by number: each device's default stream gets one the first time it is asked for, and
// every created stream one more. Streams are never destroyed, so a number stays valid.
struct StreamEntry {
  int device;
  cudaStream_t stream;
};
std::mutex g_streams_mutex;
std::vector<StreamEntry> g_streams;
int64_t g_default_ids[kMaxDevices];
bool g_defaults_made[kMaxDevices];
// The current stream per device: the handle (read by every kernel launch) and its number.
std::atomic<cudaStream_t> g_current[kMaxDevices];
std::atomic<int64_t> g_current_ids[kMaxDevices];

int64_t default_id_locked(int device) {
  if (!g_defaults_made[device]) {
    g_default_ids[device] = int64_t(g_streams.size());
    g_streams.push_back({device, nullptr});
    g_defaults_made[device] = true;
  }
  return g_default_ids[device];
}

StreamEntry stream_entry(int64_t id) {
  std::lock_guard<std::mutex> lock(g_streams_mutex);
  if (id < 0 || id >= int64_t(g_streams.size())) fail(ERR_ARG, "cuda: ", id, " is not a stream");
  return g_streams[size_t(id)];
}

}  // namespace

void check(cudaError_t status, const char* call) {
  if (status == cudaSuccess) return;
  cudaGetLastError();
  fail(status == cudaErrorMemoryAllocation ? ERR_OOM : ERR_CUDA, call, ": ", cudaGetErrorString(status), " (",
       cudaGetErrorName(status), ")");
}

void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

const std::string& unavailable_reason() { return probe().reason; }

int device_count() { return probe().count; }

void require_device(Device device) {
  const Probe& p = probe();
  if (!p.reason.empty()) fail(ERR_DEVICE, device.str(), " is not available: ", p.reason);
  if (device.index < 0 || device.index >= p.count)
    fail(ERR_DEVICE, device.str(), " does not exist: this machine has ", p.count, " CUDA device", p.count == 1 ? "" : "s");
}

void use_device(int device) {
  if (t_device == device) return;
  check(cudaSetDevice(device), "cudaSetDevice");
  t_device = device;
}

bool try_use_device(int device) noexcept {
  if (t_device == device) return true;
  if (cudaSetDevice(device) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  t_device = device;
  return true;
}

cudaStream_t current_stream(int device) { return g_current[device].load(std::memory_order_acquire); }

cudaStream_t exchange_current_stream(int device, cudaStream_t stream) { return g_current[device].exchange(stream); }

namespace {

int checked_device(int device) {
  require_device(Device{DeviceType::CUDA, device});
  return device;
}

class Runtime : public CudaRuntime {
 public:
  std::string unavailable_reason() override { return cuda::unavailable_reason(); }
  int device_count() override { return cuda::device_count(); }

  CudaDeviceProperties properties(int device) override {
    cudaDeviceProp p;
    check(cudaGetDeviceProperties(&p, checked_device(device)), "cudaGetDeviceProperties");
    return {p.name, int64_t(p.totalGlobalMem), p.major, p.minor, p.multiProcessorCount};
  }

  void synchronize(int device) override {
    require_not_capturing(checked_device(device), "cuda.synchronize");
    use_device(device);
    check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  }

  std::string runtime_version() override {
    int v = 0;
    check(cudaRuntimeGetVersion(&v), "cudaRuntimeGetVersion");
    return version_str(v);
  }

  std::string driver_version() override { return driver_cuda_version(); }

  int64_t create_stream(int device) override {
    use_device(checked_device(device));
    cudaStream_t s;
    // Blocking: work on it also waits for the default stream's earlier work (and the other way),
    // so a tensor made or copied on the default stream is ready when another stream reads it.
    check(cudaStreamCreateWithFlags(&s, cudaStreamDefault), "cudaStreamCreateWithFlags");
    std::lock_guard<std::mutex> lock(g_streams_mutex);
    g_streams.push_back({device, s});
    return int64_t(g_streams.size()) - 1;
  }

  int64_t default_stream(int device) override {
    checked_device(device);
    std::lock_guard<std::mutex> lock(g_streams_mutex);
    return default_id_locked(device);
  }

  int64_t current_stream(int device) override {
    checked_device(device);
    std::lock_guard<std::mutex> lock(g_streams_mutex);
    // The current stream is the default one until set_current_stream names another.
    return g_current[device].load() ? g_current_ids[device].load() : default_id_locked(device);
  }

  void set_current_stream(int64_t id) override {
    StreamEntry e = stream_entry(id);
    g_current_ids[e.device].store(id);
    g_current[e.device].store(e.stream, std::memory_order_release);
  }

  int stream_device(int64_t id) override { return stream_entry(id).device; }

  void stream_synchronize(int64_t id) override {
    StreamEntry e = stream_entry(id);
    require_not_capturing(e.device, "Stream.synchronize");
    use_device(e.device);
    check(cudaStreamSynchronize(e.stream), "cudaStreamSynchronize");
  }

  bool stream_query(int64_t id) override {
    StreamEntry e = stream_entry(id);
    use_device(e.device);
    cudaError_t status = cudaStreamQuery(e.stream);
    if (status == cudaErrorNotReady) return false;
    check(status, "cudaStreamQuery");
    return true;
  }

  void stream_wait_event(int64_t id, void* event) override {
    StreamEntry e = stream_entry(id);
    use_device(e.device);
    check(cudaStreamWaitEvent(e.stream, static_cast<cudaEvent_t>(event), 0), "cudaStreamWaitEvent");
  }

  void* create_event(int device, bool timing) override {
    use_device(checked_device(device));
    cudaEvent_t event;
    check(cudaEventCreateWithFlags(&event, timing ? cudaEventDefault : cudaEventDisableTiming), "cudaEventCreateWithFlags");
    return event;
  }

  void destroy_event(void* event) noexcept override { cudaEventDestroy(static_cast<cudaEvent_t>(event)); }

  void record_event(void* event, int64_t id) override {
    StreamEntry e = stream_entry(id);
    use_device(e.device);
    check(cudaEventRecord(static_cast<cudaEvent_t>(event), e.stream), "cudaEventRecord");
  }

  void event_synchronize(void* event) override {
    for (int d = 0; d < cuda::device_count(); d++) require_not_capturing(d, "Event.synchronize");
    check(cudaEventSynchronize(static_cast<cudaEvent_t>(event)), "cudaEventSynchronize");
  }

  bool event_query(void* event) override {
    cudaError_t status = cudaEventQuery(static_cast<cudaEvent_t>(event));
    if (status == cudaErrorNotReady) return false;
    check(status, "cudaEventQuery");
    return true;
  }

  double elapsed_ms(void* start, void* end) override {
    float ms = 0;
    check(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start), static_cast<cudaEvent_t>(end)), "cudaEventElapsedTime");
    return ms;
  }

  AllocatorStats memory_stats(int device) override { return allocator(checked_device(device)).stats(); }
  void reset_peak_memory_stats(int device) override { allocator(checked_device(device)).reset_peak(); }
  void empty_cache(int device) override {
    // giving memory back waits for the device
    require_not_capturing(checked_device(device), "cuda.emptyCache");
    allocator(device).empty_cache();
  }

  std::vector<CudaLibraryInfo> libraries() override { return library_report(); }

  void* graph_begin(int device) override { return cuda::graph_begin(checked_device(device)); }
  void graph_end(void* graph) override { cuda::graph_end(graph); }
  void graph_abort(void* graph) noexcept override { cuda::graph_abort(graph); }
  void graph_replay(void* graph, const std::vector<double>& scalars) override { cuda::graph_replay(graph, scalars); }
  void graph_destroy(void* graph) noexcept override { cuda::graph_destroy(graph); }
  int64_t graph_index_errors(void* graph) override { return cuda::graph_index_errors(graph); }
};

Runtime g_runtime;
[[maybe_unused]] const bool g_registered = (register_cuda_runtime(&g_runtime), true);

}  // namespace
}  // namespace ignis::cuda
