// The part of NCCL's C API that ignis calls, declared from NCCL's documentation (libnccl is
// opened at run time by cuda/loader.cc, so no NCCL header is needed to build). The enums are C
// enums (int-sized) in NCCL's ABI.
#pragma once
#include <cuda_runtime_api.h>
#include <climits>
#include <cstddef>

namespace ignis::cuda::nccl {

enum Result : int {
  Success = 0,
  UnhandledCudaError = 1,
  SystemError = 2,
  InternalError = 3,
  InvalidArgument = 4,
  InvalidUsage = 5,
  RemoteError = 6,
  InProgress = 7,
  Timeout = 8,  // NCCL 2.28 and later
};

enum DataType : int {
  Int8 = 0,
  Uint8 = 1,
  Int32 = 2,
  Uint32 = 3,
  Int64 = 4,
  Uint64 = 5,
  Float16 = 6,
  Float32 = 7,
  Float64 = 8,
  Bfloat16 = 9,
};

enum RedOp : int { Sum = 0, Prod = 1, Max = 2, Min = 3, Avg = 4 };

using Comm = struct ncclComm*;

// Opaque bytes made by rank 0 and handed to every rank (passed by value to the init call).
struct UniqueId {
  char internal[128];
};

// ncclConfig_t up to its splitShare field. NCCL starts from its own NCCL_CONFIG_INITIALIZER
// (every field unset), copies min(size, its sizeof) bytes over it, then resets the fields newer
// than `version` to unset: `size` must therefore end at split_share (kConfigSize), not at the
// struct's padding, whose 4 bytes would land on trafficClass.
struct Config {
  size_t size;
  unsigned int magic;
  unsigned int version;
  int blocking;
  int cga_cluster_size;
  int min_ctas;
  int max_ctas;
  const char* net_name;
  int split_share;
};
constexpr size_t kConfigSize = offsetof(Config, split_share) + sizeof(int);
static_assert(kConfigSize == 44, "ncclConfig_t's fields up to splitShare span 44 bytes on LP64");
constexpr unsigned int kConfigMagic = 0xcafebeef;
constexpr unsigned int kConfigVersion = 21800;  // NCCL 2.18.0: the first with every field above
constexpr int kUnsetInt = INT_MIN;              // a field left to NCCL's default

// NCCL 2.9 and later number versions major * 10000 + minor * 100 + patch. Non-blocking
// communicators (ncclCommInitRankConfig) came with 2.14.
constexpr int kMinVersion = 21400;

using GetVersion = Result (*)(int* version);
using GetUniqueId = Result (*)(UniqueId* id);
using CommInitRankConfig = Result (*)(Comm* comm, int nranks, UniqueId id, int rank, Config* config);
using CommGetAsyncError = Result (*)(Comm comm, Result* async_error);
using CommAbort = Result (*)(Comm comm);
using GetErrorString = const char* (*)(Result result);
using GetLastError = const char* (*)(Comm comm);
using AllReduce = Result (*)(const void* send, void* recv, size_t count, DataType type, RedOp op, Comm comm,
                             cudaStream_t stream);
using Broadcast = Result (*)(const void* send, void* recv, size_t count, DataType type, int root, Comm comm,
                             cudaStream_t stream);
using ReduceScatter = Result (*)(const void* send, void* recv, size_t recv_count, DataType type, RedOp op, Comm comm,
                                 cudaStream_t stream);
using AllGather = Result (*)(const void* send, void* recv, size_t send_count, DataType type, Comm comm,
                             cudaStream_t stream);
using Send = Result (*)(const void* send, size_t count, DataType type, int peer, Comm comm, cudaStream_t stream);
using Recv = Result (*)(void* recv, size_t count, DataType type, int peer, Comm comm, cudaStream_t stream);

}  // namespace ignis::cuda::nccl
