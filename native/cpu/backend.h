// The CPU backend: every entry of the DeviceBackend table, from the kernels in cpu/.
#pragma once
#include "core/backend.h"

namespace ignis::cpu {

const DeviceBackend& backend();

}  // namespace ignis::cpu
