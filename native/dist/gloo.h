// A process group over Gloo's TCP transport: the collectives on CPU tensors.
//
// Each group owns a comm thread and runs its operations there, one at a time in the order they
// were issued (the order must be the same on every rank); a second thread waits for sends and
// receives. Issuing returns a Work at once; the
// comm thread finishes it and calls `on_done`. Every wait has a deadline: a missing or dead rank
// fails the operation with ERR_TIMEOUT or ERR_DIST naming it, and leaves the group unusable
// (its connections are closed so the other ranks fail fast too).
//
// Gloo makes the rendezvous (connectFullMesh over the TCP store) and carries send/recv; the
// collectives go over direct connections between the ranks (dist/mesh.h), driven by the comm
// thread itself: Gloo's TCP transport hands every message through its event-loop thread, which
// measured slower at every size on loopback (milliseconds per small message on a busy machine).
// The collectives are written on pairwise messages, not Gloo's built-in algorithms, to pick the
// algorithm per size, reduce 16-bit floats in float32, abort waits, and tag every message with
// its collective, step and size: a message can only be taken for the one expected, so shapes
// that differ across ranks fail with an error naming them instead of corrupting memory.
#pragma once
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
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
  bool debug = false;           // check each collective's op and shapes across ranks (store)
  std::string iface;            // network interface for Gloo; empty: the one that reaches the store
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

class GlooGroup {
 public:
  using OnDone = std::function<void(const std::shared_ptr<Work>&)>;

  // Starts the comm thread and queues the rendezvous (store, then a connection to every rank):
  // the first work, returned by connect_work().
  GlooGroup(GroupOptions options, OnDone on_done);
  // shutdown()
  ~GlooGroup();
  GlooGroup(const GlooGroup&) = delete;
  GlooGroup& operator=(const GlooGroup&) = delete;

  std::shared_ptr<Work> connect_work() const { return connect_work_; }
  int rank() const;
  int size() const;

  // The collectives. Each validates its arguments here (throwing ignis::Error), then queues.
  // A timeout of zero or less means the group's default.
  std::shared_ptr<Work> all_reduce(const TensorPtr& t, ReduceOp op, Millis timeout);
  // outputs[r] receives rank r's input; outputs[rank] may alias the input.
  std::shared_ptr<Work> all_gather(const TensorPtr& input, const std::vector<TensorPtr>& outputs, Millis timeout);
  // output = inputs[rank] reduced over the ranks.
  std::shared_ptr<Work> reduce_scatter(const std::vector<TensorPtr>& inputs, const TensorPtr& output, ReduceOp op,
                                       Millis timeout);
  std::shared_ptr<Work> broadcast(const TensorPtr& t, int root, Millis timeout);
  std::shared_ptr<Work> barrier(Millis timeout);
  // Point to point: posted in order with the collectives, but completed by a second thread, so
  // they do not hold up what follows (a ring of sends then receives works; use the received
  // tensor only once its work is done). Messages of one tag between two ranks arrive in the
  // order they were sent.
  std::shared_ptr<Work> send(const TensorPtr& t, int dst, int64_t tag, Millis timeout);
  std::shared_ptr<Work> recv(const TensorPtr& t, int src, int64_t tag, Millis timeout);

  // Fails queued work and aborts the running one (ERR_DIST), closes the connections and stops the
  // comm thread. Idempotent; the group is unusable afterwards.
  void shutdown();

  struct State;  // shared with the comm thread (gloo.cc)

 private:
  std::shared_ptr<State> state_;
  std::shared_ptr<Work> connect_work_;
};

}  // namespace ignis::dist
