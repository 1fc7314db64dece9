#include "dist/gloo.h"

#include <gloo/common/logging.h>
#include <gloo/context.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/prefix_store.h>
#include <gloo/rendezvous/store.h>
#include <gloo/transport/tcp/device.h>
#include <gloo/transport/unbound_buffer.h>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <mutex>
#include <thread>
#include <pthread.h>
#include "cpu/copy.h"
#include "dist/mesh.h"

namespace ignis::dist {
namespace {

using Clock = std::chrono::steady_clock;
using gloo::transport::UnboundBuffer;
using BufferPtr = std::unique_ptr<UnboundBuffer>;

// Up to this size an allreduce sends every rank's whole buffer to every other rank; above, it
// reduce-scatters then all-gathers.
size_t direct_all_reduce_limit(int n) { return n == 2 ? (1u << 20) : (256u << 10); }
// From this size a broadcast among more than 2 ranks scatters pieces, then gathers them.
constexpr size_t kScatterBroadcastBytes = 1u << 20;
// Segments of the large reductions, one per round: small enough to reduce while in cache.
constexpr size_t kRoundBytes = 256u << 10;
// How often (at most) a rank posts the number of the collective it reached to the store.
constexpr Millis kReportInterval{20};

// Message kinds: part of every message's header (direct connections) or slot (send/recv).
enum Kind : uint64_t { kScatter = 1, kGather, kBroadcast, kBarrier, kPointToPoint };

uint64_t mix(uint64_t h, uint64_t v) {  // splitmix64 over h and v
  uint64_t z = h ^ (v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2));
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

std::string ranks_str(const std::vector<int>& ranks) {
  std::string s = ranks.size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < ranks.size(); i++) s += (i ? ", " : "") + std::to_string(ranks[i]);
  return s;
}

// Rounded up, so that a wait for this long ends at or after the deadline.
Millis ms_until(Clock::time_point deadline) {
  return std::max(Millis(0), std::chrono::ceil<Millis>(deadline - Clock::now()));
}

// Gloo's store interface over ignis's TCP store. Gloo passes its own 30 s default to wait():
// the group's timeout applies instead.
class StoreAdapter : public gloo::rendezvous::Store {
 public:
  StoreAdapter(StoreClient& client, Millis timeout) : client_(client), timeout_(timeout) {}
  void set(const std::string& key, const std::vector<char>& data) override {
    client_.set(key, std::string(data.begin(), data.end()));
  }
  std::vector<char> get(const std::string& key) override {
    std::string value = client_.get(key, timeout_);
    return std::vector<char>(value.begin(), value.end());
  }
  void wait(const std::vector<std::string>& keys) override { client_.wait(keys, timeout_); }
  void wait(const std::vector<std::string>& keys, const Millis&) override { client_.wait(keys, timeout_); }

 private:
  StoreClient& client_;
  Millis timeout_;
};

// The ranks at the end of keys such as "pg0/joined/3".
std::vector<int> ranks_of_keys(const std::vector<std::string>& keys) {
  std::vector<int> ranks;
  for (const auto& key : keys) ranks.push_back(std::atoi(key.substr(key.rfind('/') + 1).c_str()));
  return ranks;
}

// The first IPv4 (else IPv6) address of a network interface (GLOO_SOCKET_IFNAME).
std::string interface_address(const std::string& name) {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) fail(ERR_DIST, "init: getifaddrs: ", strerror(errno));
  std::string v4, v6;
  for (ifaddrs* a = list; a; a = a->ifa_next) {
    if (!a->ifa_addr || name != a->ifa_name) continue;
    char host[INET6_ADDRSTRLEN] = "";
    if (a->ifa_addr->sa_family == AF_INET && v4.empty()) {
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr, host, sizeof(host));
      v4 = host;
    } else if (a->ifa_addr->sa_family == AF_INET6 && v6.empty()) {
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(a->ifa_addr)->sin6_addr, host, sizeof(host));
      v6 = host;
    }
  }
  freeifaddrs(list);
  if (v4.empty() && v6.empty()) fail(ERR_ARG, "init: GLOO_SOCKET_IFNAME names no interface with an address: ", name);
  return v4.empty() ? v6 : v4;
}

std::string describe(const TensorPtr& t) { return std::string(dtype_name(t->dtype)) + " " + shape_str(t->shape); }

void check_cpu(const char* op, const TensorPtr& t) {
  if (!t->device().is_cpu())
    fail(ERR_DEVICE, op, ": the gloo backend handles CPU tensors, got a tensor on ", t->device().str());
}

void check_reducible(const char* op, const TensorPtr& t, ReduceOp r) {
  check_cpu(op, t);
  if (t->dtype == DType::Bool) fail(ERR_DTYPE, op, ": cannot reduce bool tensors");
  if (r == ReduceOp::Avg && !is_float(t->dtype))
    fail(ERR_DTYPE, op, ": avg needs a floating-point tensor, got ", dtype_name(t->dtype));
}

// A contiguous tensor to transfer through: t itself, or a new one that is filled from t before
// the transfer (copy_in) and copied back to t after it (copy_out).
struct Staged {
  TensorPtr user, buffer;
  bool copy_in = false, copy_out = false;
  Staged() = default;
  Staged(const TensorPtr& t, bool in, bool out)
      : user(t), buffer(t->is_contiguous() ? t : empty(t->shape, t->dtype, t->device())),
        copy_in(in && buffer != t), copy_out(out && buffer != t) {}
  char* data() const { return static_cast<char*>(buffer->data()); }
  size_t bytes() const { return size_t(buffer->numel()) * buffer->element_size(); }
};

