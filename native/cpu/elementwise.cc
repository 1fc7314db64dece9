#include "cpu/elementwise.h"

#include <cmath>
#include <limits>
#include <type_traits>
#include "core/loop.h"

namespace ignis::cpu {
namespace {

LoopOperand operand(const TensorPtr& t) { return {t->data(), t->strides.data(), t->element_size()}; }
LoopOperand operand(const TensorPtr& t, const Shape& strides) { return {t->data(), strides.data(), t->element_size()}; }

// Transcendental functions cost ~10-50x an add per element: split them across threads sooner.
constexpr int64_t kTranscendentalGrain = kElementwiseGrain / 8;

// One row of out[i] = f(x[i]); a plain loop the compiler can vectorise when both are contiguous.
// Always inlined, as map_row2 below.
template <typename Out, typename In, typename F>
inline __attribute__((always_inline)) void map_row(char* const* p, const int64_t* s, int64_t n, F f) {
  if (s[0] == sizeof(Out) && s[1] == sizeof(In)) {
    Out* __restrict o = reinterpret_cast<Out*>(p[0]);
    const In* __restrict x = reinterpret_cast<const In*>(p[1]);
    for (int64_t i = 0; i < n; i++) o[i] = f(x[i]);
    return;
  }
  for (int64_t i = 0; i < n; i++)
    *reinterpret_cast<Out*>(p[0] + i * s[0]) = f(*reinterpret_cast<const In*>(p[1] + i * s[1]));
}

// One row of out[i] = f(x[i], y[i]), with fast paths for contiguous rows and for one side
// broadcast (stride 0) over a contiguous other side. Always inlined, so that a row function
// built for wider vectors (IGNIS_VECTOR_CLONES) gets its own copy of these loops.
template <typename Out, typename In, typename F>
inline __attribute__((always_inline)) void map_row2(char* const* p, const int64_t* s, int64_t n, F f) {
  constexpr int64_t eo = sizeof(Out), ei = sizeof(In);
  Out* __restrict o = reinterpret_cast<Out*>(p[0]);
  const In* __restrict x = reinterpret_cast<const In*>(p[1]);
  const In* __restrict y = reinterpret_cast<const In*>(p[2]);
  if (s[0] == eo && s[1] == ei && s[2] == ei) {
    for (int64_t i = 0; i < n; i++) o[i] = f(x[i], y[i]);
  } else if (s[0] == eo && s[1] == ei && s[2] == 0) {
    const In yv = *y;
    for (int64_t i = 0; i < n; i++) o[i] = f(x[i], yv);
  } else if (s[0] == eo && s[1] == 0 && s[2] == ei) {
    const In xv = *x;
    for (int64_t i = 0; i < n; i++) o[i] = f(xv, y[i]);
  } else {
    for (int64_t i = 0; i < n; i++)
      *reinterpret_cast<Out*>(p[0] + i * s[0]) =
          f(*reinterpret_cast<const In*>(p[1] + i * s[1]), *reinterpret_cast<const In*>(p[2] + i * s[2]));
  }
}

// Calls row(pointers, byte strides, count) over out's shape, the pointers and strides those of
// out and a (which has out's shape).
template <typename Row>
void for_each_row1(const TensorPtr& out, const TensorPtr& a, int64_t grain, Row row) {
  auto loop = make_loop<2>(out->shape, {operand(out), operand(a)});
  for_each_strided(loop, grain, row);
}

// out[i] = f(a[i]) over out's shape; a has out's shape.
template <typename Out, typename In, typename F>
void map_unary(const TensorPtr& out, const TensorPtr& a, int64_t grain, F f) {
  for_each_row1(out, a, grain, [f](char* const* p, const int64_t* s, int64_t n) { map_row<Out, In>(p, s, n, f); });
}

// t's strides seen with `shape`: its own when it has that shape (no copy), else broadcast into
// `storage`.
const Shape& strides_for(const TensorPtr& t, const Shape& shape, const char* op, Shape& storage) {
  if (t->shape == shape) return t->strides;
  storage = broadcast_strides(*t, shape, op);
  return storage;
}

// Calls row(pointers, byte strides, count) over out's shape, the pointers and strides those of
// out, a and b, with a and b broadcast to out's shape.
template <typename Row>
void for_each_row2(const TensorPtr& out, const TensorPtr& a, const TensorPtr& b, const char* op, int64_t grain, Row row) {
  Shape broadcast_a, broadcast_b;
  const Shape& sa = strides_for(a, out->shape, op, broadcast_a);
  const Shape& sb = strides_for(b, out->shape, op, broadcast_b);
  auto loop = make_loop<3>(out->shape, {operand(out), operand(a, sa), operand(b, sb)});
  for_each_strided(loop, grain, row);
}

// out[i] = f(a[i], b[i]) with a and b broadcast to out's shape.
template <typename Out, typename In, typename F>
void map_binary(const TensorPtr& out, const TensorPtr& a, const TensorPtr& b, const char* op, int64_t grain, F f) {
  for_each_row2(out, a, b, op, grain, [f](char* const* p, const int64_t* s, int64_t n) { map_row2<Out, In>(p, s, n, f); });
}

// Rows of the float unary ops, out[i] = f(x[i]), and of their gradients, out[i] = f(g[i], x[i]),
// built for AVX2 machines too (IGNIS_VECTOR_CLONES): gelu, silu, tanh and their derivatives run
// two to four times as fast there. always_inline: in this large unit GCC would otherwise leave
// the biggest functions (gelu) as calls, which run scalar.
template <typename T, typename F>
IGNIS_VECTOR_CLONES void unary_row(char* const* p, const int64_t* s, int64_t n, F f) {
  using A = acc_t<T>;
  map_row<T, T>(p, s, n, [f](T x) __attribute__((always_inline)) { return T(f(A(x))); });
}
template <typename T, typename F>
IGNIS_VECTOR_CLONES void unary_grad_row(char* const* p, const int64_t* s, int64_t n, F f) {
  using A = acc_t<T>;
  map_row2<T, T>(p, s, n, [f](T g, T x) __attribute__((always_inline)) { return T(f(A(g), A(x))); });
}

// One row of out[i] = c[i] ? x[i * StepX] : y[i * StepY], Step 0 for a broadcast operand.
template <typename T, int StepX, int StepY>
void select_row(char* const* p, int64_t n) {
  T* __restrict o = reinterpret_cast<T*>(p[0]);
  const bool* __restrict c = reinterpret_cast<const bool*>(p[1]);
  const T* __restrict x = reinterpret_cast<const T*>(p[2]);
  const T* __restrict y = reinterpret_cast<const T*>(p[3]);
  for (int64_t i = 0; i < n; i++) o[i] = c[i] ? x[i * StepX] : y[i * StepY];
}

}  // namespace

void binary(BinaryOp op, const TensorPtr& out, const TensorPtr& a, const TensorPtr& b) {
  dispatch_numeric(out->dtype, "binary", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    dispatch_binary_op(op, [&](auto f) {
      map_binary<T, T>(out, a, b, "binary", kElementwiseGrain, [f](T x, T y) { return T(f(A(x), A(y))); });
    });
  });
}

