#include "core/caching_allocator.h"

#include <algorithm>
#include <cstdio>
#include "core/error.h"

namespace ignis {
namespace {

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

std::string bytes_str(size_t n) {
  char buf[32];
  if (n >= (size_t(1) << 30)) std::snprintf(buf, sizeof buf, "%.2f GiB", double(n) / double(size_t(1) << 30));
  else if (n >= (size_t(1) << 20)) std::snprintf(buf, sizeof buf, "%.2f MiB", double(n) / double(size_t(1) << 20));
  else std::snprintf(buf, sizeof buf, "%zu bytes", n);
  return buf;
}

class FakeDeviceMemory : public RawDeviceMemory {
 public:
  explicit FakeDeviceMemory(size_t capacity) : capacity_(capacity) {}
  void* malloc(size_t nbytes) override {
    if (nbytes > capacity_ - used_) return nullptr;
    uintptr_t address = next_;
    next_ += nbytes + (size_t(1) << 20);
    used_ += nbytes;
    sizes_[address] = nbytes;
    return reinterpret_cast<void*>(address);
  }
  void free(void* data) noexcept override {
    auto it = sizes_.find(uintptr_t(data));
    if (it == sizes_.end()) return;
    used_ -= it->second;
    sizes_.erase(it);
  }
  std::string describe() noexcept override {
    return std::to_string(capacity_) + " bytes in all, " + std::to_string(capacity_ - used_) + " free";
  }

 private:
  const size_t capacity_;
  size_t used_ = 0;
  uintptr_t next_ = uintptr_t(1) << 32;
  std::unordered_map<uintptr_t, size_t> sizes_;
};

}  // namespace

std::unique_ptr<RawDeviceMemory> fake_device_memory(size_t capacity) { return std::make_unique<FakeDeviceMemory>(capacity); }

bool CachingAllocator::ByStreamSize::operator()(const Block* a, const Block* b) const {
  if (a->stream != b->stream) return a->stream < b->stream;
  if (a->size != b->size) return a->size < b->size;
  return a->data < b->data;
}

CachingAllocator::CachingAllocator(std::unique_ptr<RawDeviceMemory> raw, std::string device)
    : raw_(std::move(raw)), device_(std::move(device)) {}

CachingAllocator::~CachingAllocator() {
  for (Block* head : segment_heads_) {
    raw_->free(head->data);
    for (Block* b = head; b;) {
      Block* next = b->next;
      delete b;
      b = next;
    }
  }
}

CachingAllocator::Block* CachingAllocator::best_fit(Pool& pool, size_t size, uintptr_t stream) {
  Block key{stream, size, nullptr, false};
  auto it = pool.lower_bound(&key);
  if (it == pool.end() || (*it)->stream != stream) return nullptr;
  Block* block = *it;
  pool.erase(it);
  return block;
}

CachingAllocator::Block* CachingAllocator::new_segment(size_t size, bool small, uintptr_t stream, size_t requested) {
  void* data = raw_->malloc(size);
  if (!data) {
    // Cached segments may be what the device is missing: give them back and try once more.
    stats_.oom_retries++;
    release_cached();
    data = raw_->malloc(size);
    if (!data) fail_out_of_memory(requested, size);
  }
  stats_.device_mallocs++;
  stats_.segments++;
  stats_.reserved += int64_t(size);
  stats_.peak_reserved = std::max(stats_.peak_reserved, stats_.reserved);
  Block* block = new Block{stream, size, static_cast<char*>(data), small};
  segment_heads_.push_back(block);
  return block;
}

void CachingAllocator::split(Block* block, size_t size) {
  const size_t rest = block->size - size;
  const bool worth = block->small ? rest >= kMinBlock : rest > kSmallSize;
  if (!worth) return;
  Block* tail = new Block{block->stream, rest, block->data + size, block->small};
  tail->prev = block;
  tail->next = block->next;
  if (block->next) block->next->prev = tail;
  block->next = tail;
  block->size = size;
  pool_of(tail->small).insert(tail);
}

void* CachingAllocator::allocate(size_t nbytes, uintptr_t stream) {
  if (nbytes == 0) return nullptr;
  std::lock_guard<std::mutex> lock(mutex_);
  const size_t size = round_up(nbytes, kMinBlock);
  const bool small = size <= kSmallSize;
  Block* block = best_fit(pool_of(small), size, stream);
  if (!block) {
    const size_t segment = small ? kSmallSegment : size < kMinLargeAlloc ? kLargeSegment : round_up(size, kRoundLarge);
    block = new_segment(segment, small, stream, nbytes);
  }
  split(block, size);
  block->allocated = true;
  in_use_.emplace(block->data, block);
  stats_.allocated += int64_t(block->size);
  stats_.peak_allocated = std::max(stats_.peak_allocated, stats_.allocated);
  stats_.active_blocks++;
  return block->data;
}

void CachingAllocator::free(void* data) noexcept {
  if (!data) return;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = in_use_.find(static_cast<char*>(data));
  if (it == in_use_.end()) return;
  Block* block = it->second;
  in_use_.erase(it);
  block->allocated = false;
  stats_.allocated -= int64_t(block->size);
  stats_.active_blocks--;
  Pool& pool = pool_of(block->small);
  // merge with free neighbours: the lower block absorbs the higher one
  if (Block* next = block->next; next && !next->allocated) {
    pool.erase(next);
    block->size += next->size;
    block->next = next->next;
    if (next->next) next->next->prev = block;
    delete next;
  }
  if (Block* prev = block->prev; prev && !prev->allocated) {
    pool.erase(prev);
    prev->size += block->size;
    prev->next = block->next;
    if (block->next) block->next->prev = prev;
    delete block;
    block = prev;
  }
  // the whole segment of a released private pool is free: give it back
  if (!block->prev && !block->next && released_pools_.count(block->stream)) {
    release_segment(block);
    segment_heads_.erase(std::find(segment_heads_.begin(), segment_heads_.end(), block));
    delete block;
    return;
  }
  pool.insert(block);
}

uintptr_t CachingAllocator::create_private_pool() {
  std::lock_guard<std::mutex> lock(mutex_);
  uintptr_t pool = kPrivatePoolBase + ++pools_made_;
  live_pools_.insert(pool);
  return pool;
}

void CachingAllocator::release_private_pool(uintptr_t pool) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!live_pools_.erase(pool)) return;
  released_pools_.insert(pool);
  release_free_segments([&](const Block* head) { return head->stream == pool; });
}

