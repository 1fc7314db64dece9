// ignis.cuda: device queries, streams, events, the caching allocator's statistics and the matmul
// precision, through the CudaRuntime interface (absent in a build without the CUDA backend),
// and a caching allocator over a fake device for the CPU tests of its bookkeeping.
#include <mutex>
#include <unordered_set>
#include "core/cuda_runtime.h"
#include "napi/napi.h"

namespace ignis::napi {
namespace {

CudaRuntime& runtime() {
  CudaRuntime* r = cuda_runtime();
  if (!r) fail(ERR_DEVICE, "cuda: ", kNoCudaBackend);
  return *r;
}

int device_index_arg(const Napi::CallbackInfo& info, size_t i) {
  int64_t d = int_arg(info, i);
  if (d < 0 || d > 65535) fail(ERR_ARG, "cuda: device index ", d, " is out of range");
  return int(d);
}

// Native objects handed to JS as Externals, freed by their finalizer. Only pointers this table
// made are accepted back, so an External of another kind cannot be mistaken for one.
template <typename T>
class Externals {
 public:
  Napi::Value wrap(Napi::Env env, T* object) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      live_.insert(object);
    }
    return Napi::External<T>::New(env, object, [this](Napi::Env, T* p) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        live_.erase(p);
      }
      delete p;
    });
  }

  T* get(const Napi::CallbackInfo& info, size_t i, const char* what) {
    T* p = info[i].IsExternal() ? info[i].As<Napi::External<T>>().Data() : nullptr;
    std::lock_guard<std::mutex> lock(mutex_);
    if (!p || !live_.count(p)) fail(ERR_ARG, "argument ", i, " is not a ", what);
    return p;
  }

 private:
  std::mutex mutex_;
  std::unordered_set<T*> live_;
};

// --- device -------------------------------------------------------------------------------

// cudaStatus() -> { built, available, reason, deviceCount }
Napi::Value Status(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  CudaRuntime* r = cuda_runtime();
  std::string reason = r ? r->unavailable_reason() : kNoCudaBackend;
  o.Set("built", Napi::Boolean::New(env, r != nullptr));
  o.Set("available", Napi::Boolean::New(env, reason.empty()));
  o.Set("reason", Napi::String::New(env, reason));
  o.Set("deviceCount", Napi::Number::New(env, r ? r->device_count() : 0));
  return o;
}

// cudaDeviceProperties(device) -> { name, totalMemory, major, minor, multiProcessorCount }
Napi::Value DeviceProperties(const Napi::CallbackInfo& info) {
  CudaDeviceProperties p = runtime().properties(device_index_arg(info, 0));
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", Napi::String::New(env, p.name));
  o.Set("totalMemory", Napi::Number::New(env, double(p.total_memory)));
  o.Set("major", Napi::Number::New(env, p.major));
  o.Set("minor", Napi::Number::New(env, p.minor));
  o.Set("multiProcessorCount", Napi::Number::New(env, p.multiprocessors));
  return o;
}

// cudaSynchronize(device)
Napi::Value Synchronize(const Napi::CallbackInfo& info) {
  runtime().synchronize(device_index_arg(info, 0));
  return info.Env().Undefined();
}

// cudaVersions() -> { runtime, driver }
Napi::Value Versions(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("runtime", runtime().runtime_version());
  o.Set("driver", runtime().driver_version());
  return o;
}

// cudaLibraries() -> [{ name, loaded, path, version, error }]
Napi::Value Libraries(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<CudaLibraryInfo> libs = runtime().libraries();
  Napi::Array out = Napi::Array::New(env, libs.size());
  for (size_t k = 0; k < libs.size(); k++) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", libs[k].name);
    o.Set("loaded", Napi::Boolean::New(env, libs[k].loaded));
    o.Set("path", libs[k].path);
    o.Set("version", libs[k].version);
    o.Set("error", libs[k].error);
    out.Set(uint32_t(k), o);
  }
  return out;
}

// --- streams and events ------------------------------------------------------------------

