// Emulated replacement of native/cuda/mma.cuh: the same functions, each a warp collective whose
// register fragments follow the PTX ISA tables for mma.m16n8k16 (.bf16/.f16, f32 accumulators)
// and ldmatrix.m8n8.x4(.trans).b16, written from those tables (not from the kernels' use);
// cp.async copies deferred to the issuing thread's wait.
#pragma once
#include <cstdint>
#include <type_traits>
#include "kernels/half.h"
#include "../../emu.h"

namespace ignis::cuda {

// The dynamic shared memory of the block being run (the kernels declare it extern).
alignas(16) unsigned char mma_shared[emu::kMaxShared];

template <typename T>
float element_value(uint16_t bits) {
  return std::is_same_v<T, bfloat16> ? bf16_to_float(bits) : f16_to_float(bits);
}
inline uint16_t half_of(uint32_t reg, int h) { return uint16_t(h ? reg >> 16 : reg & 0xffffu); }

template <typename T>
void mma_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  static_assert(std::is_same_v<T, bfloat16> || std::is_same_v<T, float16>);
  struct Slot {
    float* d;
    uint32_t a[4], b[2];
  } slot{d, {a[0], a[1], a[2], a[3]}, {b0, b1}};
  emu::warp_collective(std::is_same_v<T, bfloat16> ? "mma bf16" : "mma f16", &slot, [](void** slots) {
    float A[16][16], B[16][8], C[16][8];
    bool seenA[16][16] = {}, seenB[16][8] = {}, seenC[16][8] = {};
    for (int lane = 0; lane < 32; lane++) {
      const Slot& s = *static_cast<Slot*>(slots[lane]);
      const int group = lane >> 2, tig = lane % 4;
      // A: elements a0..a7, two per register, low half first:
      // row = groupID for a0,a1,a4,a5, groupID + 8 for a2,a3,a6,a7;
      // col = tig * 2 + (i & 1) for i < 4, tig * 2 + (i & 1) + 8 for i >= 4.
      for (int i = 0; i < 8; i++) {
        const int row = (i == 0 || i == 1 || i == 4 || i == 5) ? group : group + 8;
        const int col = tig * 2 + (i & 1) + (i >= 4 ? 8 : 0);
        A[row][col] = element_value<T>(half_of(s.a[i / 2], i % 2));
        seenA[row][col] = true;
      }
      // B: b0..b3: row = tig * 2 + (i & 1) for i < 2, + 8 for i >= 2; col = groupID.
      for (int i = 0; i < 4; i++) {
        const int row = tig * 2 + (i & 1) + (i >= 2 ? 8 : 0), col = group;
        B[row][col] = element_value<T>(half_of(s.b[i / 2], i % 2));
        seenB[row][col] = true;
      }
      // C/D: c0..c3: row = groupID for c0,c1, groupID + 8 for c2,c3; col = tig * 2 + (i & 1).
      for (int i = 0; i < 4; i++) {
        const int row = i < 2 ? group : group + 8, col = tig * 2 + (i & 1);
        C[row][col] = s.d[i];
        seenC[row][col] = true;
      }
    }
    for (int r = 0; r < 16; r++)
      for (int c = 0; c < 16; c++)
        if (!seenA[r][c] || (c < 8 && (!seenB[r][c] || !seenC[r][c]))) emu::die("mma: fragment layout does not cover the tile");
    float D[16][8];
    for (int r = 0; r < 16; r++)
      for (int c = 0; c < 8; c++) {
        double sum = 0;  // products of 16-bit values are exact; the sum rounds once
        for (int k = 0; k < 16; k++) sum += double(A[r][k]) * double(B[k][c]);
        D[r][c] = float(sum + double(C[r][c]));
      }
    for (int lane = 0; lane < 32; lane++) {
      Slot& s = *static_cast<Slot*>(slots[lane]);
      const int group = lane >> 2, tig = lane % 4;
      for (int i = 0; i < 4; i++) s.d[i] = D[i < 2 ? group : group + 8][tig * 2 + (i & 1)];
    }
  });
}

// ldmatrix.m8n8.x4(.trans).b16: lanes 8m..8m+7 hold the addresses of rows 0..7 of matrix m; each
// row is 8 consecutive 16-bit elements at a 16-byte aligned shared address. Without .trans,
// register m of lane l holds elements (l / 4, 2 (l % 4)) and (l / 4, 2 (l % 4) + 1) of matrix m;
// with .trans, (2 (l % 4), l / 4) and (2 (l % 4) + 1, l / 4).
inline void ldmatrix_emulated(uint32_t (&r)[4], const void* row, bool trans) {
  struct Slot {
    uint32_t* r;
    const unsigned char* address;
  } slot{r, static_cast<const unsigned char*>(row)};
  emu::warp_collective(trans ? "ldmatrix.x4.trans" : "ldmatrix.x4", &slot, [trans](void** slots) {
    uint16_t m[4][8][8];
    for (int lane = 0; lane < 32; lane++) {
      const unsigned char* p = static_cast<Slot*>(slots[lane])->address;
      if (p < mma_shared || p + 16 > mma_shared + sizeof mma_shared) emu::die("ldmatrix: address outside shared memory");
      if ((p - mma_shared) % 16 != 0) emu::die("ldmatrix: row address not 16-byte aligned");
      memcpy(m[lane / 8][lane % 8], p, 16);
    }
    for (int lane = 0; lane < 32; lane++) {
      Slot& s = *static_cast<Slot*>(slots[lane]);
      const int row = lane / 4, word = lane % 4;
      for (int k = 0; k < 4; k++) {
        const uint16_t lo = trans ? m[k][2 * word][row] : m[k][row][2 * word];
        const uint16_t hi = trans ? m[k][2 * word + 1][row] : m[k][row][2 * word + 1];
        s.r[k] = uint32_t(lo) | uint32_t(hi) << 16;
      }
    }
  });
}
inline void ldmatrix_x4(uint32_t (&r)[4], const void* row) { ldmatrix_emulated(r, row, false); }
inline void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row) { ldmatrix_emulated(r, row, true); }

// cp.async.cg.shared.global of 16 bytes, and cp.async.wait_all.
inline void cp_async_16(void* shared, const void* global) {
  const unsigned char* to = static_cast<const unsigned char*>(shared);
  if (to < mma_shared || to + 16 > mma_shared + sizeof mma_shared || (to - mma_shared) % 16 != 0)
    emu::die("cp.async: destination outside shared memory or not 16-byte aligned");
  if (reinterpret_cast<uintptr_t>(global) % 16 != 0) emu::die("cp.async: source not 16-byte aligned");
  emu::cp_async(shared, global);
}
inline void cp_async_wait_all() { emu::cp_async_wait_all(); }

// cvt.rn.bf16x2.f32 / cvt.rn.f16x2.f32: round to nearest even, lo in the low half.
template <typename T>
uint32_t pack_pair(float lo, float hi) {
  return uint32_t(T(lo).bits) | uint32_t(T(hi).bits) << 16;
}

}  // namespace ignis::cuda
