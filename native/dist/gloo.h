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
#include <memory>
#include <vector>
#include "dist/process_group.h"

namespace ignis::dist {

class GlooGroup : public ProcessGroup {
 public:
  // Starts the comm thread and queues the rendezvous (store, then a connection to every rank):
  // the first work, returned by connect_work().
  GlooGroup(GroupOptions options, OnDone on_done);
  // shutdown()
  ~GlooGroup() override;
  GlooGroup(const GlooGroup&) = delete;
  GlooGroup& operator=(const GlooGroup&) = delete;

  std::shared_ptr<Work> connect_work() const override { return connect_work_; }
  int rank() const;
  int size() const;

  // The collectives. Each validates its arguments here (throwing ignis::Error), then queues.
  // A timeout of zero or less means the group's default.
  std::shared_ptr<Work> all_reduce(const TensorPtr& t, ReduceOp op, Millis timeout) override;
  // outputs[r] receives rank r's input; outputs[rank] may alias the input.
  std::shared_ptr<Work> all_gather(const TensorPtr& input, const std::vector<TensorPtr>& outputs, Millis timeout) override;
  // output = inputs[rank] reduced over the ranks.
  std::shared_ptr<Work> reduce_scatter(const std::vector<TensorPtr>& inputs, const TensorPtr& output, ReduceOp op,
                                       Millis timeout) override;
  std::shared_ptr<Work> broadcast(const TensorPtr& t, int root, Millis timeout) override;
  std::shared_ptr<Work> barrier(Millis timeout) override;
  // Point to point: posted in order with the collectives, but completed by a second thread, so
  // they do not hold up what follows (a ring of sends then receives works; use the received
  // tensor only once its work is done). Messages of one tag between two ranks arrive in the
  // order they were sent.
  std::shared_ptr<Work> send(const TensorPtr& t, int dst, int64_t tag, Millis timeout) override;
  std::shared_ptr<Work> recv(const TensorPtr& t, int src, int64_t tag, Millis timeout) override;

  // Fails queued work and aborts the running one (ERR_DIST), closes the connections and stops the
  // comm thread. Idempotent; the group is unusable afterwards.
  void shutdown() override;

  struct State;  // shared with the comm thread (gloo.cc)

 private:
  std::shared_ptr<State> state_;
  std::shared_ptr<Work> connect_work_;
};

}  // namespace ignis::dist