Napi::Value CreateStream(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), double(runtime().create_stream(device_index_arg(info, 0))));
}
Napi::Value DefaultStream(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), double(runtime().default_stream(device_index_arg(info, 0))));
}
Napi::Value CurrentStream(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), double(runtime().current_stream(device_index_arg(info, 0))));
}
Napi::Value SetStream(const Napi::CallbackInfo& info) {
  runtime().set_current_stream(int_arg(info, 0));
  return info.Env().Undefined();
}
Napi::Value StreamDevice(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), runtime().stream_device(int_arg(info, 0)));
}
Napi::Value StreamSynchronize(const Napi::CallbackInfo& info) {
  runtime().stream_synchronize(int_arg(info, 0));
  return info.Env().Undefined();
}
Napi::Value StreamQuery(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), runtime().stream_query(int_arg(info, 0)));
}

// An event owned by its JS External.
struct EventBox {
  void* event;
  ~EventBox() {
    if (CudaRuntime* r = cuda_runtime()) r->destroy_event(event);
  }
};
Externals<EventBox> g_events;

EventBox* event_arg(const Napi::CallbackInfo& info, size_t i) { return g_events.get(info, i, "CUDA event"); }

// cudaCreateEvent(device, timing) -> External
Napi::Value CreateEvent(const Napi::CallbackInfo& info) {
  void* event = runtime().create_event(device_index_arg(info, 0), bool_arg(info, 1));
  return g_events.wrap(info.Env(), new EventBox{event});
}
Napi::Value StreamWaitEvent(const Napi::CallbackInfo& info) {
  runtime().stream_wait_event(int_arg(info, 0), event_arg(info, 1)->event);
  return info.Env().Undefined();
}
Napi::Value EventRecord(const Napi::CallbackInfo& info) {
  runtime().record_event(event_arg(info, 0)->event, int_arg(info, 1));
  return info.Env().Undefined();
}
Napi::Value EventSynchronize(const Napi::CallbackInfo& info) {
  runtime().event_synchronize(event_arg(info, 0)->event);
  return info.Env().Undefined();
}
Napi::Value EventQuery(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), runtime().event_query(event_arg(info, 0)->event));
}
// cudaEventElapsed(start, end) -> milliseconds
Napi::Value EventElapsed(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), runtime().elapsed_ms(event_arg(info, 0)->event, event_arg(info, 1)->event));
}

// --- memory and matmul precision ------------------------------------------------------------

Napi::Object stats_value(Napi::Env env, const AllocatorStats& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("allocated", Napi::Number::New(env, double(s.allocated)));
  o.Set("reserved", Napi::Number::New(env, double(s.reserved)));
  o.Set("peakAllocated", Napi::Number::New(env, double(s.peak_allocated)));
  o.Set("peakReserved", Napi::Number::New(env, double(s.peak_reserved)));
  o.Set("activeBlocks", Napi::Number::New(env, double(s.active_blocks)));
  o.Set("segments", Napi::Number::New(env, double(s.segments)));
  o.Set("mallocs", Napi::Number::New(env, double(s.device_mallocs)));
  o.Set("frees", Napi::Number::New(env, double(s.device_frees)));
  o.Set("oomRetries", Napi::Number::New(env, double(s.oom_retries)));
  return o;
}

Napi::Value MemoryStats(const Napi::CallbackInfo& info) {
  return stats_value(info.Env(), runtime().memory_stats(device_index_arg(info, 0)));
}
Napi::Value ResetPeakMemoryStats(const Napi::CallbackInfo& info) {
  runtime().reset_peak_memory_stats(device_index_arg(info, 0));
  return info.Env().Undefined();
}
Napi::Value EmptyCache(const Napi::CallbackInfo& info) {
  runtime().empty_cache(device_index_arg(info, 0));
  return info.Env().Undefined();
}

// --- graphs ---------------------------------------------------------------------------------

// A graph owned by its JS External (freed by dispose or by the finalizer).
struct GraphBox {
  void* graph;
  ~GraphBox() {
    if (graph) destroy();
  }
  void destroy() {
    if (CudaRuntime* r = cuda_runtime()) r->graph_destroy(graph);
    graph = nullptr;
  }
};
Externals<GraphBox> g_graphs;

GraphBox* graph_arg(const Napi::CallbackInfo& info) {
  GraphBox* box = g_graphs.get(info, 0, "CUDA graph");
  if (!box->graph) fail(ERR_ARG, "cuda.graph: the graph was disposed");
  return box;
}

