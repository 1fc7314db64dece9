// The NCCL process group: collectives on CUDA tensors.
//
// Rank 0 makes NCCL's unique id and publishes it in the TCP store; every rank then creates a
// non-blocking communicator on its device (NCCL's calls return at once; their progress is polled
// under a deadline).
//
// Operations are issued on the calling thread, in order, on the group's comm stream: it first
// waits for an event recorded on the device's current stream (what was computed before the call
// is ready), then runs the NCCL call, and an event recorded after it is the work's completion.
// The current stream does not wait for it, so what is computed meanwhile overlaps the
// communication: Work.wait() makes the stream current then wait for that event (without blocking
// the host), as PyTorch's async collectives do; a barrier's wait blocks the host. A
// non-contiguous tensor goes through a contiguous copy made on the current stream and copied back
// on the comm stream.
//
// A watchdog thread polls each pending work's completion event and the communicator's error
// state. On an NCCL error, or when a work passes its deadline (a peer died or never called), it
// aborts the communicator (NCCL's kernels then stop, so no stream stays blocked), fails that work
// with ERR_DIST / ERR_TIMEOUT naming it, its sequence number and this rank, fails every later
// one, and leaves the group unusable. The tensors of a work stay referenced until its event
// completed, so their memory is not reused while NCCL may still touch it.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <cstdio>
#include <deque>
#include <future>
#include <mutex>
#include <thread>
#include <pthread.h>
#include "cuda/copy.h"
#include "cuda/graph.h"
#include "cuda/loader.h"
#include "cuda/nccl_api.h"
#include "cuda/runtime.h"
#include "dist/process_group.h"

namespace ignis::cuda {
namespace {

using dist::GroupOptions;
using dist::Millis;
using dist::OnDone;
using dist::ReduceOp;
using dist::Work;
using Clock = std::chrono::steady_clock;

// How often the watchdog looks at pending work; NCCL's async error is read at most every
// kErrorPoll (it takes a lock inside NCCL).
constexpr auto kEventPoll = std::chrono::microseconds(20);
constexpr auto kErrorPoll = std::chrono::milliseconds(2);

// The NCCL functions, looked up once (ERR_DEVICE naming what is missing).
struct Api {
  nccl::GetVersion get_version;
  nccl::GetUniqueId get_unique_id;
  nccl::CommInitRankConfig comm_init_rank_config;
  nccl::CommGetAsyncError comm_get_async_error;
  nccl::CommAbort comm_abort;
  nccl::GetErrorString get_error_string;
  nccl::GetLastError get_last_error;  // optional (NCCL 2.13)
  nccl::AllReduce all_reduce;
  nccl::Broadcast broadcast;
  nccl::ReduceScatter reduce_scatter;
  nccl::AllGather all_gather;
  nccl::Send send;
  nccl::Recv recv;
  int version;
};

std::string version_str(int v) {
  return std::to_string(v / 10000) + "." + std::to_string(v % 10000 / 100) + "." + std::to_string(v % 100);
}

Api load_api() {
  Api a;
  a.get_version = function<nccl::GetVersion>(Library::Nccl, "ncclGetVersion");
  if (a.get_version(&a.version) != nccl::Success) fail(ERR_DEVICE, "nccl: ncclGetVersion failed");
  if (a.version < nccl::kMinVersion)
    fail(ERR_DEVICE, "nccl: NCCL ", a.version < 10000 ? std::to_string(a.version) : version_str(a.version),
         " is too old: ignis needs NCCL ", version_str(nccl::kMinVersion), " or later (non-blocking communicators)");
  a.get_unique_id = function<nccl::GetUniqueId>(Library::Nccl, "ncclGetUniqueId");
  a.comm_init_rank_config = function<nccl::CommInitRankConfig>(Library::Nccl, "ncclCommInitRankConfig");
  a.comm_get_async_error = function<nccl::CommGetAsyncError>(Library::Nccl, "ncclCommGetAsyncError");
  a.comm_abort = function<nccl::CommAbort>(Library::Nccl, "ncclCommAbort");
  a.get_error_string = function<nccl::GetErrorString>(Library::Nccl, "ncclGetErrorString");
  a.get_last_error = reinterpret_cast<nccl::GetLastError>(optional_symbol(Library::Nccl, "ncclGetLastError"));
  a.all_reduce = function<nccl::AllReduce>(Library::Nccl, "ncclAllReduce");
  a.broadcast = function<nccl::Broadcast>(Library::Nccl, "ncclBroadcast");
  a.reduce_scatter = function<nccl::ReduceScatter>(Library::Nccl, "ncclReduceScatter");
  a.all_gather = function<nccl::AllGather>(Library::Nccl, "ncclAllGather");
  a.send = function<nccl::Send>(Library::Nccl, "ncclSend");
  a.recv = function<nccl::Recv>(Library::Nccl, "ncclRecv");
  return a;
}

// Loaded at first use; a failed load throws, and is tried again at the next use.
const Api& api() {
  static const Api loaded = load_api();
  return loaded;
}

// "unhandled system error (ncclSystemError): <NCCL's last message>"
std::string describe_result(nccl::Result r, nccl::Comm comm) {
  static const char* const names[] = {"ncclSuccess",      "ncclUnhandledCudaError", "ncclSystemError",
                                      "ncclInternalError", "ncclInvalidArgument",   "ncclInvalidUsage",
                                      "ncclRemoteError",   "ncclInProgress",        "ncclTimeout"};
  const Api& a = api();
  std::string s = a.get_error_string(r);
  s += " (" + (r >= 0 && r <= nccl::Timeout ? std::string(names[r]) : "code " + std::to_string(int(r))) + ")";
  const char* last = a.get_last_error ? a.get_last_error(comm) : nullptr;
  if (last && *last) s += std::string(": ") + last;
  return s;
}

nccl::DataType nccl_type(DType t) {
  switch (t) {
    case DType::Float32: return nccl::Float32;
    case DType::Float64: return nccl::Float64;
    case DType::BFloat16: return nccl::Bfloat16;
    case DType::Float16: return nccl::Float16;
    case DType::Int32: return nccl::Int32;
    case DType::Int64: return nccl::Int64;
    case DType::Bool: return nccl::Uint8;
  }
  return nccl::Uint8;
}

nccl::RedOp nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return nccl::Sum;
    case ReduceOp::Avg: return nccl::Avg;
    case ReduceOp::Max: return nccl::Max;
    case ReduceOp::Min: return nccl::Min;
    case ReduceOp::Prod: return nccl::Prod;
  }
  return nccl::Sum;
}

