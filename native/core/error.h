// Errors: every failure a user can reach is thrown as ignis::Error{code, message};
// the N-API layer turns it into a JS IgnisError with the same `.code`.
#pragma once
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace ignis {

// Error codes, as they appear on the JS side.
constexpr const char* ERR_SHAPE = "ERR_SHAPE";        // incompatible shapes, bad broadcast, impossible view
constexpr const char* ERR_DTYPE = "ERR_DTYPE";        // unsupported or mismatched dtype
constexpr const char* ERR_DEVICE = "ERR_DEVICE";      // mixed or unavailable devices
constexpr const char* ERR_DISPOSED = "ERR_DISPOSED";  // use of a disposed tensor
constexpr const char* ERR_INDEX = "ERR_INDEX";        // index or dim out of range
constexpr const char* ERR_ARG = "ERR_ARG";            // invalid argument (type, NaN, negative size, ...)
constexpr const char* ERR_IO = "ERR_IO";
constexpr const char* ERR_OOM = "ERR_OOM";            // host or device allocation failed
constexpr const char* ERR_CUDA = "ERR_CUDA";          // a CUDA, cuBLAS or NCCL call failed
constexpr const char* ERR_DIST = "ERR_DIST";          // a distributed peer, store or connection failed
constexpr const char* ERR_TIMEOUT = "ERR_TIMEOUT";    // a distributed wait ran past its timeout
constexpr const char* ERR_INTERNAL = "ERR_INTERNAL";

class Error : public std::runtime_error {
 public:
  Error(const char* code, const std::string& message) : std::runtime_error(message), code_(code) {}
  const char* code() const { return code_; }

 private:
  const char* code_;
};

inline void append(std::ostringstream&) {}
template <typename T, typename... Rest>
void append(std::ostringstream& out, const T& first, const Rest&... rest) {
  out << first;
  append(out, rest...);
}

// fail(ERR_SHAPE, "matmul: ", shape_str(a), " and ", shape_str(b)) builds the message from parts.
template <typename... Parts>
[[noreturn]] void fail(const char* code, const Parts&... parts) {
  std::ostringstream out;
  append(out, parts...);
  throw Error(code, out.str());
}

inline std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); i++) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

}  // namespace ignis