// cudaGraphBegin(device) -> External: the device's ops are captured from here on
Napi::Value GraphBegin(const Napi::CallbackInfo& info) {
  void* graph = runtime().graph_begin(device_index_arg(info, 0));
  return g_graphs.wrap(info.Env(), new GraphBox{graph});
}
// cudaGraphEnd(graph): ends the capture and instantiates the graph
Napi::Value GraphEnd(const Napi::CallbackInfo& info) {
  runtime().graph_end(graph_arg(info)->graph);
  return info.Env().Undefined();
}
// cudaGraphAbort(graph): ends a capture that failed, freeing the graph
Napi::Value GraphAbort(const Napi::CallbackInfo& info) {
  GraphBox* box = graph_arg(info);
  runtime().graph_abort(box->graph);
  box->destroy();
  return info.Env().Undefined();
}
// cudaGraphReplay(graph, scalars): scalars[k] is the value of per-replay scalar k
Napi::Value GraphReplay(const Napi::CallbackInfo& info) {
  if (!info[1].IsArray()) fail(ERR_ARG, "argument 1 must be an array of numbers");
  const Napi::Array list = info[1].As<Napi::Array>();
  std::vector<double> scalars(list.Length());
  for (uint32_t k = 0; k < list.Length(); k++) {
    const Napi::Value v = list[k];
    if (!v.IsNumber()) fail(ERR_ARG, "argument 1 must be an array of numbers");
    scalars[k] = v.As<Napi::Number>().DoubleValue();
  }
  runtime().graph_replay(graph_arg(info)->graph, scalars);
  return info.Env().Undefined();
}
// cudaGraphIndexErrors(graph) -> the out-of-range indices its replays met
Napi::Value GraphIndexErrors(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), double(runtime().graph_index_errors(graph_arg(info)->graph)));
}
Napi::Value GraphDispose(const Napi::CallbackInfo& info) {
  GraphBox* box = g_graphs.get(info, 0, "CUDA graph");
  if (box->graph) box->destroy();
  return info.Env().Undefined();
}

Napi::Value SetMatmulTf32(const Napi::CallbackInfo& info) {
  set_float32_matmul_tf32(bool_arg(info, 0));
  return info.Env().Undefined();
}
Napi::Value GetMatmulTf32(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), float32_matmul_tf32()); }

// --- the caching allocator over a fake device, for tests -------------------------------------

Externals<CachingAllocator> g_test_allocators;

CachingAllocator* test_allocator_arg(const Napi::CallbackInfo& info) {
  return g_test_allocators.get(info, 0, "test allocator");
}

// testAllocatorCreate(capacityBytes) -> External
Napi::Value TestAllocatorCreate(const Napi::CallbackInfo& info) {
  int64_t capacity = int_arg(info, 0);
  if (capacity < 0) fail(ERR_ARG, "testAllocatorCreate: capacity must be non-negative");
  auto* a = new CachingAllocator(fake_device_memory(size_t(capacity)), "fake:0");
  return g_test_allocators.wrap(info.Env(), a);
}
// testAllocatorAllocate(a, nbytes, stream) -> address (0 for 0 bytes)
Napi::Value TestAllocatorAllocate(const Napi::CallbackInfo& info) {
  CachingAllocator* a = test_allocator_arg(info);
  int64_t nbytes = int_arg(info, 1), stream = int_arg(info, 2);
  if (nbytes < 0 || stream < 0) fail(ERR_ARG, "testAllocatorAllocate: sizes and streams are non-negative");
  return Napi::Number::New(info.Env(), double(uintptr_t(a->allocate(size_t(nbytes), uintptr_t(stream)))));
}
// testAllocatorFree(a, address)
Napi::Value TestAllocatorFree(const Napi::CallbackInfo& info) {
  test_allocator_arg(info)->free(reinterpret_cast<void*>(uintptr_t(int_arg(info, 1))));
  return info.Env().Undefined();
}
Napi::Value TestAllocatorEmptyCache(const Napi::CallbackInfo& info) {
  test_allocator_arg(info)->empty_cache();
  return info.Env().Undefined();
}
// testAllocatorCreatePool(a) -> pool key (allocate from it as from a stream)
Napi::Value TestAllocatorCreatePool(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), double(test_allocator_arg(info)->create_private_pool()));
}
// testAllocatorReleasePool(a, pool)
Napi::Value TestAllocatorReleasePool(const Napi::CallbackInfo& info) {
  test_allocator_arg(info)->release_private_pool(uintptr_t(int_arg(info, 1)));
  return info.Env().Undefined();
}
Napi::Value TestAllocatorStats(const Napi::CallbackInfo& info) { return stats_value(info.Env(), test_allocator_arg(info)->stats()); }
// testAllocatorSegments(a) -> [{ address, size, stream, small, blocks: [{ address, size, allocated }] }]
Napi::Value TestAllocatorSegments(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<SegmentInfo> segments = test_allocator_arg(info)->segments();
  Napi::Array out = Napi::Array::New(env, segments.size());
  for (size_t i = 0; i < segments.size(); i++) {
    const SegmentInfo& s = segments[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("address", Napi::Number::New(env, double(s.address)));
    o.Set("size", Napi::Number::New(env, double(s.size)));
    o.Set("stream", Napi::Number::New(env, double(s.stream)));
    o.Set("small", Napi::Boolean::New(env, s.small));
    Napi::Array blocks = Napi::Array::New(env, s.blocks.size());
    for (size_t k = 0; k < s.blocks.size(); k++) {
      Napi::Object b = Napi::Object::New(env);
      b.Set("address", Napi::Number::New(env, double(s.blocks[k].address)));
      b.Set("size", Napi::Number::New(env, double(s.blocks[k].size)));
      b.Set("allocated", Napi::Boolean::New(env, s.blocks[k].allocated));
      blocks.Set(uint32_t(k), b);
    }
    o.Set("blocks", blocks);
    out.Set(uint32_t(i), o);
  }
  return out;
}

}  // namespace

