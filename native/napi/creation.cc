#include "napi/napi.h"

namespace ignis::napi {

void register_creation(Napi::Env env, Napi::Object exports) {}

}  // namespace ignis::napi