std::string describe(const TensorPtr& t) { return std::string(dtype_name(t->dtype)) + " " + shape_str(t->shape); }

Millis ms_until(Clock::time_point deadline) {
  return std::max(Millis(0), std::chrono::ceil<Millis>(deadline - Clock::now()));
}

// An operation issued and not complete yet.
struct Pending {
  std::shared_ptr<Work> work;
  std::string what;  // "allReduce #3 (float32 [4], sum)"
  Millis timeout;
  Clock::time_point deadline;
  cudaEvent_t done = nullptr;    // recorded on the comm stream after the result is in place
  bool host_wait = false;       // waited for on the host (a barrier), not by ordering a stream
  std::vector<TensorPtr> keep;  // every tensor the operation touches
};

// Makes `stream` the current stream of `device` for the ops called in this scope (the copies
// back of staged tensors, onto the comm stream).
class StreamScope {
 public:
  StreamScope(int device, cudaStream_t stream) : device_(device), previous_(exchange_current_stream(device, stream)) {}
  ~StreamScope() { exchange_current_stream(device_, previous_); }
  StreamScope(const StreamScope&) = delete;
  StreamScope& operator=(const StreamScope&) = delete;

 private:
  const int device_;
  const cudaStream_t previous_;
};

// A contiguous tensor to run NCCL on: t itself, or a copy made on the current stream (copy_in)
// and copied back by finish() (copy_out; run() calls it with the comm stream current).
struct Staged {
  TensorPtr user, buffer;
  bool copy_out = false;
  Staged(const TensorPtr& t, bool in, bool out)
      : user(t), buffer(t->is_contiguous() ? t : empty(t->shape, t->dtype, t->device())) {
    copy_out = out && buffer != t;
    if (in && buffer != t) copy(buffer, t);
  }
  void finish() const {
    if (copy_out) copy(user, buffer);
  }
  void* data() const { return buffer->data(); }
  size_t count() const { return size_t(buffer->numel()); }
};

// Part r of a contiguous buffer of equal parts, shaped as `like`.
TensorPtr part(const TensorPtr& whole, const TensorPtr& like, size_t r) {
  return make_view(whole, like->shape, contiguous_strides(like->shape), whole->offset + int64_t(r) * like->numel());
}

// One contiguous buffer over n equal parts: the parts themselves when they already lie one after
// the other in one storage, else a new tensor (filled from them when copy_in).
TensorPtr packed(const std::vector<TensorPtr>& parts, bool copy_in) {
  const TensorPtr& first = parts[0];
  int64_t n = int64_t(parts.size()), count = first->numel();
  bool adjacent = true;
  for (int64_t r = 0; r < n && adjacent; r++) {
    const TensorPtr& p = parts[size_t(r)];
    adjacent = p->is_contiguous() && p->storage == first->storage && p->offset == first->offset + r * count;
  }
  if (adjacent) return make_view(first, {n * count}, {1}, first->offset);
  TensorPtr whole = empty({n * count}, first->dtype, first->device());
  if (copy_in)
    for (size_t r = 0; r < parts.size(); r++) copy(part(whole, parts[r], r), parts[r]);
  return whole;
}

// Copies the parts of `whole` back to `parts` when it is a buffer of its own.
void unpack(const TensorPtr& whole, const std::vector<TensorPtr>& parts) {
  if (whole->storage == parts[0]->storage) return;
  for (size_t r = 0; r < parts.size(); r++) copy(parts[r], part(whole, parts[r], r));
}

