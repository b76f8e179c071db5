#pragma once

// A ModuleInfo as discovery would report it, for validator tests: the core
// applies the module's schema and nothing language-specific of its own.

#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "core/module/module_registry.h"

namespace canopy::config::fixtures {

inline ModuleInfo fixtureModule(std::string type, std::string version, const char* schema) {
    ModuleInfo info;
    info.type = std::move(type);
    info.version = std::move(version);
    info.file = "/modules/" + info.type + info.version + ".canopy.so";
    info.abi_major = 1;
    info.schema = nlohmann::json::parse(schema);
    return info;
}

}  // namespace canopy::config::fixtures
