// A small thread pool for CPU loops. parallel_for splits [0, n) into chunks of at least `grain`
// items; below that (or with one thread, or when already inside a parallel region) it runs inline.
// IGNIS_NUM_THREADS caps the number of threads.
#pragma once
#include <cstdint>
#include <functional>

namespace ignis {

int num_threads();
void set_num_threads(int n);
bool in_parallel_region();

namespace detail {
void run_parallel(int64_t n, int64_t chunk, const std::function<void(int64_t, int64_t)>& fn);
}

template <typename F>
void parallel_for(int64_t n, int64_t grain, F&& fn) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  int threads = num_threads();
  if (n / 2 < grain || threads <= 1 || in_parallel_region()) {  // n / 2: 2 * grain may overflow
    fn(int64_t(0), n);
    return;
  }
  int64_t chunks = n / grain < threads ? n / grain : threads;
  detail::run_parallel(n, (n + chunks - 1) / chunks, fn);
}

}  // namespace ignis
