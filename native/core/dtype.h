// Element types and devices. The numeric values of DType are part of the JS <-> C++ contract
// (lib/dtype.ts lists the names in the same order).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include "core/error.h"
#include "kernels/half.h"

namespace ignis {

enum class DType : uint8_t { Float32 = 0, Float64, BFloat16, Float16, Int32, Int64, Bool };
constexpr int kNumDTypes = 7;

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::Float32: return 4;
    case DType::Float64: return 8;
    case DType::BFloat16: return 2;
    case DType::Float16: return 2;
    case DType::Int32: return 4;
    case DType::Int64: return 8;
    case DType::Bool: return 1;
  }
  return 0;
}

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::BFloat16: return "bfloat16";
    case DType::Float16: return "float16";
    case DType::Int32: return "int32";
    case DType::Int64: return "int64";
    case DType::Bool: return "bool";
  }
  return "?";
}

inline bool is_float(DType t) {
  return t == DType::Float32 || t == DType::Float64 || t == DType::BFloat16 || t == DType::Float16;
}

// The dtype arithmetic on `t` accumulates in: float64 for float64, float32 for the other floats.
inline DType accumulation_dtype(DType t) { return t == DType::Float64 ? DType::Float64 : DType::Float32; }

inline DType dtype_from_int(int64_t v) {
  if (v < 0 || v >= kNumDTypes) fail(ERR_DTYPE, "unknown dtype code ", v);
  return DType(v);
}

// C++ type for each dtype, and back.
template <DType D> struct dtype_cpp;
template <> struct dtype_cpp<DType::Float32> { using type = float; };
template <> struct dtype_cpp<DType::Float64> { using type = double; };
template <> struct dtype_cpp<DType::BFloat16> { using type = bfloat16; };
template <> struct dtype_cpp<DType::Float16> { using type = float16; };
template <> struct dtype_cpp<DType::Int32> { using type = int32_t; };
template <> struct dtype_cpp<DType::Int64> { using type = int64_t; };
template <> struct dtype_cpp<DType::Bool> { using type = bool; };

// Calls f(T{}) with T the C++ type of `t`, for every dtype. Use the narrower dispatchers
// below when a kernel exists only for some dtypes; they fail with ERR_DTYPE on the others.
template <typename F>
auto dispatch_all(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::Float32: return f(float{});
    case DType::Float64: return f(double{});
    case DType::BFloat16: return f(bfloat16{});
    case DType::Float16: return f(float16{});
    case DType::Int32: return f(int32_t{});
    case DType::Int64: return f(int64_t{});
    case DType::Bool: return f(bool{});
  }
  fail(ERR_DTYPE, op, ": unknown dtype");
}

template <typename F>
auto dispatch_float(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::Float32: return f(float{});
    case DType::Float64: return f(double{});
    case DType::BFloat16: return f(bfloat16{});
    case DType::Float16: return f(float16{});
    default: fail(ERR_DTYPE, op, ": expected a floating-point tensor, got ", dtype_name(t));
  }
}

// Floats and integers (arithmetic), not bool.
template <typename F>
auto dispatch_numeric(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::Int32: return f(int32_t{});
    case DType::Int64: return f(int64_t{});
    case DType::Bool: fail(ERR_DTYPE, op, ": not supported for bool tensors");
    default: return dispatch_float(t, op, f);
  }
}

// Calls f(U{}) with U an unsigned integer as wide as one element, for kernels that move bits
// whatever the dtype (copies, selections).
template <typename F>
void dispatch_element_size(size_t size, F&& f) {
  switch (size) {
    case 1: return f(uint8_t{});
    case 2: return f(uint16_t{});
    case 4: return f(uint32_t{});
    case 8: return f(uint64_t{});
  }
  fail(ERR_INTERNAL, "no kernel for elements of ", size, " bytes");
}

enum class DeviceType : uint8_t { CPU = 0, CUDA = 1 };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  bool is_cpu() const { return type == DeviceType::CPU; }
  std::string str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }
};

}  // namespace ignis