void stage_in(const std::vector<Staged>& list) {
  for (const auto& s : list)
    if (s.copy_in) cpu::copy(s.buffer, s.user);
}
void stage_out(const std::vector<Staged>& list) {
  for (const auto& s : list)
    if (s.copy_out) cpu::copy(s.user, s.buffer);
}

}  // namespace

// --- the group's state, shared with its threads ---

class Exchange;

// An operation queued for the comm thread.
struct Task {
  std::shared_ptr<Work> work;
  std::string what;       // for messages: "allReduce #3 (float32 [4], sum)"
  std::string signature;  // what must agree across ranks: "allReduce(float32 [4], sum)"
  int64_t seq = -1;       // the collective's sequence number; -1 for the rendezvous and send/recv
  int peer = -1;          // send/recv: the other rank
  Millis timeout{0};
  std::function<void(GlooGroup::State&, Exchange&)> run;
};

// A send or receive the comm thread posted, whose completion the transfer thread waits for.
struct Transfer {
  std::shared_ptr<Work> work;
  std::string what;
  int peer = -1;
  Millis timeout{0};
  Clock::time_point deadline;
  BufferPtr buffer;
  Staged staged;
  bool receive = false;
};

// The outcome of an operation: no code on success.
struct Outcome {
  const char* code = nullptr;
  std::string message;
};

struct GlooGroup::State {
  GroupOptions opt;
  OnDone on_done;
  std::atomic<bool> aborted{false};

  // The comm thread runs the queued operations in order.
  std::thread comm;
  std::mutex queue_mutex;
  std::condition_variable queue_cv;
  std::deque<Task> queue;
  bool stopping = false;
  uint64_t next_work_id = 1;  // under queue_mutex
  int64_t next_seq = 0;       // under queue_mutex

  // Sends and receives do not hold up the comm thread (a ring of sends would deadlock): it posts
  // them and this thread waits for them, in order.
  std::thread transfers;
  std::mutex transfer_mutex;
  std::condition_variable transfer_cv;
  std::deque<Transfer> transfer_queue;
  bool transfers_stop = false;

  // The store client, used by the comm thread and the reporter (under store_mutex).
  std::mutex store_mutex;
  std::unique_ptr<StoreClient> store;
  // Progress reports: the comm thread notes each collective it starts; the reporter thread posts
  // the latest to the store every kReportInterval when it changed (posting each one would cost a
  // store wake-up per collective), so that a failing rank can tell who did not arrive.
  std::thread reporter;
  std::mutex report_mutex;
  std::condition_variable report_cv;
  bool report_stop = false;
  std::atomic<int64_t> started_seq{-1};

  // Set by the comm thread's rendezvous: Gloo (send/recv, posted by the comm thread, waited for
  // by the transfer thread) and the direct connections (the collectives, comm thread only).
  std::shared_ptr<gloo::transport::Device> device;
  std::shared_ptr<gloo::rendezvous::Context> context;
  std::shared_ptr<Mesh> mesh;  // set under wait_mutex (shutdown() interrupts it)
  std::unique_ptr<char[]> scratch;  // comm thread only
  size_t scratch_bytes = 0;

  std::mutex broken_mutex;
  std::string broken;  // why the group is unusable; empty while it works

  // The buffer the transfer thread waits on, so that shutdown() can interrupt the wait (also
  // guards `mesh`).
  std::mutex wait_mutex;
  UnboundBuffer* waiting = nullptr;

  std::string key(const std::string& what, int64_t a) const { return opt.prefix + "/" + what + "/" + std::to_string(a); }
  std::string key(const std::string& what, int64_t a, int64_t b) const { return key(what, a) + "/" + std::to_string(b); }

  char* scratch_space(size_t bytes) {
    if (bytes > scratch_bytes) {
      scratch.reset();
      scratch.reset(new char[bytes]);
      scratch_bytes = bytes;
    }
    return scratch.get();
  }

  void comm_loop();
  void transfer_loop();
  void report_loop();
  bool execute(Task& task);
  Outcome attempt(const std::string& what, int64_t seq, int peer, Millis timeout, const std::function<void()>& body);
  void connect(Clock::time_point deadline);
  void debug_check(const Task& task, Clock::time_point deadline);
  std::string diagnose(int64_t seq, int peer, bool timed_out);
  void fail_group(const std::string& why);
  void check_usable(const std::string& what);
  void wait(UnboundBuffer& b, bool receive, Clock::time_point deadline);
};

// Waits for one send or receive until `deadline`; shutdown() interrupts it (Aborted).
void GlooGroup::State::wait(UnboundBuffer& b, bool receive, Clock::time_point deadline) {
  {
    std::lock_guard<std::mutex> lock(wait_mutex);
    if (aborted) throw Aborted{};
    waiting = &b;
  }
  struct Clear {
    State& s;
    ~Clear() {
      std::lock_guard<std::mutex> lock(s.wait_mutex);
      s.waiting = nullptr;
    }
  } clear{*this};
  Millis left = ms_until(deadline);
  if (left.count() == 0) throw CommFailure("timed out", true);
  bool completed;
  try {
    completed = receive ? b.waitRecv(nullptr, left) : b.waitSend(nullptr, left);
  } catch (const std::exception& e) {
    bool timed_out = Clock::now() >= deadline;
    throw CommFailure(timed_out ? "timed out" : e.what(), timed_out);
  }
  if (!completed) throw Aborted{};
}

