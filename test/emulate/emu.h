// Host emulation of the CUDA execution model needed by the attention kernels: one block at a
// time, each thread a fiber; __syncthreads a block barrier; warp collectives
// (__shfl_xor_sync, ldmatrix, mma.sync) complete when all 32 lanes of the warp have arrived.
// The scheduler picks the next runnable fiber by a policy (lowest id first, highest first, or
// random), so that one warp can run far ahead of the others and missing barriers show up.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define EMU_ASAN 1
#endif

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(x)
#define __align__(n) __attribute__((aligned(n)))
#define __shared__

// Fiber switch without a signal-mask syscall (x86-64 System V): saves the callee-saved registers
// on the current stack, stores its pointer in *save and continues on `next`.
extern "C" void emu_switch(void** save, void* next);
asm(R"(
.text
.globl emu_switch
.type emu_switch, @function
emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
)");

namespace emu {

struct Dim3 {
  unsigned x, y, z;
};

enum class Policy { Forward, Reverse, Random };

constexpr int kMaxShared = 160 * 1024;
constexpr size_t kStack = 1 << 20;

// Fiber stacks, allocated once and reused by every block.
inline std::vector<std::unique_ptr<char[]>> g_stacks;

struct AsyncCopy {
  void* to;
  const void* from;
};

struct Fiber {
  std::vector<AsyncCopy> pending;  // cp.async copies issued and not yet waited for
  void* sp = nullptr;
  char* stack = nullptr;
  enum State { Runnable, Waiting, Done } state = Runnable;
  void* fake_stack = nullptr;
};

struct WarpSync {
  int arrived = 0;
  std::string kind;
  void* slots[32];
};

struct Block {
  int threads = 0;
  std::vector<Fiber> fibers;
  std::vector<WarpSync> warps;
  int barrier_arrived = 0;
  int current = -1;
  void* scheduler = nullptr;
  void* sched_fake = nullptr;
  const void* main_bottom = nullptr;
  size_t main_size = 0;
  std::function<void()> body;
  std::string error;
};

inline Block* g_block = nullptr;
inline Dim3 g_block_idx{0, 0, 0};
inline std::mt19937 g_rng(1);
inline long g_collectives = 0, g_barriers = 0;

inline Dim3 thread_idx() { return Dim3{unsigned(g_block->current), 0, 0}; }

[[noreturn]] inline void die(const std::string& what) {
  fprintf(stderr, "EMULATION ERROR: %s\n", what.c_str());
  abort();
}

inline void yield() {
  Block& b = *g_block;
  Fiber& f = b.fibers[size_t(b.current)];
#ifdef EMU_ASAN
  __sanitizer_start_switch_fiber(&f.fake_stack, b.main_bottom, b.main_size);
#endif
  emu_switch(&f.sp, b.scheduler);
#ifdef EMU_ASAN
  __sanitizer_finish_switch_fiber(f.fake_stack, nullptr, nullptr);
#endif
}

inline void fiber_entry() {
  Block& b = *g_block;
#ifdef EMU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &b.main_bottom, &b.main_size);
#endif
  b.body();
  if (!b.fibers[size_t(b.current)].pending.empty()) die("thread exits with cp.async copies not waited for");
  b.fibers[size_t(b.current)].pending.clear();
  b.fibers[size_t(b.current)].state = Fiber::Done;
  Fiber& f = b.fibers[size_t(b.current)];
#ifdef EMU_ASAN
  __sanitizer_start_switch_fiber(nullptr, b.main_bottom, b.main_size);
#endif
  emu_switch(&f.sp, b.scheduler);  // never resumed
  abort();
}

// cp.async: the copy happens at the issuing thread's next wait (so that a read of the
// destination before the wait and a barrier sees the old contents).
inline void cp_async(void* to, const void* from) { g_block->fibers[size_t(g_block->current)].pending.push_back({to, from}); }
inline void cp_async_wait_all() {
  auto& pending = g_block->fibers[size_t(g_block->current)].pending;
  for (const AsyncCopy& c : pending) memcpy(c.to, c.from, 16);
  pending.clear();
  yield();  // let other threads run in between
}

inline void syncthreads() {
  Block& b = *g_block;
  g_barriers++;
  b.fibers[size_t(b.current)].state = Fiber::Waiting;
  if (++b.barrier_arrived == b.threads) {
    b.barrier_arrived = 0;
    for (auto& f : b.fibers) {
      if (f.state == Fiber::Done) die("__syncthreads with exited threads");
      f.state = Fiber::Runnable;
    }
  }
  yield();
}

// Every lane of the warp calls this with the same `kind`; the last to arrive runs all(slots)
// (slots[l]: lane l's pointer), which reads every lane's inputs and then writes every lane's
// outputs.
inline void warp_collective(const std::string& kind, void* slot, const std::function<void(void**)>& all) {
  Block& b = *g_block;
  const int lane = b.current % 32;
  WarpSync& w = b.warps[size_t(b.current / 32)];
  if (w.arrived == 0) w.kind = kind;
  else if (w.kind != kind) die("divergent warp collective: " + w.kind + " vs " + kind);
  w.slots[lane] = slot;
  b.fibers[size_t(b.current)].state = Fiber::Waiting;
  if (++w.arrived == 32) {
    g_collectives++;
    all(w.slots);
    w.arrived = 0;
    for (int l = 0; l < 32; l++) b.fibers[size_t(b.current / 32 * 32 + l)].state = Fiber::Runnable;
  }
  yield();
}

// Runs body() as `threads` threads of block `block_idx` to completion under `policy`.
inline void run_block(int threads, unsigned block_idx, Policy policy, std::function<void()> body) {
  Block b;
  b.threads = threads;
  b.fibers.resize(size_t(threads));
  b.warps.resize(size_t((threads + 31) / 32));
  b.body = std::move(body);
  g_block = &b;
  g_block_idx = Dim3{block_idx, 0, 0};
  for (int t = 0; t < threads; t++) {
    Fiber& f = b.fibers[size_t(t)];
    while (g_stacks.size() <= size_t(t)) g_stacks.emplace_back(new char[kStack]);
    f.stack = g_stacks[size_t(t)].get();
#ifdef EMU_ASAN
    ASAN_UNPOISON_MEMORY_REGION(f.stack, kStack);  // frames of the last block's fibers never returned
#endif
    // the frame emu_switch pops: six callee-saved registers, then fiber_entry as the return
    // address at a 16-byte aligned slot (so that fiber_entry starts as if called)
    uintptr_t top = (reinterpret_cast<uintptr_t>(f.stack) + kStack - 64) & ~uintptr_t(15);
    void** frame = reinterpret_cast<void**>(top) - 6;
    for (int r = 0; r < 6; r++) frame[r] = nullptr;
    reinterpret_cast<void**>(top)[0] = reinterpret_cast<void*>(&fiber_entry);
    f.sp = frame;
  }
  std::vector<int> runnable;
  for (;;) {
    runnable.clear();
    bool all_done = true;
    for (int t = 0; t < threads; t++) {
      if (b.fibers[size_t(t)].state != Fiber::Done) all_done = false;
      if (b.fibers[size_t(t)].state == Fiber::Runnable) runnable.push_back(t);
    }
    if (all_done) break;
    if (runnable.empty()) die("deadlock: threads wait at a barrier or collective that not all reach");
    int pick = policy == Policy::Forward   ? runnable.front()
               : policy == Policy::Reverse ? runnable.back()
                                           : runnable[std::uniform_int_distribution<size_t>(0, runnable.size() - 1)(g_rng)];
    b.current = pick;
    Fiber& f = b.fibers[size_t(pick)];
#ifdef EMU_ASAN
    __sanitizer_start_switch_fiber(&b.sched_fake, f.stack, kStack);
#endif
    emu_switch(&b.scheduler, f.sp);
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(b.sched_fake, nullptr, nullptr);
#endif
  }
  g_block = nullptr;
}

}  // namespace emu

struct alignas(16) float4 {
  float x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return uint4{x, y, z, w}; }

#define threadIdx (::emu::thread_idx())
#define blockIdx (::emu::g_block_idx)
#define __syncthreads() ::emu::syncthreads()

template <typename V>
V __shfl_xor_sync(unsigned mask, V v, int lane_mask) {
  if (mask != 0xffffffffu) emu::die("__shfl_xor_sync: partial mask");
  struct Slot {
    V in, out;
  } slot{v, V()};
  emu::warp_collective("shfl_xor " + std::to_string(lane_mask), &slot, [&](void** slots) {
    V in[32];
    for (int l = 0; l < 32; l++) in[l] = static_cast<Slot*>(slots[l])->in;
    for (int l = 0; l < 32; l++) static_cast<Slot*>(slots[l])->out = in[l ^ lane_mask];
  });
  return slot.out;
}
