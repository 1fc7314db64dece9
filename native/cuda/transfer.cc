#include "cuda/transfer.h"

#include <cstring>
#include <mutex>
#include "cuda/graph.h"
#include "cuda/runtime.h"

namespace ignis::cuda {
namespace {

constexpr size_t kBufferBytes = size_t(8) << 20;
constexpr int kBuffers = 4;

// The staging buffers of one device, each with an event marking the end of the last copy that
// used it. Callers hold the mutex for a whole transfer.
struct Staging {
  std::mutex mutex;
  bool ready = false;
  void* data[kBuffers] = {};
  cudaEvent_t done[kBuffers] = {};
  int next = 0;

  // Makes `device` current (its default stream is the null stream of the current device) and
  // the buffers ready.
  void init(int device) {
    use_device(device);
    if (ready) return;
    for (int i = 0; i < kBuffers; i++) {
      if (!data[i]) check(cudaHostAlloc(&data[i], kBufferBytes, cudaHostAllocDefault), "cudaHostAlloc");
      if (!done[i]) check(cudaEventCreateWithFlags(&done[i], cudaEventDisableTiming), "cudaEventCreateWithFlags");
    }
    ready = true;
  }

  // The next buffer, once the copy that used it last is done.
  int acquire() {
    int i = next;
    next = (next + 1) % kBuffers;
    check(cudaEventSynchronize(done[i]), "cudaEventSynchronize");
    return i;
  }
};

Staging g_staging[kMaxDevices];

void to_device(char* dst, const char* src, size_t nbytes, int device) {
  Staging& s = g_staging[device];
  std::lock_guard<std::mutex> lock(s.mutex);
  s.init(device);
  cudaStream_t stream = current_stream(device);
  for (size_t at = 0; at < nbytes; at += kBufferBytes) {
    size_t n = nbytes - at < kBufferBytes ? nbytes - at : kBufferBytes;
    int b = s.acquire();
    std::memcpy(s.data[b], src + at, n);
    check(cudaMemcpyAsync(dst + at, s.data[b], n, cudaMemcpyHostToDevice, stream), "cudaMemcpyAsync (host to device)");
    check(cudaEventRecord(s.done[b], stream), "cudaEventRecord");
  }
}

void to_host(char* dst, const char* src, size_t nbytes, int device) {
  Staging& s = g_staging[device];
  std::lock_guard<std::mutex> lock(s.mutex);
  s.init(device);
  cudaStream_t stream = current_stream(device);
  // Piece k is copied out of its buffer while piece k + 1 is on its way.
  int pending = -1;
  size_t pending_at = 0, pending_n = 0;
  auto drain = [&] {
    check(cudaEventSynchronize(s.done[pending]), "cudaEventSynchronize");
    std::memcpy(dst + pending_at, s.data[pending], pending_n);
  };
  for (size_t at = 0; at < nbytes; at += kBufferBytes) {
    size_t n = nbytes - at < kBufferBytes ? nbytes - at : kBufferBytes;
    int b = s.acquire();
    check(cudaMemcpyAsync(s.data[b], src + at, n, cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync (device to host)");
    check(cudaEventRecord(s.done[b], stream), "cudaEventRecord");
    if (pending >= 0) drain();
    pending = b;
    pending_at = at;
    pending_n = n;
  }
  if (pending >= 0) drain();
}

// Between two devices, on the destination's current stream once the source's current stream
// has reached this point; synchronous, so that the source may be freed on its return.
void between_devices(char* dst, int dst_device, const char* src, int src_device, size_t nbytes) {
  use_device(src_device);
  cudaEvent_t ready;
  check(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming), "cudaEventCreateWithFlags");
  cudaError_t status = cudaEventRecord(ready, current_stream(src_device));
  if (status == cudaSuccess) {
    use_device(dst_device);
    cudaStream_t stream = current_stream(dst_device);
    status = cudaStreamWaitEvent(stream, ready, 0);
    if (status == cudaSuccess) status = cudaMemcpyPeerAsync(dst, dst_device, src, src_device, nbytes, stream);
    if (status == cudaSuccess) status = cudaStreamSynchronize(stream);
  }
  cudaEventDestroy(ready);
  check(status, "cudaMemcpyPeerAsync");
}

}  // namespace

void transfer(const TensorPtr& dst, const TensorPtr& src) {
  const size_t nbytes = size_t(src->numel()) * src->element_size();
  for (const TensorPtr& t : {dst, src})
    if (!t->device().is_cpu()) require_not_capturing(t->device().index, "a copy between the host and a device (.data(), .item(), .to())");
  if (nbytes == 0) return;
  char* to = static_cast<char*>(dst->data());
  const char* from = static_cast<const char*>(src->data());
  if (src->device().is_cpu()) to_device(to, from, nbytes, dst->device().index);
  else if (dst->device().is_cpu()) to_host(to, from, nbytes, src->device().index);
  else between_devices(to, dst->device().index, from, src->device().index, nbytes);
}

}  // namespace ignis::cuda