class NcclGroup : public dist::ProcessGroup {
 public:
  NcclGroup(GroupOptions options, OnDone on_done);
  ~NcclGroup() override { shutdown(); }

  std::shared_ptr<Work> connect_work() const override { return state_->connect; }
  std::shared_ptr<Work> all_reduce(const TensorPtr& t, ReduceOp op, Millis timeout) override;
  std::shared_ptr<Work> all_gather(const TensorPtr& input, const std::vector<TensorPtr>& outputs,
                                   Millis timeout) override;
  std::shared_ptr<Work> reduce_scatter(const std::vector<TensorPtr>& inputs, const TensorPtr& output, ReduceOp op,
                                       Millis timeout) override;
  std::shared_ptr<Work> broadcast(const TensorPtr& t, int root, Millis timeout) override;
  std::shared_ptr<Work> barrier(Millis timeout) override;
  std::shared_ptr<Work> send(const TensorPtr& t, int dst, int64_t tag, Millis timeout) override;
  std::shared_ptr<Work> recv(const TensorPtr& t, int src, int64_t tag, Millis timeout) override;
  bool order_after(const std::shared_ptr<Work>& work) override;
  void shutdown() override;

  // Shared with the watchdog thread.
  struct State {
    GroupOptions opt;
    OnDone on_done;
    std::shared_ptr<Work> connect;
    Device device;
    std::string who;  // " (rank 1 of 2, cuda:1)"

    // The communicator: NCCL calls on it are made under comm_mutex.
    std::mutex comm_mutex;
    nccl::Comm comm = nullptr;
    bool aborted = false;  // under comm_mutex
    cudaStream_t comm_stream = nullptr;
    cudaEvent_t ready = nullptr;  // issuing thread only
    TensorPtr barrier_buffer;     // issuing thread only

    std::mutex mutex;  // guards what follows
    std::condition_variable cv;
    std::deque<Pending> pending;
    std::vector<Pending> aborted_works;  // failed, waiting for their events before their tensors go
    std::vector<cudaEvent_t> free_events;
    std::string broken;  // why the group is unusable; empty while it works
    bool stopping = false;
    std::atomic<bool> stop{false};  // stopping, read without the lock by waits in progress
    Clock::time_point last_error_poll;  // watchdog only
    uint64_t next_work_id = 1;
    int64_t next_seq = 0;

    std::thread watchdog;
    std::promise<void> finished;  // set when the watchdog returns

    void run();
    void connect_comm(Clock::time_point deadline);
    nccl::Result poll_comm(nccl::Result r, Clock::time_point deadline);
    void abort_comm();
    void check_pending();
    void fail_all(const char* code, const std::string& message);
    std::string gone_ranks();
    void release(Pending& p);
    void hold_until_done(std::vector<TensorPtr> keep) noexcept;
    ~State();
  };

 private:
  // Validates (device, dtype), waits for the communicator, and makes the work's name.
  struct Issue {
    std::shared_ptr<Work> work;
    std::string what;
    Millis timeout;
    cudaStream_t compute;
    bool host_wait = false;
  };
  Issue begin(const char* op, const std::string& details, bool collective, Millis timeout);
  void check_tensor(const char* op, const TensorPtr& t);
  void check_reducible(const char* op, const TensorPtr& t, ReduceOp r);
  // Runs `call` on the comm stream after the current stream's work so far (not at all for 0
  // elements: NCCL calls on empty buffers are left out on every rank alike), then `after` with
  // the comm stream current, and queues the work for the watchdog.
  std::shared_ptr<Work> run(Issue& issue, size_t count, const std::function<nccl::Result(nccl::Comm, cudaStream_t)>& call,
                            const std::function<void()>& after, std::vector<TensorPtr> keep);

  std::shared_ptr<State> state_;
  std::future<void> stopped_;
};

// --- the watchdog ---

void NcclGroup::State::run() {
  Clock::time_point deadline = Clock::now() + opt.timeout;
  try {
    connect_comm(deadline);
    connect->finish(nullptr, "");
  } catch (const Error& e) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      broken = e.what();
    }
    abort_comm();
    connect->finish(e.code(), e.what());
  } catch (const std::exception& e) {
    std::string message = std::string("init: ") + e.what() + who;
    {
      std::lock_guard<std::mutex> lock(mutex);
      broken = message;
    }
    abort_comm();
    connect->finish(ERR_DIST, message);
  }
  if (on_done) on_done(connect);
  try_use_device(device.index);  // for the event queries; they work without it too
  std::unique_lock<std::mutex> lock(mutex);
  while (!stopping) {
    if (pending.empty() && aborted_works.empty()) {
      cv.wait(lock);
      continue;
    }
    bool waiting_for_aborted_only = pending.empty();
    lock.unlock();
    check_pending();
    std::this_thread::sleep_for(waiting_for_aborted_only ? kErrorPoll : kEventPoll);
    lock.lock();
  }
}

