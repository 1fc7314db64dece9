// Shared by CPU and CUDA code: IGNIS_HD marks functions compiled for host and device.
#pragma once
#if defined(__CUDACC__)
#define IGNIS_HD __host__ __device__ __forceinline__
#else
#define IGNIS_HD inline __attribute__((always_inline))
#endif
