#include "core/indexing.h"
#include "napi/napi.h"

namespace ignis::napi {
namespace {

// embedding(indices, weight)
Napi::Value Embedding(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), embedding(tensor_arg(info, 0), tensor_arg(info, 1)));
}

// gather(t, dim, index)
Napi::Value Gather(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), gather(tensor_arg(info, 0), int_arg(info, 1), tensor_arg(info, 2)));
}

// cat(tensors, dim, dtype)
Napi::Value Cat(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), cat(tensor_list_arg(info, 0), int_arg(info, 1), dtype_arg(info, 2)));
}

// stack(tensors, dim, dtype)
Napi::Value Stack(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), stack(tensor_list_arg(info, 0), int_arg(info, 1), dtype_arg(info, 2)));
}

// embeddingBackward(grad, indices, numEmbeddings)
Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), embedding_backward(tensor_arg(info, 0), tensor_arg(info, 1), int_arg(info, 2)));
}

// gatherBackward(grad, dim, index, shape)
Napi::Value GatherBackward(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), gather_backward(tensor_arg(info, 0), int_arg(info, 1), tensor_arg(info, 2), shape_arg(info, 3)));
}

}  // namespace

void register_indexing(Napi::Env env, Napi::Object exports) {
  define(env, exports, "embedding", Embedding);
  define(env, exports, "gather", Gather);
  define(env, exports, "cat", Cat);
  define(env, exports, "stack", Stack);
  define(env, exports, "embeddingBackward", EmbeddingBackward);
  define(env, exports, "gatherBackward", GatherBackward);
}

}  // namespace ignis::napi
