// What every process group offers the N-API layer: its options, the Work its operations return,
// and the operations themselves. The Gloo group (dist/gloo.h) carries CPU tensors; the NCCL group
// (cuda/nccl.cc, in a build with the CUDA backend) carries CUDA tensors and registers itself here.
#pragma once
#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>
#include "core/tensor.h"
#include "dist/combine.h"
#include "dist/store.h"

namespace ignis::dist {

struct GroupOptions {
  int rank = 0;
  int size = 1;
  std::string store_host;
  int store_port = 0;
  std::string token;
  std::string prefix;           // this group's keys in the store
  Millis timeout{300000};       // default for every operation
  bool debug = false;           // Gloo: check each collective's op and shapes across ranks (store)
  std::string iface;            // Gloo: network interface; empty: the one that reaches the store
  int device = 0;               // NCCL: the CUDA device of this rank
  std::string peers_prefix;     // NCCL: the Gloo group's keys, which tell the ranks that are gone
};

// The outcome of one operation.
class Work {
 public:
  explicit Work(uint64_t id) : id(id) {}
  const uint64_t id;
  // Blocks until the operation finished (it always does: every wait inside has a deadline).
  void wait();
  // nullptr after success, else the error code (message() tells more). Valid once done.
  const char* code() const { return code_; }
  const std::string& message() const { return message_; }
  void finish(const char* code, std::string message);
  // Set by whoever waits for the work, so that its completion need not be reported (a loop of
  // synchronous waits must not queue up one report per operation).
  std::atomic<bool> claimed{false};

 private:
  std::mutex m_;
  std::condition_variable cv_;
  bool done_ = false;
  const char* code_ = nullptr;
  std::string message_;
};

// Called (on a group's own thread) when a work finished.
using OnDone = std::function<void(const std::shared_ptr<Work>&)>;

class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;
  // The rendezvous, started by the constructor: the first work.
  virtual std::shared_ptr<Work> connect_work() const = 0;
  // The collectives. Each validates its arguments (throwing ignis::Error), then queues. A timeout
  // of zero or less means the group's default.
  virtual std::shared_ptr<Work> all_reduce(const TensorPtr& t, ReduceOp op, Millis timeout) = 0;
  // outputs[r] receives rank r's input; outputs[rank] may alias the input.
  virtual std::shared_ptr<Work> all_gather(const TensorPtr& input, const std::vector<TensorPtr>& outputs,
                                           Millis timeout) = 0;
  // output = inputs[rank] reduced over the ranks.
  virtual std::shared_ptr<Work> reduce_scatter(const std::vector<TensorPtr>& inputs, const TensorPtr& output,
                                               ReduceOp op, Millis timeout) = 0;
  virtual std::shared_ptr<Work> broadcast(const TensorPtr& t, int root, Millis timeout) = 0;
  virtual std::shared_ptr<Work> barrier(Millis timeout) = 0;
  virtual std::shared_ptr<Work> send(const TensorPtr& t, int dst, int64_t tag, Millis timeout) = 0;
  virtual std::shared_ptr<Work> recv(const TensorPtr& t, int src, int64_t tag, Millis timeout) = 0;
  // Makes the work of the calling thread's current stream wait for `work` without blocking the
  // host; false when the group cannot (its works run on the host: the caller waits for `work`).
  // True only while `work` is still running: its outcome is then reported when it finishes.
  virtual bool order_after(const std::shared_ptr<Work>&) { return false; }
  // Fails queued work and aborts the running one (ERR_DIST); idempotent; unusable afterwards.
  virtual void shutdown() = 0;
};

// The NCCL process group's maker, registered by the CUDA backend when it is built in.
class NcclBackend {
 public:
  virtual ~NcclBackend() = default;
  // NCCL's version ("2.27.3"); ERR_DEVICE saying why when CUDA or NCCL cannot be used.
  virtual std::string version() = 0;
  // Starts the rendezvous (rank 0 publishes NCCL's unique id in the store) and the communicator's
  // creation on options.device; ERR_DEVICE when CUDA, the device or NCCL is missing.
  virtual std::unique_ptr<ProcessGroup> create(GroupOptions options, OnDone on_done) = 0;
};

// The registered NCCL backend, or null in a build without CUDA.
NcclBackend* nccl_backend();
void register_nccl_backend(NcclBackend* backend);

}  // namespace ignis::dist