// Waits for rank 0's unique id in the store, then creates the communicator.
void NcclGroup::State::connect_comm(Clock::time_point deadline) {
  const Api& a = api();
  std::string where = opt.store_host + ":" + std::to_string(opt.store_port);
  std::unique_ptr<dist::StoreClient> store;
  try {
    store = std::make_unique<dist::StoreClient>(opt.store_host, opt.store_port, opt.token, ms_until(deadline));
  } catch (const dist::StoreTimeout&) {
    fail(ERR_TIMEOUT, "init: could not reach the store at ", where, " within ", opt.timeout.count(), " ms", who);
  } catch (const Error& e) {
    fail(e.code(), "init: ", e.what(), who);
  }
  nccl::UniqueId id;
  std::string key = opt.prefix + "/unique_id";
  if (opt.rank == 0) {
    nccl::Result r = a.get_unique_id(&id);
    if (r != nccl::Success) fail(ERR_DIST, "init: ncclGetUniqueId failed: ", describe_result(r, nullptr), who);
    store->set(key, std::string(id.internal, sizeof id.internal));
  } else {
    // In slices, so that shutdown() need not wait for the whole timeout.
    std::string value;
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(mutex);
        if (stop) fail(ERR_DIST, "init: the process group was destroyed", who);
      }
      try {
        value = store->get(key, std::min(ms_until(deadline), Millis(200)));
        break;
      } catch (const dist::StoreTimeout&) {
        if (Clock::now() >= deadline)
          fail(ERR_TIMEOUT, "init: rank 0 did not publish NCCL's unique id within ", opt.timeout.count(), " ms", who);
      }
    }
    if (value.size() != sizeof id.internal)
      fail(ERR_DIST, "init: NCCL's unique id in the store has ", value.size(), " bytes, expected ", sizeof id.internal);
    std::memcpy(id.internal, value.data(), sizeof id.internal);
  }
  use_device(device.index);
  nccl::Config config{nccl::kConfigSize, nccl::kConfigMagic, nccl::kConfigVersion, 0, nccl::kUnsetInt,
                      nccl::kUnsetInt,      nccl::kUnsetInt,    nullptr,              nccl::kUnsetInt};
  nccl::Result r;
  {
    std::lock_guard<std::mutex> lock(comm_mutex);
    r = a.comm_init_rank_config(&comm, opt.size, id, opt.rank, &config);
  }
  if (comm) r = poll_comm(r, deadline);
  if (r == nccl::InProgress)
    fail(ERR_TIMEOUT, "init: the NCCL communicator was not ready within ", opt.timeout.count(), " ms", who, gone_ranks());
  if (r != nccl::Success)
    fail(ERR_DIST, "init: ncclCommInitRankConfig failed: ", describe_result(r, comm), who, gone_ranks());
}

// Polls the communicator until `r` is no longer ncclInProgress or the deadline passed (then
// ncclInProgress is returned).
nccl::Result NcclGroup::State::poll_comm(nccl::Result r, Clock::time_point deadline) {
  const Api& a = api();
  for (int polls = 0; r == nccl::InProgress; polls++) {
    if (Clock::now() >= deadline) return r;
    if (stop) fail(ERR_DIST, "the process group was destroyed");
    std::this_thread::sleep_for(polls < 100 ? kEventPoll : kErrorPoll);  // an init takes seconds
    std::lock_guard<std::mutex> lock(comm_mutex);
    if (aborted) return nccl::InvalidUsage;
    if (a.comm_get_async_error(comm, &r) != nccl::Success) return nccl::InternalError;
  }
  return r;
}

void NcclGroup::State::abort_comm() {
  std::lock_guard<std::mutex> lock(comm_mutex);
  if (aborted || !comm) return;
  aborted = true;
  api().comm_abort(comm);  // frees the communicator and stops its kernels; nothing left to report
}

// The ranks whose Gloo connection to the store closed (the process exited): "; rank 1 is gone".
std::string NcclGroup::State::gone_ranks() {
  if (opt.peers_prefix.empty()) return "";
  std::string ranks;
  int count = 0;
  try {
    dist::StoreClient store(opt.store_host, opt.store_port, opt.token, Millis(2000));
    for (int r = 0; r < opt.size; r++) {
      if (r == opt.rank || !store.check({opt.peers_prefix + "/closed/" + std::to_string(r)})) continue;
      ranks += (count++ ? ", " : "") + std::to_string(r);
    }
  } catch (const std::exception&) {
    return "; the store is unreachable too (the process serving it may be gone)";
  }
  if (count == 0) return "";
  return std::string("; ") + (count == 1 ? "rank " : "ranks ") + ranks + (count == 1 ? " is" : " are") +
         " gone (process exited or lost its connection)";
}

void NcclGroup::State::release(Pending& p) {
  p.keep.clear();
  std::lock_guard<std::mutex> lock(mutex);
  free_events.push_back(p.done);
}

