// Host memory behind CPU tensor storage.
//
// Small blocks come from the C heap, 64-byte aligned for vector loads. Large blocks (4 MiB and
// up) are mapped 2 MiB-aligned with transparent huge pages requested, and freed large blocks are
// kept for reuse up to a cap. Both matter for big elementwise ops, whose outputs are fresh: on
// a virtual machine, first touching 16 MB costs about 8 ms with 4 KiB pages against under 1 ms
// with huge pages, and streaming over huge pages runs about twice as fast (fewer TLB misses).
// The cache makes a loop that frees and reallocates the same sizes fault only once.
//
// IGNIS_HOST_CACHE_MB sets the cap of the cache (default: 1/8 of RAM, at most 1024; 0 disables it).
#pragma once
#include <cstddef>

namespace ignis {

// A block of at least nbytes (64-byte aligned), or nullptr when the system has no memory left.
void* host_alloc(size_t nbytes);
// Returns a block from host_alloc; nbytes must be the size it was asked with.
void host_free(void* data, size_t nbytes);

}  // namespace ignis