// One operation on the comm thread: its messages over the direct connections, with the
// operation's deadline; for send/recv, a Gloo buffer handed to the transfer thread.
class Exchange {
 public:
  Exchange(GlooGroup::State& s, Task& task, Clock::time_point deadline)
      : rank(s.opt.rank), size(s.opt.size), s_(s), task_(task), deadline_(deadline) {}

  const int rank, size;

  char* scratch(size_t bytes) { return s_.scratch_space(bytes); }
  // Position of peer p among the size - 1 others.
  size_t index(int p) const { return size_t(p < rank ? p : p - 1); }
  Clock::time_point deadline() const { return deadline_; }

  // A send or receive of one message over the direct connections.
  Mesh::Transfer message(int peer, bool send, Kind kind, uint64_t step, char* data, size_t bytes) const {
    return Mesh::Transfer{peer, send, MessageId{uint64_t(task_.seq), (uint64_t(kind) << 32) | step, bytes}, data};
  }
  void exchange(std::vector<Mesh::Transfer>& transfers) { s_.mesh->exchange(transfers, deadline_); }

  // Send/recv: a Gloo buffer, and the slot of a message of this tag and size (a message can only
  // meet a receive posted for the same size). The operation completes on the transfer thread,
  // once the buffer's send or receive is done.
  BufferPtr buffer(void* data, size_t bytes) { return s_.context->createUnboundBuffer(data, bytes); }
  static uint64_t slot(int64_t tag, size_t bytes) { return mix(mix(kPointToPoint, uint64_t(tag)), bytes); }
  void hand_off(BufferPtr buffer, const Staged& staged, bool receive) {
    Transfer t;
    t.work = task_.work;
    t.what = task_.what;
    t.peer = task_.peer;
    t.timeout = task_.timeout;
    t.deadline = deadline_;
    t.buffer = std::move(buffer);
    t.staged = staged;
    t.receive = receive;
    {
      std::lock_guard<std::mutex> lock(s_.transfer_mutex);
      s_.transfer_queue.push_back(std::move(t));
    }
    s_.transfer_cv.notify_one();
    handed_off = true;
  }
  bool handed_off = false;

 private:
  GlooGroup::State& s_;
  Task& task_;
  Clock::time_point deadline_;
};

