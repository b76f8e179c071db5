#pragma once

// The discovery process kind: started once at boot, it probes the modules
// directory with discoverModules(), sends main a MODULES_REPORT and exits.
// Main fills its module registry from the report and logs each module as
// `module: <type> <version> "<file>"` and each skipped one as a warning.

#include "core/process/process_kind.h"

namespace canopy {

extern const ProcessKind kDiscoveryKind;

}  // namespace canopy
