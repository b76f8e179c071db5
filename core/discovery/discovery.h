#pragma once

// Module discovery: finds the language modules in the modules directory and
// reports which ones load and which are skipped, and why.

#include <chrono>
#include <filesystem>

#include "core/module/module_registry.h"

namespace canopy {

// The suffix of module files: `<type><version>.canopy.so`.
inline constexpr std::string_view kModuleFileSuffix = ".canopy.so";

// Probes every `*.canopy.so` in `modules_dir` (names starting with '.'
// excluded, as a shell glob would) in the byte order of their names, each in
// its own child process with probeModule() and `per_module_timeout`.
//
// Returns the modules that loaded and one skipped entry, with its reason, for
// every candidate that did not: a probe failure, not a regular file, or a
// second module with the type and version of an earlier one (the reason names
// the earlier file). A directory that does not exist or cannot be listed
// yields an empty module list and one skipped entry whose `file` is the
// directory. Never throws. Files are absolute paths.
//
// Same threading rules as probeModule(): call from a single-threaded process.
DiscoveryReport discoverModules(
    const std::filesystem::path& modules_dir,
    std::chrono::milliseconds per_module_timeout = std::chrono::seconds(5));

}  // namespace canopy