// Keeps `keep` referenced until what the comm stream has queued so far is done (the watchdog then
// lets the tensors go, as for a failed work), or for good when that cannot be known.
void NcclGroup::State::hold_until_done(std::vector<TensorPtr> keep) noexcept {
  Pending p;
  p.keep = std::move(keep);
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (!free_events.empty()) {
      p.done = free_events.back();
      free_events.pop_back();
    }
  }
  if (!p.done && cudaEventCreateWithFlags(&p.done, cudaEventDisableTiming) != cudaSuccess) p.done = nullptr;
  if (!p.done || cudaEventRecord(p.done, comm_stream) != cudaSuccess) {
    cudaGetLastError();
    new std::vector<TensorPtr>(std::move(p.keep));  // kept on purpose
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex);
    aborted_works.push_back(std::move(p));
  }
  cv.notify_one();
}

void NcclGroup::State::check_pending() {
  // Works that failed: their tensors go once NCCL's aborted kernels are done with them.
  std::vector<Pending> finished_aborted;
  {
    std::lock_guard<std::mutex> lock(mutex);
    for (size_t i = 0; i < aborted_works.size();) {
      if (cudaEventQuery(aborted_works[i].done) == cudaErrorNotReady) {
        i++;
        continue;
      }
      finished_aborted.push_back(std::move(aborted_works[i]));
      aborted_works.erase(aborted_works.begin() + long(i));
    }
  }
  for (auto& p : finished_aborted) release(p);

  for (;;) {
    Pending p;
    std::string what;
    Millis timeout{0};
    bool timed_out = false;
    cudaError_t status;
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (pending.empty()) return;
      Pending& front = pending.front();
      status = cudaEventQuery(front.done);
      if (status == cudaSuccess) {
        p = std::move(front);
        pending.pop_front();
      } else {
        what = front.what;
        timeout = front.timeout;
        timed_out = Clock::now() >= front.deadline;
      }
    }
    if (p.work) {
      release(p);
      p.work->finish(nullptr, "");
      if (on_done) on_done(p.work);
      continue;
    }
    if (status != cudaErrorNotReady) {  // a CUDA error (sticky: the device is unusable)
      cudaGetLastError();
      abort_comm();
      fail_all(ERR_CUDA, what + ": " + cudaGetErrorString(status) + " (" + cudaGetErrorName(status) + ")" + who);
      return;
    }
    if (!timed_out && Clock::now() - last_error_poll < kErrorPoll) return;
    last_error_poll = Clock::now();
    nccl::Result async = nccl::Success;
    std::string cause;
    {
      std::lock_guard<std::mutex> lock(comm_mutex);
      if (!aborted && api().comm_get_async_error(comm, &async) != nccl::Success) async = nccl::InternalError;
      if (async != nccl::Success && async != nccl::InProgress) cause = describe_result(async, aborted ? nullptr : comm);
    }
    if (!cause.empty()) {
      std::string gone = gone_ranks();
      abort_comm();
      fail_all(ERR_DIST, what + ": NCCL failed: " + cause + who + gone);
    } else if (timed_out) {
      std::string gone = gone_ranks();
      abort_comm();
      fail_all(ERR_TIMEOUT, what + ": timed out after " + std::to_string(timeout.count()) + " ms" + who +
                                (gone.empty() ? "; a rank did not issue this collective, or issued another one" : gone));
    }
    return;
  }
}

// Fails every pending work: the first with `message`, the others as aborted after it.
void NcclGroup::State::fail_all(const char* code, const std::string& message) {
  std::deque<Pending> failed;
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (broken.empty()) broken = message;
    failed.swap(pending);
  }
  bool first = true;
  for (auto& p : failed) {
    p.work->finish(first ? code : ERR_DIST,
                   first ? message : p.what + ": the NCCL communicator was aborted after an earlier failure (" + message + ")");
    first = false;
    std::shared_ptr<Work> work = p.work;
    {
      std::lock_guard<std::mutex> lock(mutex);
      aborted_works.push_back(std::move(p));
    }
    if (on_done) on_done(work);
  }
  cv.notify_one();  // the watchdog frees the tensors of the failed works
}

NcclGroup::State::~State() {
  if (ready) cudaEventDestroy(ready);
  if (comm_stream) cudaStreamDestroy(comm_stream);
}

// --- the group ---

