#include "core/parallel.h"

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace ignis {
namespace {

thread_local bool tls_in_parallel = false;

int default_threads() {
  int hw = int(std::thread::hardware_concurrency());
  if (hw < 1) hw = 1;
  if (const char* env = std::getenv("IGNIS_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n >= 1 && n < hw) return n;
  }
  return hw;
}

std::atomic<int> g_threads{default_threads()};

// Workers sleep on `wake` until a job with a new generation arrives, then pull chunks from
// `next` until none are left. The caller works on chunks too, then waits for `done`.
class Pool {
 public:
  static Pool& get() {
    // Leaked on purpose: joining threads from a static destructor at process exit can deadlock.
    static Pool* pool = new Pool();
    return *pool;
  }

  void run(int64_t n, int64_t chunk, const std::function<void(int64_t, int64_t)>& fn, int threads) {
    std::unique_lock<std::mutex> busy(run_mutex_, std::try_to_lock);
    if (!busy.owns_lock()) {  // another thread is using the pool: run inline rather than wait
      fn(0, n);
      return;
    }
    ensure_workers(threads - 1);
    int64_t nchunks = (n + chunk - 1) / chunk;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      fn_ = &fn;
      n_ = n;
      chunk_ = chunk;
      nchunks_ = nchunks;
      next_ = 0;
      done_ = 0;
      error_ = nullptr;
      generation_++;
    }
    wake_.notify_all();
    work();
    std::unique_lock<std::mutex> lock(mutex_);
    // Wait for every chunk and for every worker to have left work(), so none can touch the
    // next job's counters with this job's function.
    finished_.wait(lock, [&] { return done_ == nchunks_ && active_ == 0; });
    fn_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void ensure_workers(int count) {
    while (int(workers_.size()) < count) workers_.emplace_back([this] { worker_loop(); });
  }

  void worker_loop() {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_ != seen && fn_ != nullptr; });
        seen = generation_;
        active_++;
      }
      work();
      std::lock_guard<std::mutex> lock(mutex_);
      if (--active_ == 0) finished_.notify_one();
    }
  }

  // Takes chunks until none remain.
  void work() {
    tls_in_parallel = true;
    for (;;) {
      int64_t i = next_.fetch_add(1);
      if (i >= nchunks_) break;
      int64_t begin = i * chunk_;
      int64_t end = begin + chunk_ < n_ ? begin + chunk_ : n_;
      try {
        (*fn_)(begin, end);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!error_) error_ = std::current_exception();
      }
      std::lock_guard<std::mutex> lock(mutex_);
      if (++done_ == nchunks_) finished_.notify_all();
    }
    tls_in_parallel = false;
  }

  std::mutex run_mutex_;
  std::mutex mutex_;
  std::condition_variable wake_, finished_;
  std::vector<std::thread> workers_;
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0, chunk_ = 1, nchunks_ = 0, done_ = 0;
  int active_ = 0;  // workers inside work()
  std::atomic<int64_t> next_{0};
  uint64_t generation_ = 0;
  std::exception_ptr error_;
};

}  // namespace

int num_threads() { return g_threads.load(std::memory_order_relaxed); }

void set_num_threads(int n) {
  int hw = int(std::thread::hardware_concurrency());
  g_threads = n < 1 ? 1 : (hw > 0 && n > hw ? hw : n);
}

bool in_parallel_region() { return tls_in_parallel; }

namespace detail {
void run_parallel(int64_t n, int64_t chunk, const std::function<void(int64_t, int64_t)>& fn) {
  Pool::get().run(n, chunk, fn, num_threads());
}
}  // namespace detail

}  // namespace ignis