void CachingAllocator::release_segment(Block* head) {
  raw_->free(head->data);
  stats_.device_frees++;
  stats_.segments--;
  stats_.reserved -= int64_t(head->size);
}

template <typename Pred>
void CachingAllocator::release_free_segments(Pred&& chosen) {
  std::vector<Block*> kept;
  for (Block* head : segment_heads_) {
    // a block in use, or a free block beside one
    if (head->allocated || head->next || !chosen(head)) {
      kept.push_back(head);
      continue;
    }
    pool_of(head->small).erase(head);
    release_segment(head);
    delete head;
  }
  segment_heads_ = std::move(kept);
}

void CachingAllocator::release_cached() {
  // not the memory a live graph replays into
  release_free_segments([&](const Block* head) { return !live_pools_.count(head->stream); });
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mutex_);
  release_cached();
}

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void CachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.peak_allocated = stats_.allocated;
  stats_.peak_reserved = stats_.reserved;
}

std::vector<SegmentInfo> CachingAllocator::segments() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<SegmentInfo> out;
  for (const Block* head : segment_heads_) {
    SegmentInfo s{uintptr_t(head->data), 0, head->stream, head->small, {}};
    for (const Block* b = head; b; b = b->next) {
      s.size += b->size;
      s.blocks.push_back({uintptr_t(b->data), b->size, b->allocated});
    }
    out.push_back(std::move(s));
  }
  std::sort(out.begin(), out.end(), [](const SegmentInfo& a, const SegmentInfo& b) { return a.address < b.address; });
  return out;
}

void CachingAllocator::fail_out_of_memory(size_t requested, size_t segment) {
  std::string device_state = raw_->describe();
  fail(ERR_OOM, device_, ": out of memory allocating ", bytes_str(requested), " (a segment of ", bytes_str(segment),
       "): ignis has ", bytes_str(size_t(stats_.allocated)), " allocated in ", stats_.active_blocks, " blocks and ",
       bytes_str(size_t(stats_.reserved)), " reserved in ", stats_.segments,
       " segments (cached segments were released and the allocation retried)",
       device_state.empty() ? "" : "; the device has ", device_state,
       ". Free tensors (dispose, tidy) or use smaller batches; ignis.cuda.memoryStats() shows the state");
}

}  // namespace ignis
