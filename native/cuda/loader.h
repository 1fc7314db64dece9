// cuBLAS, cuBLASLt and NCCL, opened with dlopen at first use rather than linked, so that the
// addon builds with nvcc alone and loads on machines without them. Each is looked for, in order:
//   1. the folders in IGNIS_CUDA_LIBS (':'-separated),
//   2. the folders in LD_LIBRARY_PATH,
//   3. the nvidia-* Python wheels: nvidia/cu13/lib, nvidia/cublas/lib, nvidia/nccl/lib under the
//      site-packages folders of the usual Python installs, of $VIRTUAL_ENV and $CONDA_PREFIX, and
//      of the `python3` on PATH (asked once),
//   4. the CUDA toolkit ($CUDA_HOME, /usr/local/cuda),
//   5. the system's library path (ld.so.cache).
// A library that cannot be opened raises ERR_DEVICE naming it and every place looked.
#pragma once
#include <vector>
#include "core/cuda_runtime.h"

namespace ignis::cuda {

enum class Library { CublasLt = 0, Cublas, Nccl };

// The function `name` of the library, opening it at first use; ERR_DEVICE when the library
// cannot be opened or lacks the function.
void* symbol(Library library, const char* name);
// As symbol(), but nullptr when the function is missing (for optional entry points).
void* optional_symbol(Library library, const char* name);

template <typename Fn>
Fn function(Library library, const char* name) {
  return reinterpret_cast<Fn>(symbol(library, name));
}

// Opens every library not tried yet and reports each (ignis.cuda.libraries()).
std::vector<CudaLibraryInfo> library_report();

}  // namespace ignis::cuda