NcclGroup::NcclGroup(GroupOptions options, OnDone on_done) : state_(std::make_shared<State>()) {
  if (options.size < 1) fail(ERR_ARG, "init: world size must be >= 1, got ", options.size);
  if (options.rank < 0 || options.rank >= options.size)
    fail(ERR_ARG, "init: rank must be in [0, ", options.size, "), got ", options.rank);
  if (options.timeout.count() <= 0) fail(ERR_ARG, "init: timeout must be > 0 ms");
  Device device{DeviceType::CUDA, options.device};
  try {
    require_device(device);
    api();
  } catch (const Error& e) {
    fail(e.code(), "init: the nccl backend cannot be used: ", e.what());
  }
  State& s = *state_;
  s.device = device;
  s.who = " (rank " + std::to_string(options.rank) + " of " + std::to_string(options.size) + ", " + device.str() + ")";
  s.opt = std::move(options);
  s.on_done = std::move(on_done);
  s.connect = std::make_shared<Work>(s.next_work_id++);
  use_device(device.index);
  // Non-blocking: the comm stream does not wait for the legacy default stream (events order it).
  check(cudaStreamCreateWithFlags(&s.comm_stream, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  check(cudaEventCreateWithFlags(&s.ready, cudaEventDisableTiming), "cudaEventCreateWithFlags");
  stopped_ = s.finished.get_future();
  s.watchdog = std::thread([state = state_] {
    pthread_setname_np(pthread_self(), "ignis-nccl");
    state->run();
    state->finished.set_value();
  });
}

void NcclGroup::shutdown() {
  State& s = *state_;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    if (s.stopping) return;
    s.stopping = true;
    s.stop = true;
    if (s.broken.empty()) s.broken = "the process group was destroyed";
  }
  s.cv.notify_all();
  // The watchdog may be connecting to a store that is gone: give it a moment, then leave it to
  // fail on its own (it holds the state).
  if (stopped_.wait_for(std::chrono::seconds(5)) == std::future_status::ready) {
    s.watchdog.join();
  } else {
    fprintf(stderr, "ignis dist: the NCCL watchdog is still waiting on the store; leaving it behind\n");
    s.watchdog.detach();
  }
  s.abort_comm();
  std::deque<Pending> left;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    left.swap(s.pending);
  }
  for (auto& p : left) {
    p.work->finish(ERR_DIST, p.what + ": the process group was destroyed before this operation completed");
    if (s.on_done) s.on_done(p.work);
    std::lock_guard<std::mutex> lock(s.mutex);
    s.aborted_works.push_back(std::move(p));
  }
  // Kernels of an aborted communicator stop soon: give them a moment, then leave the tensors of
  // the works still running referenced for good rather than free memory a kernel may write.
  Clock::time_point until = Clock::now() + std::chrono::seconds(2);
  for (;;) {
    s.check_pending();
    {
      std::lock_guard<std::mutex> lock(s.mutex);
      if (s.aborted_works.empty() || Clock::now() >= until) break;
    }
    std::this_thread::sleep_for(kErrorPoll);
  }
  std::lock_guard<std::mutex> lock(s.mutex);
  if (!s.aborted_works.empty()) new std::vector<Pending>(std::move(s.aborted_works));  // kept on purpose
  for (cudaEvent_t e : s.free_events) cudaEventDestroy(e);
  s.free_events.clear();
}

NcclGroup::Issue NcclGroup::begin(const char* op, const std::string& details, bool collective, Millis timeout) {
  State& s = *state_;
  std::string name = std::string(op);
  // A captured collective would leave the watchdog an event it cannot query.
  require_not_capturing(s.device.index, op);
  // The communicator is made on the watchdog thread; the first operations wait for it.
  s.connect->wait();
  if (s.connect->code()) fail(s.connect->code(), op, ": no NCCL communicator (", s.connect->message(), ")");
  Issue issue;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    if (s.stopping) fail(ERR_DIST, op, ": the process group was destroyed");
    if (!s.broken.empty())
      fail(ERR_DIST, op, ": the process group is unusable after an earlier failure (", s.broken,
           "); destroy() it and init() again");
    issue.work = std::make_shared<Work>(s.next_work_id++);
    int64_t seq = collective ? s.next_seq++ : -1;
    issue.what = name + (seq >= 0 ? " #" + std::to_string(seq) : "") + (details.empty() ? "" : " (" + details + ")");
  }
  issue.timeout = timeout.count() > 0 ? timeout : s.opt.timeout;
  use_device(s.device.index);
  issue.compute = current_stream(s.device.index);
  return issue;
}

void NcclGroup::check_tensor(const char* op, const TensorPtr& t) {
  if (t->device() != state_->device)
    fail(ERR_DEVICE, op, ": the nccl process group of this rank is on ", state_->device.str(), ", got a tensor on ",
         t->device().str());
}

void NcclGroup::check_reducible(const char* op, const TensorPtr& t, ReduceOp r) {
  check_tensor(op, t);
  if (t->dtype == DType::Bool) fail(ERR_DTYPE, op, ": cannot reduce bool tensors");
  if (r == ReduceOp::Avg && !is_float(t->dtype))
    fail(ERR_DTYPE, op, ": avg needs a floating-point tensor, got ", dtype_name(t->dtype));
}

