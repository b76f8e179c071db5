#include "core/discovery/discovery.h"

#include <fmt/format.h>

#include <algorithm>
#include <string>
#include <system_error>
#include <vector>

#include "core/base/log.h"
#include "core/discovery/module_probe.h"

namespace canopy {
namespace {

namespace fs = std::filesystem;

bool isCandidateName(const std::string& name) {
    return name.size() > kModuleFileSuffix.size() && name.front() != '.' &&
           name.ends_with(kModuleFileSuffix);
}

}  // namespace

DiscoveryReport discoverModules(const fs::path& modules_dir,
                                std::chrono::milliseconds per_module_timeout) {
    DiscoveryReport report;
    std::error_code error;
    fs::path directory = fs::absolute(modules_dir, error);
    if (error) {
        directory = modules_dir;
    }
    directory = directory.lexically_normal();

    // Collected first and sorted, because directory order is arbitrary and
    // the first of two duplicates must be the same on every start.
    std::vector<fs::path> candidates;
    fs::directory_iterator entries(directory, error);
    if (error) {
        report.skipped.push_back(
            {directory.string(),
             fmt::format("cannot list the modules directory: {}", error.message())});
        return report;
    }
    for (fs::directory_iterator end; entries != end; entries.increment(error)) {
        if (error) {
            break;
        }
        if (isCandidateName(entries->path().filename().string())) {
            candidates.push_back(entries->path());
        }
    }
    if (error) {
        report.skipped.push_back(
            {directory.string(),
             fmt::format("cannot list the modules directory: {}", error.message())});
    }
    std::sort(candidates.begin(), candidates.end(),
              [](const fs::path& left, const fs::path& right) {
                  return left.filename().native() < right.filename().native();
              });

    for (const auto& candidate : candidates) {
        const std::string file = candidate.string();
        // status() follows symlinks: a link to a module is a module.
        fs::file_status status = fs::status(candidate, error);
        if (error) {
            report.skipped.push_back({file, fmt::format("cannot read: {}", error.message())});
            continue;
        }
        if (!fs::is_regular_file(status)) {
            report.skipped.push_back({file, "not a regular file"});
            continue;
        }
        log::debug("discovery: probing \"{}\"", file);
        auto probed = probeModule(candidate, per_module_timeout);
        if (!probed) {
            report.skipped.push_back({file, probed.error().message});
            continue;
        }
        auto first = std::find_if(
            report.modules.begin(), report.modules.end(), [&](const ModuleInfo& module) {
                return module.type == probed->type && module.version == probed->version;
            });
        if (first != report.modules.end()) {
            report.skipped.push_back(
                {probed->file, fmt::format("duplicate of {} {} in \"{}\"", first->type,
                                           first->version, first->file)});
            continue;
        }
        report.modules.push_back(std::move(probed.value()));
    }
    return report;
}

}  // namespace canopy