namespace {

// `data` (count elements) cut into n blocks of equal size but the last: block p is rank p's.
struct Blocks {
  std::vector<char*> start;
  std::vector<size_t> counts;
  Blocks(char* data, size_t count, int n, size_t element_size) : start(n), counts(n) {
    size_t per_block = (count + size_t(n) - 1) / size_t(n);
    for (int p = 0; p < n; p++) {
      size_t first = std::min(count, size_t(p) * per_block);
      start[p] = data + first * element_size;
      counts[p] = std::min(per_block, count - first);
    }
  }
};

// Reduce-scatter in rounds over the direct connections: round k moves segment k of every block
// to its owner (block[p], counts[p] elements, the same on every rank), and this rank reduces
// segment k of its own block into `out` in rank order. With `gather` (allreduce: out is
// block[rank]), round k also sends the reduced segment k - 1 to every peer and receives theirs
// into their blocks, so the gather rides along with the scatter. With every block the whole
// buffer, it is the one-step allreduce: each rank reduces all of it.
void reduce_scatter_rounds(Exchange& x, DType dtype, ReduceOp op, const std::vector<char*>& block,
                           const std::vector<size_t>& counts, char* out, bool gather) {
  int n = x.size, me = x.rank;
  size_t es = dtype_size(dtype);
  size_t seg = std::max<size_t>(1, kRoundBytes / es);
  auto segments = [&](int p) { return (counts[p] + seg - 1) / seg; };
  auto seg_bytes = [&](int p, size_t k) { return std::min(seg, counts[p] - k * seg) * es; };
  size_t mine = counts[me] * es;
  char* scratch = x.scratch(size_t(n - 1) * mine);
  size_t rounds = 0;
  for (int p = 0; p < n; p++) rounds = std::max(rounds, segments(p));
  std::vector<const void*> inputs(n);
  std::vector<Mesh::Transfer> transfers;
  for (size_t k = 0; k < rounds + (gather ? 1 : 0); k++) {
    transfers.clear();
    for (int i = 1; i < n; i++) {
      int to = (me + i) % n, from = (me - i + n) % n;
      if (k < segments(to)) transfers.push_back(x.message(to, true, kScatter, k, block[to] + k * seg * es, seg_bytes(to, k)));
      if (k < segments(me))
        transfers.push_back(x.message(from, false, kScatter, k, scratch + x.index(from) * mine + k * seg * es, seg_bytes(me, k)));
      if (gather && k >= 1 && k - 1 < segments(me))
        transfers.push_back(x.message(to, true, kGather, k - 1, block[me] + (k - 1) * seg * es, seg_bytes(me, k - 1)));
      if (gather && k >= 1 && k - 1 < segments(from))
        transfers.push_back(x.message(from, false, kGather, k - 1, block[from] + (k - 1) * seg * es, seg_bytes(from, k - 1)));
    }
    x.exchange(transfers);
    if (k >= segments(me)) continue;
    for (int r = 0; r < n; r++) inputs[r] = (r == me ? block[me] : scratch + x.index(r) * mine) + k * seg * es;
    combine(dtype, op, out + k * seg * es, inputs.data(), n, seg_bytes(me, k) / es);
  }
}

// Small buffers: every rank sends its whole buffer to every other rank and reduces them all (one
// step per round). Larger ones: reduce-scatter, then gather (each rank sends 2 (n - 1) / n of the
// bytes instead of n - 1 times them).
void all_reduce_rounds(Exchange& x, DType dtype, ReduceOp op, char* data, size_t count) {
  int n = x.size;
  if (count * dtype_size(dtype) <= direct_all_reduce_limit(n)) {
    reduce_scatter_rounds(x, dtype, op, std::vector<char*>(n, data), std::vector<size_t>(n, count), data, false);
    return;
  }
  Blocks blocks(data, count, n, dtype_size(dtype));
  reduce_scatter_rounds(x, dtype, op, blocks.start, blocks.counts, blocks.start[x.rank], true);
}

void all_gather_direct(Exchange& x, const char* input, size_t bytes, const std::vector<char*>& outputs) {
  int n = x.size, me = x.rank;
  if (outputs[me] != input) std::memmove(outputs[me], input, bytes);
  std::vector<Mesh::Transfer> transfers;
  for (int i = 1; i < n; i++) {
    int to = (me + i) % n, from = (me - i + n) % n;
    transfers.push_back(x.message(to, true, kGather, 0, outputs[me], bytes));
    transfers.push_back(x.message(from, false, kGather, 0, outputs[from], bytes));
  }
  x.exchange(transfers);
}

// The root sends its whole buffer to every rank; for large buffers among more than 2 ranks it
// scatters one piece to each rank instead, and every rank then passes its piece to all the others
// (the root sends 2 (n - 1) / n of the bytes rather than n - 1 times them).
void broadcast_direct(Exchange& x, char* data, size_t bytes, int root) {
  int n = x.size, me = x.rank;
  std::vector<Mesh::Transfer> transfers;
  if (n == 2 || bytes < kScatterBroadcastBytes) {
    if (me == root) {
      for (int i = 1; i < n; i++) transfers.push_back(x.message((root + i) % n, true, kBroadcast, 0, data, bytes));
    } else {
      transfers.push_back(x.message(root, false, kBroadcast, 0, data, bytes));
    }
    x.exchange(transfers);
    return;
  }
  size_t piece = (bytes + size_t(n) - 1) / size_t(n);
  auto at = [&](int p) { return data + std::min(bytes, size_t(p) * piece); };
  auto length = [&](int p) { return std::min(bytes, size_t(p + 1) * piece) - std::min(bytes, size_t(p) * piece); };
  for (int i = 1; i < n; i++) {  // scatter: piece p to rank p
    int p = (root + i) % n;
    if (me == root) transfers.push_back(x.message(p, true, kBroadcast, 0, at(p), length(p)));
    if (me == p) transfers.push_back(x.message(root, false, kBroadcast, 0, at(p), length(p)));
  }
  x.exchange(transfers);
  transfers.clear();
  for (int i = 1; i < n; i++) {  // gather: every rank's piece to every other rank but the root
    int to = (me + i) % n, from = (me - i + n) % n;
    if (to != root) transfers.push_back(x.message(to, true, kBroadcast, 1, at(me), length(me)));
    if (me != root) transfers.push_back(x.message(from, false, kBroadcast, 1, at(from), length(from)));
  }
  x.exchange(transfers);
}

// Dissemination barrier: in round k each rank signals rank + 2^k and waits for rank - 2^k.
void barrier_rounds(Exchange& x) {
  uint64_t step = 0;
  for (int d = 1; d < x.size; d <<= 1, step++) {
    std::vector<Mesh::Transfer> transfers{x.message((x.rank + d) % x.size, true, kBarrier, step, nullptr, 0),
                                          x.message((x.rank - d + x.size) % x.size, false, kBarrier, step, nullptr, 0)};
    x.exchange(transfers);
  }
}

}  // namespace

// --- the threads ---

namespace {

// Takes the next item of `queue`, waiting for one; false once `stop` is set and none is left.
template <typename T>
bool take_next(std::mutex& mutex, std::condition_variable& cv, std::deque<T>& queue, const bool& stop, T& item) {
  std::unique_lock<std::mutex> lock(mutex);
  cv.wait(lock, [&] { return stop || !queue.empty(); });
  if (queue.empty()) return false;
  item = std::move(queue.front());
  queue.pop_front();
  return true;
}

}  // namespace

void GlooGroup::State::comm_loop() {
  for (Task task; take_next(queue_mutex, queue_cv, queue, stopping, task);) {
    bool finished = execute(task);
    std::shared_ptr<Work> work = task.work;
    task = Task();  // release the tensors before telling anyone
    if (finished && on_done) on_done(work);
  }
}

void GlooGroup::State::transfer_loop() {
  for (Transfer t; take_next(transfer_mutex, transfer_cv, transfer_queue, transfers_stop, t);) {
    Outcome outcome = attempt(t.what, -1, t.peer, t.timeout, [&] {
      wait(*t.buffer, t.receive, t.deadline);
      if (t.receive) stage_out({t.staged});
    });
    std::shared_ptr<Work> work = t.work;
    t = Transfer();
    work->finish(outcome.code, std::move(outcome.message));
    if (on_done) on_done(work);
  }
}

