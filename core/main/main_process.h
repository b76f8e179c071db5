#pragma once

// Main: the supervisor. It knows kinds only through their table entries.

#include <iosfwd>
#include <span>

#include "core/base/result.h"
#include "core/main/options.h"
#include "core/process/process_kind.h"
#include "core/process/runtime_settings.h"

namespace canopy {

// Turns the command line into settings: absolute paths, the control socket's
// mode, the credentials to switch to (when running as root).
Result<RuntimeSettings> makeRuntimeSettings(const Options& options);

// Runs the daemon until SIGTERM/SIGQUIT/SIGINT. Returns the exit code.
int runDaemon(const Options& options, std::span<const ProcessKind* const> kinds, int argc,
              char** argv);

// Runs the run-to-completion kinds (discovery), prints the modules it found
// to `out` as a table or JSON, and returns the exit code.
int listModules(const Options& options, std::span<const ProcessKind* const> kinds,
                std::ostream& out);

}  // namespace canopy
