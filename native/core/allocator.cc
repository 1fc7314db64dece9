#include "core/allocator.h"

#include <sys/mman.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>

namespace ignis {
namespace {

constexpr size_t kAlign = 64;  // for vector loads
constexpr size_t kLargeBlock = size_t(4) << 20;
constexpr size_t kHugePage = size_t(2) << 20;

size_t large_size(size_t nbytes) { return (nbytes + kHugePage - 1) / kHugePage * kHugePage; }

size_t default_cache_cap() {
  if (const char* env = std::getenv("IGNIS_HOST_CACHE_MB")) {
    long mb = std::atol(env);
    return mb > 0 ? size_t(mb) << 20 : 0;
  }
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  size_t ram_eighth = pages > 0 && page > 0 ? size_t(pages) * size_t(page) / 8 : 0;
  size_t cap = size_t(1024) << 20;
  return ram_eighth < cap ? ram_eighth : cap;
}

// A fresh mapping of `size` bytes (a multiple of kHugePage) starting on a huge-page boundary.
void* map_large(size_t size) {
  size_t span = size + kHugePage;
  void* p = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  uintptr_t base = uintptr_t(p);
  uintptr_t start = (base + kHugePage - 1) & ~uintptr_t(kHugePage - 1);
  if (start > base) munmap(p, start - base);
  size_t tail = base + span - (start + size);
  if (tail) munmap(reinterpret_cast<void*>(start + size), tail);
#ifdef MADV_HUGEPAGE
  madvise(reinterpret_cast<void*>(start), size, MADV_HUGEPAGE);  // a hint; ignored where THP is off
#endif
  return reinterpret_cast<void*>(start);
}

// Freed large blocks by size. Reuse needs the same size (rounded to 2 MiB): training loops
// repeat their shapes. When a freed block does not fit under the cap, the whole cache is
// released first, so a working set that moves on does not leave stale sizes behind.
class LargeBlockCache {
 public:
  static LargeBlockCache& get() {
    static LargeBlockCache* cache = new LargeBlockCache();  // leaked: blocks may be freed during exit
    return *cache;
  }

  void* take(size_t size) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = blocks_.find(size);
    if (it == blocks_.end()) return nullptr;
    void* p = it->second;
    bytes_ -= size;
    blocks_.erase(it);
    return p;
  }

  void put(void* p, size_t size) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (bytes_ + size > cap_) release_locked();
    if (size > cap_) {
      munmap(p, size);
      return;
    }
    blocks_.emplace(size, p);
    bytes_ += size;
  }

  void release() {
    std::lock_guard<std::mutex> lock(mutex_);
    release_locked();
  }

 private:
  void release_locked() {
    for (auto& [size, p] : blocks_) munmap(p, size);
    blocks_.clear();
    bytes_ = 0;
  }

  std::mutex mutex_;
  std::multimap<size_t, void*> blocks_;
  size_t bytes_ = 0;
  const size_t cap_ = default_cache_cap();
};

#ifdef __GLIBC__
// Blocks below kLargeBlock come from malloc. By default glibc serves those above 128 KiB (and,
// once freed, above a threshold that moves) with fresh mappings and gives freed heap back to
// the system, so a training step's activations of a few hundred KiB to a few MiB page-fault on
// every first touch: a third of a small model's step time in a VM. Keeping them in the heap
// (mmap only from kLargeBlock, which has its own cache) and the heap's free memory mapped makes
// reuse free. A user's MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ settings win.
struct HostMallocSettings {
  HostMallocSettings() {
    if (!std::getenv("MALLOC_MMAP_THRESHOLD_")) mallopt(M_MMAP_THRESHOLD, int(kLargeBlock));
    if (!std::getenv("MALLOC_TRIM_THRESHOLD_")) mallopt(M_TRIM_THRESHOLD, 256 << 20);
  }
} host_malloc_settings;
#endif

}  // namespace

void* host_alloc(size_t nbytes) {
  if (nbytes < kLargeBlock) {
    // malloc, aligned by hand: aligned_alloc takes glibc's slow memalign path (~40 ns more per
    // block, a tenth of a small op). The pointer malloc gave sits just below the block.
    void* raw = std::malloc(nbytes + kAlign);
    if (!raw) return nullptr;
    uintptr_t block = (uintptr_t(raw) + kAlign) & ~uintptr_t(kAlign - 1);
    reinterpret_cast<void**>(block)[-1] = raw;
    return reinterpret_cast<void*>(block);
  }
  size_t size = large_size(nbytes);
  auto& cache = LargeBlockCache::get();
  if (void* p = cache.take(size)) return p;
  void* p = map_large(size);
  if (!p) {  // cached blocks may be what is missing
    cache.release();
    p = map_large(size);
  }
  return p;
}

void host_free(void* data, size_t nbytes) {
  if (!data) return;
  if (nbytes < kLargeBlock) {
    std::free(static_cast<void**>(data)[-1]);
    return;
  }
  LargeBlockCache::get().put(data, large_size(nbytes));
}

}  // namespace ignis
