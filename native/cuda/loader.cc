#include "cuda/loader.h"

#include <dlfcn.h>
#include <glob.h>
#include <library_types.h>
#include <unistd.h>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include "core/error.h"

namespace ignis::cuda {
namespace {

struct Spec {
  const char* name;   // as ignis.cuda.libraries() names it
  const char* title;  // as messages name it
  std::vector<const char*> files;
  std::vector<const char*> wheel_folders;  // relative to a site-packages folder
  const char* wheel;                       // the pip package that has it
};

// CUDA 13's wheels gather their libraries in nvidia/cu13/lib; CUDA 12's keep one folder each.
const Spec kSpecs[] = {
    {"cublasLt", "cuBLASLt", {"libcublasLt.so.13", "libcublasLt.so.12"}, {"nvidia/cu13/lib", "nvidia/cublas/lib"}, "nvidia-cublas"},
    {"cublas", "cuBLAS", {"libcublas.so.13", "libcublas.so.12"}, {"nvidia/cu13/lib", "nvidia/cublas/lib"}, "nvidia-cublas"},
    {"nccl", "NCCL", {"libnccl.so.2"}, {"nvidia/nccl/lib", "nvidia/cu13/lib"}, "nvidia-nccl-cu13"},
};
constexpr int kLibraries = 3;

struct Loaded {
  bool tried = false;
  void* handle = nullptr;
  std::string path, folder, error;
};

std::mutex g_mutex;
Loaded g_loaded[kLibraries];

std::vector<std::string> split_path(const char* value) {
  std::vector<std::string> out;
  if (!value) return out;
  std::string s(value);
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(':', start);
    if (end == std::string::npos) end = s.size();
    if (end > start) out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

bool is_dir(const std::string& path) { return access(path.c_str(), X_OK) == 0; }

void add_unique(std::vector<std::string>& list, const std::string& item) {
  for (const std::string& s : list)
    if (s == item) return;
  list.push_back(item);
}

void add_glob(std::vector<std::string>& out, const std::string& pattern) {
  glob_t g;
  if (glob(pattern.c_str(), GLOB_ONLYDIR, nullptr, &g) == 0)
    for (size_t i = 0; i < g.gl_pathc; i++) add_unique(out, g.gl_pathv[i]);
  globfree(&g);
}

// The site-packages folders of `python3` on PATH, asked once (none when it is missing).
std::vector<std::string> python_site_folders() {
  std::vector<std::string> out;
  FILE* pipe = popen(
      "python3 -c \"import site, sys; print('\\n'.join(site.getsitepackages() + [site.getusersitepackages()] + "
      "[p for p in sys.path if p.endswith('-packages')]))\" "
      "2>/dev/null",
      "r");
  if (!pipe) return out;
  char line[4096];
  while (std::fgets(line, sizeof line, pipe)) {
    std::string s(line);
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    if (!s.empty() && s[0] == '/' && is_dir(s)) add_unique(out, s);
  }
  pclose(pipe);
  return out;
}

// Every site-packages folder where nvidia-* wheels may be installed.
const std::vector<std::string>& site_folders() {
  static const std::vector<std::string> folders = [] {
    std::vector<std::string> out;
    std::vector<std::string> prefixes = {"/usr/lib", "/usr/local/lib", "/opt/conda/lib"};
    if (const char* home = std::getenv("HOME")) prefixes.push_back(std::string(home) + "/.local/lib");
    if (const char* venv = std::getenv("VIRTUAL_ENV")) prefixes.push_back(std::string(venv) + "/lib");
    if (const char* conda = std::getenv("CONDA_PREFIX")) prefixes.push_back(std::string(conda) + "/lib");
    for (const std::string& prefix : prefixes) {
      add_glob(out, prefix + "/python3*/site-packages");
      add_glob(out, prefix + "/python3*/dist-packages");
    }
    add_glob(out, "/usr/lib/python3/dist-packages");
    for (const std::string& s : python_site_folders()) add_unique(out, s);
    return out;
  }();
  return folders;
}

// A place to look: a folder, and how the message names where it came from.
struct Place {
  std::string folder;
  std::string origin;
};

std::vector<Place> places(const Spec& spec, const std::string& preferred) {
  std::vector<Place> out;
  if (!preferred.empty()) out.push_back({preferred, "the folder of cuBLASLt"});
  for (const std::string& f : split_path(std::getenv("IGNIS_CUDA_LIBS"))) out.push_back({f, "IGNIS_CUDA_LIBS"});
  for (const std::string& f : split_path(std::getenv("LD_LIBRARY_PATH"))) out.push_back({f, "LD_LIBRARY_PATH"});
  for (const std::string& site : site_folders())
    for (const char* sub : spec.wheel_folders) out.push_back({site + "/" + sub, "Python wheels"});
  std::vector<std::string> toolkits;
  for (const char* var : {"CUDA_HOME", "CUDA_PATH"})
    if (const char* v = std::getenv(var)) toolkits.push_back(std::string(v) + "/lib64");
  toolkits.push_back("/usr/local/cuda/lib64");
  toolkits.push_back("/usr/local/cuda/targets/x86_64-linux/lib");
  for (const std::string& f : toolkits) out.push_back({f, "CUDA toolkit"});
  return out;
}

// Opens the library once; on failure g_loaded[i].error says what was looked for and where.
void load_locked(int i) {
  Loaded& lib = g_loaded[i];
  if (lib.tried) return;
  lib.tried = true;
  const Spec& spec = kSpecs[i];
  // cuBLAS needs cuBLASLt: open that first, and look for cuBLAS beside it before anywhere else.
  std::string preferred;
  if (i == int(Library::Cublas)) {
    load_locked(int(Library::CublasLt));
    preferred = g_loaded[int(Library::CublasLt)].folder;
  }
  std::string files, failures;
  for (const char* file : spec.files) files += std::string(files.empty() ? "" : " or ") + file;
  auto try_open = [&](const std::string& path, const std::string& folder) {
    void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (h) {
      lib.handle = h;
      lib.path = path;
      lib.folder = folder;
      return true;
    }
    const char* why = dlerror();
    failures += "; found " + path + " but it did not load: " + (why ? why : "unknown error");
    return false;
  };
  std::string looked = split_path(std::getenv("IGNIS_CUDA_LIBS")).empty() ? "IGNIS_CUDA_LIBS: (unset)" : "";
  std::string last_origin;
  for (const Place& place : places(spec, preferred)) {
    if (place.origin != last_origin) looked += std::string(looked.empty() ? "" : "; ") + place.origin + ":";
    else looked += ",";
    looked += " " + place.folder;
    last_origin = place.origin;
    if (!is_dir(place.folder)) continue;
    for (const char* file : spec.files) {
      std::string path = place.folder + "/" + file;
      if (access(path.c_str(), F_OK) == 0 && try_open(path, place.folder)) return;
    }
  }
  looked += "; the system's library path (ld.so.cache)";
  for (const char* file : spec.files) {
    if (void* h = dlopen(file, RTLD_NOW | RTLD_LOCAL)) {
      lib.handle = h;
      lib.path = file;
      return;
    }
  }
  lib.error = std::string(spec.title) + " (" + files + ") was not found. Looked in " + looked + failures +
              ". Install the " + spec.wheel + " Python wheel or the CUDA toolkit, or set IGNIS_CUDA_LIBS to the folder that holds it";
}

void* handle(Library library) {
  std::lock_guard<std::mutex> lock(g_mutex);
  load_locked(int(library));
  const Loaded& lib = g_loaded[int(library)];
  if (!lib.handle) fail(ERR_DEVICE, lib.error);
  return lib.handle;
}

std::string version_of(Library library) {
  char buf[48];
  switch (library) {
    case Library::CublasLt: {
      auto get = reinterpret_cast<size_t (*)()>(optional_symbol(library, "cublasLtGetVersion"));
      if (!get) return "";
      size_t v = get();
      std::snprintf(buf, sizeof buf, "%zu.%zu.%zu", v / 10000, v % 10000 / 100, v % 100);
      return buf;
    }
    case Library::Cublas: {
      auto get = reinterpret_cast<int (*)(libraryPropertyType, int*)>(optional_symbol(library, "cublasGetProperty"));
      int major = 0, minor = 0, patch = 0;
      if (!get || get(MAJOR_VERSION, &major) || get(MINOR_VERSION, &minor) || get(PATCH_LEVEL, &patch)) return "";
      std::snprintf(buf, sizeof buf, "%d.%d.%d", major, minor, patch);
      return buf;
    }
    case Library::Nccl: {
      auto get = reinterpret_cast<int (*)(int*)>(optional_symbol(library, "ncclGetVersion"));
      int v = 0;
      if (!get || get(&v)) return "";
      // NCCL 2.9 and later: major * 10000 + minor * 100 + patch; before: major * 1000 + minor * 100 + patch
      int major = v >= 10000 ? v / 10000 : v / 1000;
      int minor = v >= 10000 ? v % 10000 / 100 : v % 1000 / 100;
      std::snprintf(buf, sizeof buf, "%d.%d.%d", major, minor, v % 100);
      return buf;
    }
  }
  return "";
}

}  // namespace

void* symbol(Library library, const char* name) {
  void* h = handle(library);
  void* fn = dlsym(h, name);
  if (!fn)
    fail(ERR_DEVICE, kSpecs[int(library)].title, " at ", g_loaded[int(library)].path, " has no function ", name,
         " (too old a version?)");
  return fn;
}

void* optional_symbol(Library library, const char* name) { return dlsym(handle(library), name); }

std::vector<CudaLibraryInfo> library_report() {
  std::vector<CudaLibraryInfo> out;
  for (int i = 0; i < kLibraries; i++) {
    Library library = Library(i);
    {
      std::lock_guard<std::mutex> lock(g_mutex);
      load_locked(i);
    }
    const Loaded& lib = g_loaded[i];
    out.push_back({kSpecs[i].name, lib.handle != nullptr, lib.path, lib.handle ? version_of(library) : "", lib.error});
  }
  return out;
}

}  // namespace ignis::cuda