void register_cuda(Napi::Env env, Napi::Object exports) {
  define(env, exports, "cudaStatus", Status);
  define(env, exports, "cudaDeviceProperties", DeviceProperties);
  define(env, exports, "cudaSynchronize", Synchronize);
  define(env, exports, "cudaVersions", Versions);
  define(env, exports, "cudaLibraries", Libraries);
  define(env, exports, "cudaCreateStream", CreateStream);
  define(env, exports, "cudaDefaultStream", DefaultStream);
  define(env, exports, "cudaCurrentStream", CurrentStream);
  define(env, exports, "cudaSetStream", SetStream);
  define(env, exports, "cudaStreamDevice", StreamDevice);
  define(env, exports, "cudaStreamSynchronize", StreamSynchronize);
  define(env, exports, "cudaStreamQuery", StreamQuery);
  define(env, exports, "cudaStreamWaitEvent", StreamWaitEvent);
  define(env, exports, "cudaCreateEvent", CreateEvent);
  define(env, exports, "cudaEventRecord", EventRecord);
  define(env, exports, "cudaEventSynchronize", EventSynchronize);
  define(env, exports, "cudaEventQuery", EventQuery);
  define(env, exports, "cudaEventElapsed", EventElapsed);
  define(env, exports, "cudaMemoryStats", MemoryStats);
  define(env, exports, "cudaResetPeakMemoryStats", ResetPeakMemoryStats);
  define(env, exports, "cudaEmptyCache", EmptyCache);
  define(env, exports, "cudaGraphBegin", GraphBegin);
  define(env, exports, "cudaGraphEnd", GraphEnd);
  define(env, exports, "cudaGraphAbort", GraphAbort);
  define(env, exports, "cudaGraphReplay", GraphReplay);
  define(env, exports, "cudaGraphIndexErrors", GraphIndexErrors);
  define(env, exports, "cudaGraphDispose", GraphDispose);
  define(env, exports, "setMatmulTf32", SetMatmulTf32);
  define(env, exports, "getMatmulTf32", GetMatmulTf32);
  define(env, exports, "testAllocatorCreate", TestAllocatorCreate);
  define(env, exports, "testAllocatorAllocate", TestAllocatorAllocate);
  define(env, exports, "testAllocatorFree", TestAllocatorFree);
  define(env, exports, "testAllocatorEmptyCache", TestAllocatorEmptyCache);
  define(env, exports, "testAllocatorCreatePool", TestAllocatorCreatePool);
  define(env, exports, "testAllocatorReleasePool", TestAllocatorReleasePool);
  define(env, exports, "testAllocatorStats", TestAllocatorStats);
  define(env, exports, "testAllocatorSegments", TestAllocatorSegments);
}

}  // namespace ignis::napi
