#include "napi/napi.h"

namespace ignis::napi {

void register_loss(Napi::Env env, Napi::Object exports) {}

}  // namespace ignis::napi