void GlooGroup::State::report_loop() {
  int64_t reported = -1;
  std::unique_lock<std::mutex> lock(report_mutex);
  while (!report_cv.wait_for(lock, kReportInterval, [&] { return report_stop; })) {
    int64_t seq = started_seq;
    if (seq == reported) continue;
    lock.unlock();
    {
      std::lock_guard<std::mutex> store_lock(store_mutex);
      try {
        if (store) store->post(key("progress", opt.rank), std::to_string(seq));
      } catch (const std::exception&) {
        // The store is gone: the transfers will tell.
      }
    }
    lock.lock();
    reported = seq;
  }
}

// --- running one operation ---

void GlooGroup::State::fail_group(const std::string& why) {
  {
    std::lock_guard<std::mutex> lock(broken_mutex);
    if (broken.empty()) broken = why;
  }
  // Peers waiting on this rank then fail at once instead of at their deadline.
  {
    std::lock_guard<std::mutex> lock(wait_mutex);
    if (mesh) mesh->shut_down();
  }
  try {
    if (context) context->closeConnections();
  } catch (...) {
  }
}

void GlooGroup::State::check_usable(const std::string& what) {
  if (aborted) fail(ERR_DIST, what, ": the process group was destroyed");
  std::lock_guard<std::mutex> lock(broken_mutex);
  if (!broken.empty())
    fail(ERR_DIST, what, ": the process group is unusable after an earlier failure (", broken,
         "); destroy() it and init() again");
}

// Runs `body`; a failure makes the group unusable and, for a transfer that broke or timed out,
// the message names the ranks that did not arrive.
Outcome GlooGroup::State::attempt(const std::string& what, int64_t seq, int peer, Millis timeout,
                                  const std::function<void()>& body) {
  Outcome o;
  try {
    body();
  } catch (const Aborted&) {
    o = {ERR_DIST, what + ": the process group was destroyed while this operation ran"};
  } catch (const Mismatch& e) {
    fail_group(what + " did not match the other ranks");
    o = {ERR_DIST, what + ": " + e.what()};
  } catch (const CommFailure& e) {
    fail_group(what + (e.timed_out ? " timed out" : " failed"));
    std::string cause = e.timed_out ? "timed out after " + std::to_string(timeout.count()) + " ms"
                                    : std::string("a connection failed (") + e.what() + ")";
    o = {e.timed_out ? ERR_TIMEOUT : ERR_DIST, what + ": " + cause + diagnose(seq, peer, e.timed_out)};
  } catch (const Error& e) {
    fail_group(e.what());
    o = {e.code(), e.what()};
  } catch (const std::bad_alloc&) {
    o = {ERR_OOM, what + ": out of host memory"};
    fail_group(o.message);
  } catch (const std::exception& e) {
    // Gloo's own exceptions: posting a transfer on a connection that already failed.
    fail_group(what + " failed");
    o = {ERR_DIST, what + ": a connection failed (" + e.what() + ")" + diagnose(seq, peer, false)};
  }
  return o;
}

// Returns false when the operation was handed to the transfer thread, which finishes it.
bool GlooGroup::State::execute(Task& task) {
  bool handed_off = false;
  Outcome outcome = attempt(task.what, task.seq, task.peer, task.timeout, [&] {
    check_usable(task.what);
    auto deadline = Clock::now() + task.timeout;
    if (task.seq >= 0) {
      started_seq = task.seq;
      if (opt.debug) debug_check(task, deadline);
    }
    Exchange exchange(*this, task, deadline);
    task.run(*this, exchange);
    handed_off = exchange.handed_off;
  });
  if (handed_off) return false;
  task.work->finish(outcome.code, std::move(outcome.message));
  return true;
}

// Which ranks did not arrive, from the store: those whose store connection closed (the process
// is gone) and those whose last reported collective is older than this one.
std::string GlooGroup::State::diagnose(int64_t seq, int peer, bool timed_out) {
  std::vector<int> others;
  for (int r = 0; r < opt.size; r++)
    if (r != opt.rank && (peer < 0 || r == peer)) others.push_back(r);
  std::vector<int> gone;
  std::string behind;
  std::this_thread::sleep_for(2 * kReportInterval);  // let the ranks waiting in it report it
  std::lock_guard<std::mutex> lock(store_mutex);
  if (!store) return "";
  try {
    // A dead peer's sockets all close at once: give the store a moment to notice its connection.
    auto until = Clock::now() + (timed_out ? Millis(0) : Millis(1000));
    for (;;) {
      for (int r : others)
        if (store->check({key("closed", r)})) gone.push_back(r);
      if (!gone.empty() || Clock::now() >= until) break;
      std::this_thread::sleep_for(Millis(20));
    }
    if (seq >= 0) {
      std::vector<int> late;
      std::string lasts;
      for (int r : others) {
        if (std::find(gone.begin(), gone.end(), r) != gone.end()) continue;
        std::string progress = key("progress", r);
        int64_t last = store->check({progress}) ? std::atoll(store->get(progress, Millis(0)).c_str()) : -1;
        if (last >= seq) continue;
        late.push_back(r);
        lasts += (lasts.empty() ? "" : ", ") + std::string("rank ") + std::to_string(r) + ": " +
                 (last < 0 ? "none" : "#" + std::to_string(last));
      }
      if (!late.empty()) behind = ranks_str(late) + " did not arrive (last collective started: " + lasts + ")";
    }
  } catch (const std::exception&) {
    return "; the store is unreachable too, so which ranks failed is unknown (the process serving it may be gone)";
  }
  std::string out;
  if (!gone.empty())
    out += "; " + ranks_str(gone) + (gone.size() == 1 ? " is" : " are") + " gone (process exited or lost its connection)";
  if (!behind.empty()) out += "; " + behind;
  if (out.empty() && seq >= 0)
    out = timed_out ? "; every rank reached this collective (shapes or ops that differ across ranks end this way too: "
                      "IGNIS_DIST_DEBUG=1 checks them)"
                    : "; every rank reached this collective: a peer failed (see its own error)";
  return out;
}