void binary_scalar(BinaryOp op, const TensorPtr& out, const TensorPtr& a, double scalar, bool reversed) {
  dispatch_numeric(out->dtype, "binary", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const A sv = A(scalar);
    dispatch_binary_op(op, [&](auto f) {
      if (reversed) map_unary<T, T>(out, a, kElementwiseGrain, [f, sv](T x) { return T(f(sv, A(x))); });
      else map_unary<T, T>(out, a, kElementwiseGrain, [f, sv](T x) { return T(f(A(x), sv)); });
    });
  });
}

void binary_backward(BinaryGrad op, const TensorPtr& out, const TensorPtr& grad, const TensorPtr& self, const TensorPtr& other) {
  const char* name = "binary backward";
  Shape broadcast_g, broadcast_x, broadcast_y;
  const Shape& sg = strides_for(grad, out->shape, name, broadcast_g);
  const Shape& sx = strides_for(self, out->shape, name, broadcast_x);
  const Shape& sy = strides_for(other, out->shape, name, broadcast_y);
  auto loop = make_loop<4>(out->shape, {operand(out), operand(grad, sg), operand(self, sx), operand(other, sy)});
  dispatch_float(out->dtype, name, [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    dispatch_binary_grad(op, [&](auto f) {
      for_each_strided(loop, kElementwiseGrain, [f](char* const* p, const int64_t* s, int64_t n) {
        constexpr int64_t e = sizeof(T);
        T* __restrict o = reinterpret_cast<T*>(p[0]);
        const T* __restrict g = reinterpret_cast<const T*>(p[1]);
        const T* __restrict x = reinterpret_cast<const T*>(p[2]);
        const T* __restrict y = reinterpret_cast<const T*>(p[3]);
        if (s[0] == e && s[1] == e && s[2] == e && s[3] == e) {
          for (int64_t i = 0; i < n; i++) o[i] = T(f(A(g[i]), A(x[i]), A(y[i])));
        } else if (s[0] == e && s[1] == e && s[2] == e && s[3] == 0) {
          const A yv = A(*y);  // a scalar or broadcast other: pow(x, 2), maximum(x, 0)
          for (int64_t i = 0; i < n; i++) o[i] = T(f(A(g[i]), A(x[i]), yv));
        } else {
          for (int64_t i = 0; i < n; i++)
            *reinterpret_cast<T*>(p[0] + i * s[0]) = T(f(A(*reinterpret_cast<const T*>(p[1] + i * s[1])),
                                                         A(*reinterpret_cast<const T*>(p[2] + i * s[2])),
                                                         A(*reinterpret_cast<const T*>(p[3] + i * s[3]))));
        }
      });
    });
  });
}

