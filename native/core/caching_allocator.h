// The bookkeeping of a caching device allocator, as PyTorch's CUDA caching allocator does it:
// memory comes from the device in segments, which are cut into blocks; a freed block goes back
// to a pool of its stream (to be reused by the next request of a size it fits, best fit) and is
// merged with free neighbours of its segment, so that a training step that repeats its
// allocations does not call the device's malloc again. It knows nothing of CUDA: the device's
// malloc and free come in as a RawDeviceMemory, so the CPU tests drive it with a fake device.
//
// - Sizes round up to 512 bytes. Requests up to 1 MiB come from the small pool, in 2 MiB
//   segments; larger ones from the large pool, in 20 MiB segments below 10 MiB and in segments
//   of their own size rounded up to 2 MiB above.
// - A block is split when the rest is worth keeping: 512 bytes or more in the small pool, more
//   than 1 MiB in the large pool.
// - Pools are per stream: a block freed on a stream is reused only by requests on that stream,
//   where stream order makes the reuse safe without a synchronisation.
// - When the device has no memory left, every cached segment with no block in use is released
//   and the request retried; if it still fails, ERR_OOM with the sizes and the allocator's state.
// - Private pools (for CUDA graphs) take the place of a stream: what is allocated while a graph
//   is captured comes from the graph's pool, whose blocks no other pool reuses and whose
//   segments stay reserved (emptyCache leaves them) until the pool is released; then its free
//   segments go back to the device, and the others as soon as their last block is freed.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

namespace ignis {

// A device's own allocation calls.
class RawDeviceMemory {
 public:
  virtual ~RawDeviceMemory() = default;
  // nbytes of device memory, or nullptr when the device has none left (other failures throw).
  virtual void* malloc(size_t nbytes) = 0;
  // Frees what malloc returned, once the work queued on it is done. Never throws.
  virtual void free(void* data) noexcept = 0;
  // "N GiB in all, M GiB free" for an out-of-memory message, or "" when unknown.
  virtual std::string describe() noexcept { return ""; }
};

// A device for tests: hands out addresses of an imaginary address space (never touched), up to
// `capacity` bytes in use, with gaps so that no two allocations are adjacent.
std::unique_ptr<RawDeviceMemory> fake_device_memory(size_t capacity);

struct AllocatorStats {
  int64_t allocated = 0;       // bytes in blocks in use (rounded sizes)
  int64_t reserved = 0;        // bytes in segments taken from the device
  int64_t peak_allocated = 0;  // highest `allocated` since the start or resetPeak
  int64_t peak_reserved = 0;
  int64_t active_blocks = 0;   // blocks in use
  int64_t segments = 0;        // segments held
  int64_t device_mallocs = 0;  // calls to the device's malloc that succeeded
  int64_t device_frees = 0;    // segments given back to the device
  int64_t oom_retries = 0;     // times the cache was released to retry a failed malloc
};

// One segment and its blocks in address order, for tests and diagnostics.
struct SegmentInfo {
  uintptr_t address;
  size_t size;
  uintptr_t stream;
  bool small;
  struct Block {
    uintptr_t address;
    size_t size;
    bool allocated;
  };
  std::vector<Block> blocks;
};

class CachingAllocator {
 public:
  static constexpr size_t kMinBlock = 512;
  static constexpr size_t kSmallSize = size_t(1) << 20;
  static constexpr size_t kSmallSegment = size_t(2) << 20;
  static constexpr size_t kMinLargeAlloc = size_t(10) << 20;
  static constexpr size_t kLargeSegment = size_t(20) << 20;
  static constexpr size_t kRoundLarge = size_t(2) << 20;
  // Private pool keys: above every user-space address (and exact in a JS number).
  static constexpr uintptr_t kPrivatePoolBase = uintptr_t(1) << 48;

  // `device` names the device in messages ("cuda:0").
  CachingAllocator(std::unique_ptr<RawDeviceMemory> raw, std::string device);
  ~CachingAllocator();  // gives every segment back
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // A block of at least nbytes for work on `stream`; nullptr for 0 bytes. Throws ERR_OOM.
  void* allocate(size_t nbytes, uintptr_t stream);
  // Returns a block from allocate to its pool (nullptr and unknown pointers are ignored).
  void free(void* data) noexcept;
  // Gives every segment with no block in use back to the device (those of live private pools stay).
  void empty_cache();
  // A new private pool: a key to allocate from in place of a stream.
  uintptr_t create_private_pool();
  // Ends a private pool: its segments go back to the device once none of their blocks is in use.
  void release_private_pool(uintptr_t pool);
  AllocatorStats stats() const;
  void reset_peak();
  std::vector<SegmentInfo> segments() const;

 private:
  struct Block {
    uintptr_t stream;
    size_t size;
    char* data;
    bool small;
    bool allocated = false;
    Block* prev = nullptr;  // neighbours within the segment
    Block* next = nullptr;
  };
  struct ByStreamSize {
    bool operator()(const Block* a, const Block* b) const;
  };
  using Pool = std::set<Block*, ByStreamSize>;

  Pool& pool_of(bool small) { return small ? small_pool_ : large_pool_; }
  Block* best_fit(Pool& pool, size_t size, uintptr_t stream);
  Block* new_segment(size_t size, bool small, uintptr_t stream, size_t requested);
  void split(Block* block, size_t size);
  void release_cached();
  // Gives back every segment with no block in use for which chosen(head) holds.
  template <typename Pred>
  void release_free_segments(Pred&& chosen);
  // Gives a segment (head, with no block in use) back to the device.
  void release_segment(Block* head);
  [[noreturn]] void fail_out_of_memory(size_t requested, size_t segment);

  std::unique_ptr<RawDeviceMemory> raw_;
  const std::string device_;
  mutable std::mutex mutex_;
  Pool small_pool_, large_pool_;
  std::unordered_map<char*, Block*> in_use_;
  std::vector<Block*> segment_heads_;  // the first block of every segment
  std::set<uintptr_t> live_pools_, released_pools_;  // private pools
  uintptr_t pools_made_ = 0;
  AllocatorStats stats_;
};

}  // namespace ignis
