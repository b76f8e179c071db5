#pragma once

#include "core/process/process_kind.h"

namespace canopy {

// The controller: serves the control API on the socket main created.
extern const ProcessKind kControllerKind;

}  // namespace canopy
