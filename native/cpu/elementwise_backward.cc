#include "cpu/elementwise_backward.h"

#include "core/loop.h"

namespace ignis::cpu {

void binary_backward(BinaryGrad op, const TensorPtr& out, const TensorPtr& grad, const TensorPtr& self, const TensorPtr& other) {
  const char* name = "binary backward";
  Shape sg = broadcast_strides(*grad, out->shape, name), ss = broadcast_strides(*self, out->shape, name),
        so = broadcast_strides(*other, out->shape, name);
  const size_t es = out->element_size();
  auto loop = make_loop<4>(out->shape, {LoopOperand{out->data(), out->strides.data(), es}, LoopOperand{grad->data(), sg.data(), es},
                                        LoopOperand{self->data(), ss.data(), es}, LoopOperand{other->data(), so.data(), es}});
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

}  // namespace ignis::cpu