// IGNIS_DIST_DEBUG=1: every rank posts what it is about to run and compares with the others.
void GlooGroup::State::debug_check(const Task& task, Clock::time_point deadline) {
  std::lock_guard<std::mutex> lock(store_mutex);
  store->set(key("debug", task.seq, opt.rank), task.signature);
  std::vector<std::string> keys;
  for (int r = 0; r < opt.size; r++) keys.push_back(key("debug", task.seq, r));
  try {
    store->wait(keys, ms_until(deadline));
  } catch (const StoreTimeout& e) {
    fail(ERR_TIMEOUT, task.what, ": ", ranks_str(ranks_of_keys(e.missing)), " did not issue collective #", task.seq,
         " within ", task.timeout.count(), " ms");
  }
  std::string differ;
  for (int r = 0; r < opt.size; r++) {
    std::string theirs = r == opt.rank ? task.signature : store->get(keys[r], Millis(0));
    if (theirs != task.signature) differ += "; rank " + std::to_string(r) + " issued " + theirs;
  }
  if (task.seq >= 2) store->remove(key("debug", task.seq - 2, opt.rank));  // every rank has read it
  if (!differ.empty())
    fail(ERR_DIST, "collective #", task.seq, " differs across ranks: rank ", opt.rank, " issued ", task.signature, differ);
}

void GlooGroup::State::connect(Clock::time_point deadline) {
  std::string where = opt.store_host + ":" + std::to_string(opt.store_port);
  std::string who = " (this is rank " + std::to_string(opt.rank) + " of " + std::to_string(opt.size) + ")";
  std::lock_guard<std::mutex> lock(store_mutex);
  try {
    store = std::make_unique<StoreClient>(opt.store_host, opt.store_port, opt.token, opt.timeout, key("closed", opt.rank));
  } catch (const StoreTimeout&) {
    fail(ERR_TIMEOUT, "init: could not reach the store at ", where, " within ", opt.timeout.count(),
         " ms (MASTER_ADDR / MASTER_PORT: is rank 0 or the launcher running?)", who);
  } catch (const Error& e) {
    fail(e.code(), "init: ", e.what(), who);
  }
  // Every rank announces itself first, so that a timeout names all the missing ones.
  store->set(key("joined", opt.rank), "1");
  std::vector<std::string> joined;
  for (int r = 0; r < opt.size; r++) joined.push_back(key("joined", r));
  try {
    store->wait(joined, ms_until(deadline));
  } catch (const StoreTimeout& e) {
    fail(ERR_TIMEOUT, "init: ", ranks_str(ranks_of_keys(e.missing)), " did not join within ", opt.timeout.count(), " ms",
         who);
  }
  // The interface that reaches the store's host, unless one is named.
  std::string local = opt.iface.empty() ? store->local_address() : interface_address(opt.iface);
  if (local.empty()) local = "127.0.0.1";
  gloo::transport::tcp::attr attr;
  if (!opt.iface.empty()) {
    attr.iface = opt.iface;
  } else {
    attr.hostname = local;
  }
  try {
    device = gloo::transport::tcp::CreateDevice(attr);
    auto ctx = std::make_shared<gloo::rendezvous::Context>(opt.rank, opt.size);
    Millis left = std::max(Millis(1), ms_until(deadline));
    ctx->setTimeout(left);
    StoreAdapter adapter(*store, left);
    gloo::rendezvous::PrefixStore prefixed(opt.prefix + "/gloo", adapter);
    ctx->connectFullMesh(prefixed, device);
    ctx->setTimeout(opt.timeout);
    context = std::move(ctx);
    auto direct = std::make_shared<Mesh>(*store, opt.prefix + "/mesh", opt.rank, opt.size, local, opt.token, deadline);
    std::lock_guard<std::mutex> lock(wait_mutex);
    mesh = std::move(direct);
  } catch (const StoreTimeout& e) {
    fail(ERR_TIMEOUT, "init: ", ranks_str(ranks_of_keys(e.missing)), " did not publish its address within ",
         opt.timeout.count(), " ms", who);
  } catch (const Error& e) {
    fail(e.code(), "init: ", e.what(), who);
  } catch (const std::exception& e) {
    fail(ERR_DIST, "init: could not connect to the other ranks (Gloo on ", attr.iface.empty() ? attr.hostname : attr.iface,
         "): ", e.what(), who);
  }
}

// --- the group ---

