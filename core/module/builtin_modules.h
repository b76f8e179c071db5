#pragma once

// The application types canopyd serves without a module file. Main adds them
// to its registry, so validation, `canopyd --modules` and /status/modules
// see them like any discovered module (with an empty `file`).

#include <string_view>
#include <vector>

#include "core/module/module_registry.h"

namespace canopy {

// The type of external programs linked with libcanopy (Unit's "external",
// alias "go"): the worker execs `executable` with `arguments`.
inline constexpr std::string_view kExternalType = "external";

// Every built-in type, each with `builtin` set.
std::vector<ModuleInfo> builtinModules();

}  // namespace canopy