std::shared_ptr<Work> NcclGroup::run(Issue& issue, size_t count,
                                     const std::function<nccl::Result(nccl::Comm, cudaStream_t)>& call,
                                     const std::function<void()>& after, std::vector<TensorPtr> keep) {
  State& s = *state_;
  Clock::time_point deadline = Clock::now() + issue.timeout;
  check(cudaEventRecord(s.ready, issue.compute), "cudaEventRecord");
  check(cudaStreamWaitEvent(s.comm_stream, s.ready, 0), "cudaStreamWaitEvent");
  nccl::Result r;
  {
    std::lock_guard<std::mutex> lock(s.comm_mutex);
    r = s.aborted ? nccl::InvalidUsage : count == 0 ? nccl::Success : call(s.comm, s.comm_stream);
  }
  r = s.poll_comm(r, deadline);
  if (r != nccl::Success) {
    std::string message;
    const char* code = ERR_DIST;
    if (r == nccl::InProgress) {
      code = ERR_TIMEOUT;
      message = issue.what + ": NCCL did not take the operation within " + std::to_string(issue.timeout.count()) + " ms";
    } else {
      std::lock_guard<std::mutex> lock(s.comm_mutex);
      message = issue.what + ": NCCL failed: " + describe_result(r, s.aborted ? nullptr : s.comm);
    }
    message += s.who;
    s.abort_comm();
    s.fail_all(code, message);
    // NCCL may have queued part of the operation before it failed: its tensors stay until the
    // comm stream is past it (the aborted kernels stop), not handed back to the allocator now
    s.hold_until_done(std::move(keep));
    fail(code, message);
  }
  if (after) {
    StreamScope on_comm_stream(s.device.index, s.comm_stream);
    after();
  }
  Pending p;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    if (!s.free_events.empty()) {
      p.done = s.free_events.back();
      s.free_events.pop_back();
    }
  }
  if (!p.done) check(cudaEventCreateWithFlags(&p.done, cudaEventDisableTiming), "cudaEventCreateWithFlags");
  check(cudaEventRecord(p.done, s.comm_stream), "cudaEventRecord");
  p.host_wait = issue.host_wait;
  p.work = issue.work;
  p.what = issue.what;
  p.timeout = issue.timeout;
  p.deadline = deadline;
  p.keep = std::move(keep);
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    // The watchdog may have aborted the communicator meanwhile: its kernels then end early.
    if (!s.broken.empty()) {
      std::string message = issue.what + ": the NCCL communicator was aborted (" + s.broken + ")";
      s.aborted_works.push_back(std::move(p));
      fail(ERR_DIST, message);
    }
    s.pending.push_back(std::move(p));
  }
  s.cv.notify_one();
  return issue.work;
}

// --- the operations ---

std::shared_ptr<Work> NcclGroup::all_reduce(const TensorPtr& t, ReduceOp op, Millis timeout) {
  check_reducible("allReduce", t, op);
  Issue issue = begin("allReduce", describe(t) + ", " + dist::reduce_op_name(op), true, timeout);
  Staged st(t, true, true);
  nccl::DataType type = nccl_type(t->dtype);
  return run(
      issue, st.count(),
      [&](nccl::Comm comm, cudaStream_t stream) {
        return api().all_reduce(st.data(), st.data(), st.count(), type, nccl_op(op), comm, stream);
      },
      [&] { st.finish(); }, {t, st.buffer});
}

std::shared_ptr<Work> NcclGroup::all_gather(const TensorPtr& input, const std::vector<TensorPtr>& outputs,
                                            Millis timeout) {
  check_tensor("allGather", input);
  if (int(outputs.size()) != state_->opt.size)
    fail(ERR_ARG, "allGather: expected ", state_->opt.size, " outputs, got ", outputs.size());
  for (const auto& o : outputs) {
    check_tensor("allGather", o);
    if (o->dtype != input->dtype)
      fail(ERR_DTYPE, "allGather: every output must be ", dtype_name(input->dtype), ", got ", dtype_name(o->dtype));
    if (o->numel() != input->numel())
      fail(ERR_SHAPE, "allGather: every output must have ", input->numel(), " elements, got ", shape_str(o->shape));
  }
  Issue issue = begin("allGather", describe(input), true, timeout);
  Staged in(input, true, false);
  TensorPtr whole = packed(outputs, false);
  nccl::DataType type = nccl_type(input->dtype);
  std::vector<TensorPtr> keep = outputs;
  keep.push_back(in.buffer);
  keep.push_back(whole);
  return run(
      issue, in.count(),
      [&](nccl::Comm comm, cudaStream_t stream) {
        return api().all_gather(in.data(), whole->data(), in.count(), type, comm, stream);
      },
      [&] { unpack(whole, outputs); }, std::move(keep));
}

std::shared_ptr<Work> NcclGroup::reduce_scatter(const std::vector<TensorPtr>& inputs, const TensorPtr& output,
                                                ReduceOp op, Millis timeout) {
  check_reducible("reduceScatter", output, op);
  if (int(inputs.size()) != state_->opt.size)
    fail(ERR_ARG, "reduceScatter: expected ", state_->opt.size, " inputs, got ", inputs.size());
  for (const auto& t : inputs) {
    check_tensor("reduceScatter", t);
    if (t->dtype != output->dtype)
      fail(ERR_DTYPE, "reduceScatter: every input must be ", dtype_name(output->dtype), ", got ", dtype_name(t->dtype));
    if (t->numel() != output->numel())
      fail(ERR_SHAPE, "reduceScatter: every input must have ", output->numel(), " elements, got ", shape_str(t->shape));
  }
  std::string details = describe(output) + " x " + std::to_string(inputs.size()) + ", " + dist::reduce_op_name(op);
  Issue issue = begin("reduceScatter", details, true, timeout);
  TensorPtr whole = packed(inputs, true);
  Staged out(output, false, true);
  nccl::DataType type = nccl_type(output->dtype);
  std::vector<TensorPtr> keep = inputs;
  keep.push_back(whole);
  keep.push_back(out.buffer);
  keep.push_back(output);
  return run(
      issue, out.count(),
      [&](nccl::Comm comm, cudaStream_t stream) {
        return api().reduce_scatter(whole->data(), out.data(), out.count(), type, nccl_op(op), comm, stream);
      },
      [&] { out.finish(); }, std::move(keep));
}

