#pragma once

// Probes one module candidate: loads it in a throw-away child process, checks
// its descriptor against the module ABI and reports what it found, so that a
// module whose constructor crashes, aborts or hangs cannot take the caller
// down.

#include <canopy/module.h>

#include <chrono>
#include <filesystem>

#include "core/base/result.h"
#include "core/module/module_registry.h"

namespace canopy {

// Loads `file` in a forked child (dlopen with RTLD_NOW | RTLD_GLOBAL), looks
// up CANOPY_MODULE_SYMBOL and validates the descriptor with
// describeModule(). Returns the module, with `file` made absolute, or an error
// whose message is a one-line reason fit for `module "<file>" skipped:
// <reason>`: not an ELF file, a dlopen error, a missing symbol, an ABI or
// descriptor problem, a crash (the signal) or a timeout.
//
// Blocks the calling thread for at most about `timeout`; a child still
// loading then is killed with SIGKILL. The caller must be single-threaded
// (the child calls dlopen after fork) and must not reap children of unknown
// pids concurrently (waitpid(-1)), which would steal the child's status.
Result<ModuleInfo> probeModule(const std::filesystem::path& file,
                               std::chrono::milliseconds timeout);

// Validates a descriptor already in memory and copies it out; `file` is stored
// as given. Reads only the fields that `descriptor->size` shows the module
// has. This is what the probe's child runs after dlsym; exposed for tests.
// `descriptor` must not be null.
Result<ModuleInfo> describeModule(const canopy_module_t* descriptor, const std::string& file);

}  // namespace canopy
