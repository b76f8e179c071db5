#pragma once

// The language modules discovery found: what main keeps, serves through
// `canopyd --modules` and /status/modules, and uses to pick the module for
// an application's `type`.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/result.h"

namespace canopy {

struct ModuleMount {
    std::string source;
    std::string target;
    std::string fs_type;
    uint64_t flags = 0;
    std::string data;
};

struct ModuleInfo {
    std::string type;         // "python"
    std::string version;      // "3.11.2"
    std::string file;         // absolute path of the .canopy.so; empty when built in
    std::string description;  // empty when the module did not give one
    uint16_t abi_major = 0;
    uint16_t abi_minor = 0;
    std::vector<ModuleMount> mounts;
    nlohmann::json schema = nlohmann::json::object();  // JSON Schema of its app keys
    bool builtin = false;  // served by canopyd itself (`external`), not a file
};

struct SkippedModule {
    std::string file;
    std::string reason;
};

struct DiscoveryReport {
    std::vector<ModuleInfo> modules;
    std::vector<SkippedModule> skipped;
};

nlohmann::json toJson(const ModuleInfo& module);
nlohmann::json toJson(const DiscoveryReport& report);
Result<DiscoveryReport> parseDiscoveryReport(std::string_view text);

// Compares dotted versions numerically component by component ("3.10" >
// "3.9"); a non-numeric component compares as text. Returns <0, 0 or >0.
int compareVersions(std::string_view left, std::string_view right);

class ModuleRegistry {
  public:
    // Replaces the modules discovery found; built-in ones stay. Keeps
    // modules sorted by type, then by version, newest first.
    void assign(std::vector<ModuleInfo> modules);
    // Adds a type canopyd serves itself; it survives every assign().
    void addBuiltin(ModuleInfo module);

    const std::vector<ModuleInfo>& modules() const { return modules_; }
    bool empty() const { return modules_.empty(); }

    // The module serving an application's `type`: "python", "python 3",
    // "python 3.11" or Unit's "python3.11" (a version prefix, matched on whole
    // components; "go" means "external"). The newest match wins; nullptr when
    // none matches.
    const ModuleInfo* find(std::string_view type_spec) const;

  private:
    const ModuleInfo* findExact(std::string_view type, std::string_view version_prefix) const;
    void sortModules();

    std::vector<ModuleInfo> modules_;
};

}  // namespace canopy
