#pragma once

#include "core/process/process_kind.h"

namespace canopy {

// The router: the HTTP engine. At this stage it starts, connects to the
// controller and answers on its port.
extern const ProcessKind kRouterKind;

}  // namespace canopy
