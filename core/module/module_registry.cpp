#include "core/module/module_registry.h"

#include <algorithm>
#include <charconv>

namespace canopy {
namespace {

std::vector<std::string_view> splitVersion(std::string_view version) {
    std::vector<std::string_view> parts;
    size_t start = 0;
    while (start <= version.size()) {
        size_t dot = version.find('.', start);
        if (dot == std::string_view::npos) {
            parts.push_back(version.substr(start));
            break;
        }
        parts.push_back(version.substr(start, dot - start));
        start = dot + 1;
    }
    return parts;
}

std::optional<unsigned long> asNumber(std::string_view text) {
    unsigned long value = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size() || text.empty()) {
        return std::nullopt;
    }
    return value;
}

// True when `prefix` names whole leading components of `version`.
bool versionHasPrefix(std::string_view version, std::string_view prefix) {
    auto version_parts = splitVersion(version);
    auto prefix_parts = splitVersion(prefix);
    if (prefix_parts.size() > version_parts.size()) {
        return false;
    }
    for (size_t index = 0; index < prefix_parts.size(); ++index) {
        if (compareVersions(version_parts[index], prefix_parts[index]) != 0) {
            return false;
        }
    }
    return true;
}

}  // namespace

int compareVersions(std::string_view left, std::string_view right) {
    auto left_parts = splitVersion(left);
    auto right_parts = splitVersion(right);
    size_t count = std::max(left_parts.size(), right_parts.size());
    for (size_t index = 0; index < count; ++index) {
        if (index >= left_parts.size()) {
            return -1;
        }
        if (index >= right_parts.size()) {
            return 1;
        }
        auto left_number = asNumber(left_parts[index]);
        auto right_number = asNumber(right_parts[index]);
        int order = 0;
        if (left_number && right_number) {
            order = *left_number < *right_number ? -1 : (*left_number > *right_number ? 1 : 0);
        } else {
            int text_order = left_parts[index].compare(right_parts[index]);
            order = text_order < 0 ? -1 : (text_order > 0 ? 1 : 0);
        }
        if (order != 0) {
            return order;
        }
    }
    return 0;
}

nlohmann::json toJson(const ModuleInfo& module) {
    nlohmann::json mounts = nlohmann::json::array();
    for (const auto& mount : module.mounts) {
        mounts.push_back({{"src", mount.source},
                          {"dst", mount.target},
                          {"type", mount.fs_type},
                          {"flags", mount.flags},
                          {"data", mount.data}});
    }
    return {{"type", module.type},
            {"version", module.version},
            {"file", module.file},
            {"description", module.description},
            {"abi", {{"major", module.abi_major}, {"minor", module.abi_minor}}},
            {"mounts", std::move(mounts)},
            {"schema", module.schema},
            {"builtin", module.builtin}};
}

nlohmann::json toJson(const DiscoveryReport& report) {
    nlohmann::json modules = nlohmann::json::array();
    for (const auto& module : report.modules) {
        modules.push_back(toJson(module));
    }
    nlohmann::json skipped = nlohmann::json::array();
    for (const auto& entry : report.skipped) {
        skipped.push_back({{"file", entry.file}, {"reason", entry.reason}});
    }
    return {{"modules", std::move(modules)}, {"skipped", std::move(skipped)}};
}

Result<DiscoveryReport> parseDiscoveryReport(std::string_view text) {
    try {
        auto document = nlohmann::json::parse(text);
        DiscoveryReport report;
        for (const auto& item : document.at("modules")) {
            ModuleInfo module;
            module.type = item.at("type").get<std::string>();
            module.version = item.at("version").get<std::string>();
            module.file = item.at("file").get<std::string>();
            module.description = item.value("description", std::string());
            module.abi_major = item.at("abi").at("major").get<uint16_t>();
            module.abi_minor = item.at("abi").at("minor").get<uint16_t>();
            for (const auto& mount : item.at("mounts")) {
                module.mounts.push_back(
                    {mount.at("src").get<std::string>(), mount.at("dst").get<std::string>(),
                     mount.at("type").get<std::string>(), mount.at("flags").get<uint64_t>(),
                     mount.at("data").get<std::string>()});
            }
            module.schema = item.at("schema");
            module.builtin = item.value("builtin", false);
            report.modules.push_back(std::move(module));
        }
        for (const auto& item : document.at("skipped")) {
            report.skipped.push_back(
                {item.at("file").get<std::string>(), item.at("reason").get<std::string>()});
        }
        return report;
    } catch (const nlohmann::json::exception& failure) {
        return Error{std::string("malformed discovery report: ") + failure.what()};
    }
}

void ModuleRegistry::assign(std::vector<ModuleInfo> modules) {
    std::erase_if(modules_, [](const ModuleInfo& module) { return !module.builtin; });
    for (auto& module : modules) {
        // A registry copied through a report (main to the controller) brings
        // its built-ins along; they are kept once.
        bool known_builtin =
            module.builtin &&
            std::any_of(modules_.begin(), modules_.end(), [&](const ModuleInfo& existing) {
                return existing.builtin && existing.type == module.type &&
                       existing.version == module.version;
            });
        if (!known_builtin) {
            modules_.push_back(std::move(module));
        }
    }
    sortModules();
}

void ModuleRegistry::addBuiltin(ModuleInfo module) {
    module.builtin = true;
    bool known = std::any_of(modules_.begin(), modules_.end(), [&](const ModuleInfo& existing) {
        return existing.builtin && existing.type == module.type &&
               existing.version == module.version;
    });
    if (!known) {
        modules_.push_back(std::move(module));
        sortModules();
    }
}

void ModuleRegistry::sortModules() {
    std::stable_sort(modules_.begin(), modules_.end(), [](const auto& left, const auto& right) {
        if (left.type != right.type) {
            return left.type < right.type;
        }
        return compareVersions(left.version, right.version) > 0;
    });
}

const ModuleInfo* ModuleRegistry::findExact(std::string_view type,
                                            std::string_view version_prefix) const {
    for (const auto& module : modules_) {  // newest first within a type
        if (module.type == type &&
            (version_prefix.empty() || versionHasPrefix(module.version, version_prefix))) {
            return &module;
        }
    }
    return nullptr;
}

const ModuleInfo* ModuleRegistry::find(std::string_view type_spec) const {
    size_t space = type_spec.find(' ');
    std::string_view type = type_spec.substr(0, space);
    std::string_view version_prefix =
        space == std::string_view::npos ? std::string_view() : type_spec.substr(space + 1);
    // As written first, so that a third-party type with a digit in its name
    // ("h2o") is found.
    if (const ModuleInfo* module = findExact(type, version_prefix)) {
        return module;
    }
    // Unit reads "python3.11" as "python 3.11": the name ends at the first
    // space or digit; "go" is Unit's alias of "external".
    size_t end = 0;
    while (end < type_spec.size() && type_spec[end] != ' ' &&
           !(type_spec[end] >= '0' && type_spec[end] <= '9')) {
        ++end;
    }
    std::string_view name = type_spec.substr(0, end);
    std::string_view version = type_spec.substr(end);
    if (version.starts_with(' ')) {
        version.remove_prefix(1);
    }
    if (name == "go") {
        name = "external";
    }
    return findExact(name, version);
}

}  // namespace canopy