void unary(UnaryOp op, const TensorPtr& out, const TensorPtr& a) {
  dispatch_numeric(out->dtype, "unary", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    dispatch_unary_op(op, [&](auto f) {
      if constexpr (std::is_floating_point_v<A>) {
        int64_t grain = decltype(f)::integers ? kElementwiseGrain : kTranscendentalGrain;
        for_each_row1(out, a, grain, [f](char* const* p, const int64_t* s, int64_t n) { unary_row<T>(p, s, n, f); });
      } else if constexpr (decltype(f)::integers) {
        map_unary<T, T>(out, a, kElementwiseGrain, f);
      } else {
        fail(ERR_DTYPE, "unary: integer input for a float-only op");
      }
    });
  });
}

void clamp(const TensorPtr& out, const TensorPtr& a, double lo, double hi) {
  dispatch_numeric(out->dtype, "clamp", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    A lo_v, hi_v;
    if constexpr (std::is_floating_point_v<A>) {
      lo_v = A(lo);
      hi_v = A(hi);
    } else {
      lo_v = saturate<T>(lo);
      hi_v = saturate<T>(hi);
    }
    map_unary<T, T>(out, a, kElementwiseGrain, [lo_v, hi_v](T x) { return T(clamp_value(A(x), lo_v, hi_v)); });
  });
}

void unary_backward(UnaryOp op, const TensorPtr& out, const TensorPtr& grad, const TensorPtr& saved) {
  bool transcendental = op == UnaryOp::Gelu || op == UnaryOp::GeluTanh || op == UnaryOp::Silu;
  int64_t grain = transcendental ? kTranscendentalGrain : kElementwiseGrain;
  dispatch_float(out->dtype, "unary backward", [&](auto tag) {
    using T = decltype(tag);
    dispatch_unary_grad(op, [&](auto f) {
      for_each_row2(out, grad, saved, "unary backward", grain,
                    [f](char* const* p, const int64_t* s, int64_t n) { unary_grad_row<T>(p, s, n, f); });
    });
  });
}

void clamp_backward(const TensorPtr& out, const TensorPtr& grad, const TensorPtr& a, double lo, double hi) {
  dispatch_float(out->dtype, "clamp backward", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const A lo_v = A(lo), hi_v = A(hi);
    map_binary<T, T>(out, grad, a, "clamp backward", kElementwiseGrain,
                     [lo_v, hi_v](T g, T x) { return T(clamp_grad(A(g), A(x), lo_v, hi_v)); });
  });
}

void compare(CompareOp op, const TensorPtr& out, const TensorPtr& a, const TensorPtr& b) {
  dispatch_all(a->dtype, "compare", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    dispatch_compare_op(op, [&](auto f) {
      map_binary<bool, T>(out, a, b, "compare", kElementwiseGrain, [f](T x, T y) { return f(A(x), A(y)); });
    });
  });
}

void compare_scalar(CompareOp op, const TensorPtr& out, const TensorPtr& a, double s) {
  dispatch_all(a->dtype, "compare", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    dispatch_compare_op(op, [&](auto f) {
      if constexpr (std::is_floating_point_v<A>) {
        const A sv = A(T(s));  // s rounded to a's dtype first, as PyTorch compares
        map_unary<bool, T>(out, a, kElementwiseGrain, [f, sv](T x) { return f(A(x), sv); });
      } else if (representable_as<T>(s)) {
        const T sv = T(s);
        map_unary<bool, T>(out, a, kElementwiseGrain, [f, sv](T x) { return f(x, sv); });
      } else {  // fractional, NaN or beyond T's range: compare in double, exactly
        const double sv = integer_comparand<T>(s);
        map_unary<bool, T>(out, a, kElementwiseGrain, [f, sv](T x) { return f(double(x), sv); });
      }
    });
  });
}

void where(const TensorPtr& out, const TensorPtr& condition, const TensorPtr& a, const TensorPtr& b) {
  Shape broadcast_c, broadcast_a, broadcast_b;
  const Shape& sc = strides_for(condition, out->shape, "where", broadcast_c);
  const Shape& sa = strides_for(a, out->shape, "where", broadcast_a);
  const Shape& sb = strides_for(b, out->shape, "where", broadcast_b);
  auto loop = make_loop<4>(out->shape, {operand(out), operand(condition, sc), operand(a, sa), operand(b, sb)});
  dispatch_element_size(out->element_size(), [&](auto tag) {
    using T = decltype(tag);
    for_each_strided(loop, kElementwiseGrain, [](char* const* p, const int64_t* s, int64_t n) {
      constexpr int64_t e = sizeof(T);
      if (s[0] == e && s[1] == 1 && (s[2] == e || s[2] == 0) && (s[3] == e || s[3] == 0)) {
        if (s[2] && s[3]) select_row<T, 1, 1>(p, n);
        else if (s[2]) select_row<T, 1, 0>(p, n);
        else if (s[3]) select_row<T, 0, 1>(p, n);
        else select_row<T, 0, 0>(p, n);
        return;
      }
      for (int64_t i = 0; i < n; i++) {
        bool c = *reinterpret_cast<const bool*>(p[1] + i * s[1]);
        *reinterpret_cast<T*>(p[0] + i * s[0]) = *reinterpret_cast<const T*>(c ? p[2] + i * s[2] : p[3] + i * s[3]);
      }
    });
  });
}

}  // namespace ignis::cpu
