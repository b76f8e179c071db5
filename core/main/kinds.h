#pragma once

#include <span>

#include "core/process/process_kind.h"

namespace canopy {

// The kinds main boots, in boot order.
std::span<const ProcessKind* const> coreKinds();

}  // namespace canopy
