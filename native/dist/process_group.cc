#include "dist/process_group.h"

namespace ignis::dist {

void Work::wait() {
  std::unique_lock<std::mutex> lock(m_);
  cv_.wait(lock, [&] { return done_; });
}

void Work::finish(const char* code, std::string message) {
  {
    std::lock_guard<std::mutex> lock(m_);
    code_ = code;
    message_ = std::move(message);
    done_ = true;
  }
  cv_.notify_all();
}

namespace {
NcclBackend* g_nccl = nullptr;
}

NcclBackend* nccl_backend() { return g_nccl; }
void register_nccl_backend(NcclBackend* backend) { g_nccl = backend; }

}  // namespace ignis::dist