std::shared_ptr<Work> NcclGroup::broadcast(const TensorPtr& t, int root, Millis timeout) {
  check_tensor("broadcast", t);
  if (root < 0 || root >= state_->opt.size)
    fail(ERR_ARG, "broadcast: src must be a rank in [0, ", state_->opt.size, "), got ", root);
  Issue issue = begin("broadcast", describe(t) + ", src " + std::to_string(root), true, timeout);
  bool sender = root == state_->opt.rank;
  Staged st(t, sender, !sender);
  nccl::DataType type = nccl_type(t->dtype);
  return run(
      issue, st.count(),
      [&](nccl::Comm comm, cudaStream_t stream) {
        return api().broadcast(st.data(), st.data(), st.count(), type, root, comm, stream);
      },
      [&] { st.finish(); }, {t, st.buffer});
}

std::shared_ptr<Work> NcclGroup::barrier(Millis timeout) {
  Issue issue = begin("barrier", "", true, timeout);
  issue.host_wait = true;
  State& s = *state_;
  if (!s.barrier_buffer) s.barrier_buffer = empty({1}, DType::Float32, s.device);
  TensorPtr b = s.barrier_buffer;
  return run(
      issue, 1,
      [&](nccl::Comm comm, cudaStream_t stream) {
        return api().all_reduce(b->data(), b->data(), 1, nccl::Float32, nccl::Sum, comm, stream);
      },
      nullptr, {b});
}

std::shared_ptr<Work> NcclGroup::send(const TensorPtr& t, int dst, int64_t tag, Millis timeout) {
  check_tensor("send", t);
  const GroupOptions& o = state_->opt;
  if (dst < 0 || dst >= o.size || dst == o.rank)
    fail(ERR_ARG, "send: dst must be another rank in [0, ", o.size, "), got ", dst);
  std::string name = "send to rank " + std::to_string(dst);
  Issue issue = begin(name.c_str(), describe(t) + ", tag " + std::to_string(tag), false, timeout);
  Staged st(t, true, false);
  nccl::DataType type = nccl_type(t->dtype);
  return run(
      issue, st.count(),
      [&](nccl::Comm comm, cudaStream_t stream) { return api().send(st.data(), st.count(), type, dst, comm, stream); },
      nullptr, {t, st.buffer});
}

std::shared_ptr<Work> NcclGroup::recv(const TensorPtr& t, int src, int64_t tag, Millis timeout) {
  check_tensor("recv", t);
  const GroupOptions& o = state_->opt;
  if (src < 0 || src >= o.size || src == o.rank)
    fail(ERR_ARG, "recv: src must be another rank in [0, ", o.size, "), got ", src);
  std::string name = "recv from rank " + std::to_string(src);
  Issue issue = begin(name.c_str(), describe(t) + ", tag " + std::to_string(tag), false, timeout);
  Staged st(t, false, true);
  nccl::DataType type = nccl_type(t->dtype);
  return run(
      issue, st.count(),
      [&](nccl::Comm comm, cudaStream_t stream) { return api().recv(st.data(), st.count(), type, src, comm, stream); },
      [&] { st.finish(); }, {t, st.buffer});
}

bool NcclGroup::order_after(const std::shared_ptr<Work>& work) {
  State& s = *state_;
  // Under the lock the work stays pending: its event is not handed to a later work meanwhile.
  std::lock_guard<std::mutex> lock(s.mutex);
  for (const Pending& p : s.pending) {
    if (p.work != work) continue;
    // while a graph is captured the host waits instead: a captured stream cannot wait for an
    // event recorded outside the capture
    if (p.host_wait || capturing(s.device.index)) return false;
    use_device(s.device.index);
    check(cudaStreamWaitEvent(current_stream(s.device.index), p.done, 0), "cudaStreamWaitEvent");
    return true;
  }
  return false;  // done (or failed): the caller's wait returns at once
}

class Backend : public dist::NcclBackend {
 public:
  std::string version() override {
    const std::string& reason = unavailable_reason();
    if (!reason.empty()) fail(ERR_DEVICE, "nccl: CUDA is not available: ", reason);
    return version_str(api().version);
  }
  std::unique_ptr<dist::ProcessGroup> create(GroupOptions options, OnDone on_done) override {
    return std::make_unique<NcclGroup>(std::move(options), std::move(on_done));
  }
};

Backend g_backend;
[[maybe_unused]] const bool g_registered = (dist::register_nccl_backend(&g_backend), true);

}  // namespace
}  // namespace ignis::cuda
