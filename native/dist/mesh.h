// Direct TCP connections between every pair of ranks, for the small messages of collectives.
//
// Gloo's TCP transport hands every message through its event-loop thread, and that thread spins
// (try-lock, level-triggered epoll) while the sending thread holds the connection's lock: on a
// busy machine a small collective then costs a scheduler tick or more. Here the comm thread does
// its own reads and writes with poll(): one wake-up per message, exact deadlines, and an abort
// that interrupts the wait. Each message carries a header (the collective's sequence number, a
// code for its kind and step, and its size), so a message can only be taken for the one expected,
// and ranks that issued different collectives get an error naming both instead of a timeout.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>
#include "dist/store.h"

namespace ignis::dist {

// A transfer that failed: a peer's connection broke or a wrong message came, or (timed_out) the
// deadline passed. The Gloo group turns it into ERR_DIST / ERR_TIMEOUT naming the missing ranks.
struct CommFailure : std::runtime_error {
  CommFailure(const std::string& message, bool timed_out) : std::runtime_error(message), timed_out(timed_out) {}
  bool timed_out;
};
// A peer sent another message than the one expected: the ranks issued different collectives.
struct Mismatch : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// The wait was interrupted: the group is being destroyed.
struct Aborted {};

// A message as both ends know it: they must agree on all three fields.
struct MessageId {
  uint64_t seq;   // the collective's sequence number
  uint64_t code;  // its kind and step
  uint64_t bytes;
};

class Mesh {
 public:
  using Clock = std::chrono::steady_clock;

  // One send or receive of an exchange.
  struct Transfer {
    int peer;
    bool send;
    MessageId id;
    char* data;  // bytes at id.bytes
    // Progress (set by exchange()).
    size_t done = 0;
  };

  // Listens on `host`, publishes the address under `prefix` in the store, and connects to every
  // other rank (each presents `token`). Throws StoreTimeout naming missing ranks, or ERR_DIST.
  Mesh(StoreClient& store, const std::string& prefix, int rank, int size, const std::string& host,
       const std::string& token, Clock::time_point deadline);
  ~Mesh();
  Mesh(const Mesh&) = delete;
  Mesh& operator=(const Mesh&) = delete;

  // Runs every transfer to completion, sends and receives interleaved as the sockets allow (so
  // two ranks sending each other large messages cannot deadlock); messages to or from one peer
  // go in list order. Throws CommFailure (peer gone, deadline passed), Mismatch (another message
  // than the expected one), or Aborted after interrupt().
  void exchange(std::vector<Transfer>& transfers, Clock::time_point deadline);

  // From any thread: makes the running and every later exchange() throw Aborted.
  void interrupt();
  // From any thread: shuts every connection down, so that peers waiting on this rank fail at once.
  void shut_down();

 private:
  int rank_, size_;
  std::vector<int> fds_;  // by peer rank; -1 for this rank
  int wake_[2] = {-1, -1};
  std::atomic<bool> interrupted_{false};
};

}  // namespace ignis::dist