GlooGroup::GlooGroup(GroupOptions options, OnDone on_done) : state_(std::make_shared<State>()) {
  if (options.size < 1) fail(ERR_ARG, "init: world size must be >= 1, got ", options.size);
  if (options.rank < 0 || options.rank >= options.size)
    fail(ERR_ARG, "init: rank must be in [0, ", options.size, "), got ", options.rank);
  if (options.timeout.count() <= 0) fail(ERR_ARG, "init: timeout must be > 0 ms");
  state_->opt = std::move(options);
  state_->on_done = std::move(on_done);
  Task task;
  task.work = connect_work_ = std::make_shared<Work>(state_->next_work_id++);
  task.what = "init";
  task.timeout = state_->opt.timeout;
  task.run = [](State& s, Exchange& x) { s.connect(x.deadline()); };
  state_->queue.push_back(std::move(task));
  // The threads hold the state, so that a thread still stuck in a rendezvous outlives the group.
  state_->comm = std::thread([s = state_] {
    pthread_setname_np(pthread_self(), "ignis-comm");
    s->comm_loop();
  });
  state_->transfers = std::thread([s = state_] {
    pthread_setname_np(pthread_self(), "ignis-transfer");
    s->transfer_loop();
  });
  state_->reporter = std::thread([s = state_] {
    pthread_setname_np(pthread_self(), "ignis-progress");
    s->report_loop();
  });
}

GlooGroup::~GlooGroup() { shutdown(); }

int GlooGroup::rank() const { return state_->opt.rank; }
int GlooGroup::size() const { return state_->opt.size; }

void GlooGroup::shutdown() {
  State& s = *state_;
  std::deque<Task> dropped;
  {
    std::lock_guard<std::mutex> lock(s.queue_mutex);
    if (s.stopping) return;
    s.stopping = true;
    dropped.swap(s.queue);
  }
  s.aborted = true;
  {
    std::lock_guard<std::mutex> lock(s.wait_mutex);
    if (s.mesh) s.mesh->interrupt();
    if (s.waiting) {
      s.waiting->abortWaitRecv();
      s.waiting->abortWaitSend();
    }
  }
  s.queue_cv.notify_all();
  {
    std::lock_guard<std::mutex> lock(s.report_mutex);
    s.report_stop = true;
  }
  s.report_cv.notify_all();
  for (auto& task : dropped) {
    task.work->finish(ERR_DIST, task.what + ": the process group was destroyed before this operation ran");
    std::shared_ptr<Work> work = task.work;
    task = Task();
    if (s.on_done) s.on_done(work);
  }
  // The comm thread may still hand transfers over (which then fail at once): stop the transfer
  // thread after it, then close the connections. A rendezvous can wait on the store or on a peer
  // for long: give the threads a moment, then leave them to finish on their own.
  auto joined = std::make_shared<std::promise<void>>();
  std::future<void> finished = joined->get_future();
  std::thread([state = state_, joined] {
    state->comm.join();
    {
      std::lock_guard<std::mutex> lock(state->transfer_mutex);
      state->transfers_stop = true;
    }
    state->transfer_cv.notify_all();
    state->transfers.join();
    state->reporter.join();
    try {
      if (state->context) state->context->closeConnections();
    } catch (...) {
    }
    joined->set_value();
  }).detach();
  if (finished.wait_for(std::chrono::seconds(5)) != std::future_status::ready)
    fprintf(stderr, "ignis dist: the comm thread is still waiting on a peer; leaving it behind\n");
}

// --- the operations ---

namespace {

using Run = std::function<void(GlooGroup::State&, Exchange&)>;

std::shared_ptr<Work> enqueue(GlooGroup::State& s, const std::string& name, const std::string& details, int peer,
                              Millis timeout, Run run) {
  Task task;
  task.peer = peer;
  task.timeout = timeout.count() > 0 ? timeout : s.opt.timeout;
  task.run = std::move(run);
  std::shared_ptr<Work> work;
  {
    std::lock_guard<std::mutex> lock(s.queue_mutex);
    if (s.stopping) fail(ERR_DIST, name, ": the process group was destroyed");
    work = task.work = std::make_shared<Work>(s.next_work_id++);
    if (peer < 0) task.seq = s.next_seq++;
    std::string paren = details.empty() ? "" : " (" + details + ")";
    task.what = name + (task.seq >= 0 ? " #" + std::to_string(task.seq) : "") + paren;
    task.signature = name + "(" + details + ")";
    s.queue.push_back(std::move(task));
  }
  s.queue_cv.notify_one();
  return work;
}

void check_peer(const char* op, const GlooGroup::State& s, int peer, const char* what) {
  if (peer < 0 || peer >= s.opt.size) fail(ERR_ARG, op, ": ", what, " must be a rank in [0, ", s.opt.size, "), got ", peer);
}

void check_like(const char* op, const TensorPtr& t, const TensorPtr& like, const char* what) {
  check_cpu(op, t);
  if (t->dtype != like->dtype)
    fail(ERR_DTYPE, op, ": ", what, " must be ", dtype_name(like->dtype), ", got ", dtype_name(t->dtype));
  if (t->numel() != like->numel())
    fail(ERR_SHAPE, op, ": ", what, " must have ", like->numel(), " elements, got ", shape_str(t->shape));
}

void check_point_to_point(const char* op, const GlooGroup::State& s, const TensorPtr& t, int peer, const char* what,
                          int64_t tag) {
  check_cpu(op, t);
  check_peer(op, s, peer, what);
  if (peer == s.opt.rank) fail(ERR_ARG, op, ": ", what, " must be another rank than this one (", peer, ")");
  if (tag < 0) fail(ERR_ARG, op, ": tag must be >= 0, got ", tag);
}

}  // namespace

