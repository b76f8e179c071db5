#pragma once

// The parts of starting a daemon that Unit's users rely on: directories that
// must be usable, the pid file, detaching from the terminal.

#include <sys/types.h>

#include <filesystem>
#include <string_view>

#include "core/base/result.h"
#include "core/base/unique_fd.h"

namespace canopy {

// Creates `directory` (and its parents) when missing and checks that this
// process can create files in it. `what` names it in the error.
Result<void> prepareDirectory(const std::filesystem::path& directory, std::string_view what);

// Checks that `directory` exists and is writable, without creating it.
Result<void> checkWritableDirectory(const std::filesystem::path& directory, std::string_view what);

// Opens (creating it and its directory) the log file for appending.
Result<UniqueFd> openLogFile(const std::filesystem::path& file);

// Detaches: forks and starts a new session with umask 022 in the child. The
// parent stays until the child calls notifyReady() (then it exits 0) or exits
// itself (then it exits with the child's code), so whoever started canopyd
// learns whether start-up worked. Returns, in the child, the descriptor to
// notify through.
Result<UniqueFd> daemonize();

// Tells the waiting parent that start-up succeeded and points stdin and
// stdout at /dev/null.
void notifyReady(UniqueFd readiness);

// Writes `pid` to `file` atomically, creating its directory.
Result<void> writePidFile(const std::filesystem::path& file, pid_t pid);

// Removes `file` if it still holds `pid`.
void removePidFile(const std::filesystem::path& file, pid_t pid);

}  // namespace canopy