std::shared_ptr<Work> GlooGroup::all_reduce(const TensorPtr& t, ReduceOp op, Millis timeout) {
  check_reducible("allReduce", t, op);
  Staged st(t, true, true);
  return enqueue(*state_, "allReduce", describe(t) + ", " + reduce_op_name(op), -1, timeout,
                 [st, op](State&, Exchange& x) {
                   stage_in({st});
                   size_t count = size_t(st.buffer->numel());
                   if (x.size > 1 && count > 0) all_reduce_rounds(x, st.buffer->dtype, op, st.data(), count);
                   stage_out({st});
                 });
}

std::shared_ptr<Work> GlooGroup::all_gather(const TensorPtr& input, const std::vector<TensorPtr>& outputs,
                                            Millis timeout) {
  check_cpu("allGather", input);
  if (int(outputs.size()) != size()) fail(ERR_ARG, "allGather: expected ", size(), " outputs, got ", outputs.size());
  for (const auto& o : outputs) check_like("allGather", o, input, "every output");
  Staged in(input, true, false);
  std::vector<Staged> outs;
  for (const auto& o : outputs) outs.emplace_back(o, false, true);
  return enqueue(*state_, "allGather", describe(input), -1, timeout, [in, outs](State&, Exchange& x) {
    stage_in({in});
    std::vector<char*> ptrs;
    for (const auto& o : outs) ptrs.push_back(o.data());
    if (in.bytes() > 0) {
      if (x.size > 1) {
        all_gather_direct(x, in.data(), in.bytes(), ptrs);
      } else if (ptrs[0] != in.data()) {
        std::memmove(ptrs[0], in.data(), in.bytes());
      }
    }
    stage_out(outs);
  });
}

std::shared_ptr<Work> GlooGroup::reduce_scatter(const std::vector<TensorPtr>& inputs, const TensorPtr& output,
                                                ReduceOp op, Millis timeout) {
  check_reducible("reduceScatter", output, op);
  if (int(inputs.size()) != size()) fail(ERR_ARG, "reduceScatter: expected ", size(), " inputs, got ", inputs.size());
  for (const auto& t : inputs) check_like("reduceScatter", t, output, "every input");
  std::vector<Staged> ins;
  for (const auto& t : inputs) ins.emplace_back(t, true, false);
  Staged out(output, false, true);
  std::string details = describe(output) + " x " + std::to_string(size()) + ", " + reduce_op_name(op);
  return enqueue(*state_, "reduceScatter", details, -1, timeout, [ins, out, op](State&, Exchange& x) {
    stage_in(ins);
    size_t count = size_t(out.buffer->numel());
    DType dtype = out.buffer->dtype;
    if (count > 0) {
      if (x.size == 1) {
        const void* only = ins[0].data();
        combine(dtype, op, out.data(), &only, 1, count);
      } else {
        std::vector<char*> blocks;
        for (const auto& t : ins) blocks.push_back(t.data());
        reduce_scatter_rounds(x, dtype, op, blocks, std::vector<size_t>(x.size, count), out.data(), false);
      }
    }
    stage_out({out});
  });
}

std::shared_ptr<Work> GlooGroup::broadcast(const TensorPtr& t, int root, Millis timeout) {
  check_cpu("broadcast", t);
  check_peer("broadcast", *state_, root, "src");
  bool sender = root == rank();
  Staged st(t, sender, !sender);
  return enqueue(*state_, "broadcast", describe(t) + ", src " + std::to_string(root), -1, timeout,
                 [st, root](State&, Exchange& x) {
                   stage_in({st});
                   if (x.size > 1 && st.bytes() > 0) broadcast_direct(x, st.data(), st.bytes(), root);
                   stage_out({st});
                 });
}

std::shared_ptr<Work> GlooGroup::barrier(Millis timeout) {
  return enqueue(*state_, "barrier", "", -1, timeout, [](State&, Exchange& x) {
    if (x.size > 1) barrier_rounds(x);
  });
}

namespace {

// A send (receive = false) or receive: posted on the comm thread, finished by the transfer thread.
std::shared_ptr<Work> point_to_point(GlooGroup::State& s, const TensorPtr& t, int peer, int64_t tag, Millis timeout,
                                     bool receive) {
  const char* op = receive ? "recv" : "send";
  check_point_to_point(op, s, t, peer, receive ? "src" : "dst", tag);
  Staged st(t, !receive, receive);
  std::string name = std::string(receive ? "recv from" : "send to") + " rank " + std::to_string(peer);
  return enqueue(s, name, describe(t) + ", tag " + std::to_string(tag), peer, timeout,
                 [st, peer, tag, receive](GlooGroup::State&, Exchange& x) {
                   stage_in({st});
                   BufferPtr b = x.buffer(st.data(), st.bytes());
                   uint64_t slot = Exchange::slot(tag, st.bytes());
                   if (receive) {
                     b->recv(peer, slot);
                   } else {
                     b->send(peer, slot);
                   }
                   x.hand_off(std::move(b), st, receive);
                 });
}

}  // namespace

std::shared_ptr<Work> GlooGroup::send(const TensorPtr& t, int dst, int64_t tag, Millis timeout) {
  return point_to_point(*state_, t, dst, tag, timeout, false);
}

std::shared_ptr<Work> GlooGroup::recv(const TensorPtr& t, int src, int64_t tag, Millis timeout) {
  return point_to_point(*state_, t, src, tag, timeout, true);
}

}  // namespace ignis::dist
