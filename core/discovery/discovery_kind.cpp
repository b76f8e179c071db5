#include "core/discovery/discovery_kind.h"

#include <nlohmann/json.hpp>
#include <string>

#include "core/base/log.h"
#include "core/discovery/discovery.h"
#include "core/process/child_context.h"
#include "core/process/credentials.h"
#include "core/process/main_context.h"
#include "core/process/process.h"

namespace canopy {
namespace {

Result<ProcessState> setupDiscovery(ChildContext& child) {
    // Modules are third-party code; their constructors run (in probe
    // children of this process) without main's privileges.
    if (auto dropped = dropPrivileges(child.settings().unprivileged); !dropped) {
        return dropped.error();
    }
    log::info("discovery started");
    return ProcessState::Ready;
}

int startDiscovery(ChildContext& child) {
    DiscoveryReport report = discoverModules(child.settings().modules_dir);
    // File names may hold invalid UTF-8; replacing it beats losing the report.
    std::string payload =
        toJson(report).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    auto sent = child.mainPort().send(MessageType::ModulesReport, payload);
    if (!sent) {
        log::error("discovery: cannot send the modules report to main: {}", sent.error().message);
        return 1;
    }
    return 0;
}

void handleModulesReport(MainContext& main, Process& /*sender*/, Message& message) {
    auto report = parseDiscoveryReport(message.payload);
    if (!report) {
        log::error("discovery sent a malformed modules report: {}", report.error().message);
        return;
    }
    for (const auto& module : report->modules) {
        // Tools and tests scrape this exact line.
        log::notice("module: {} {} \"{}\"", module.type, module.version, module.file);
    }
    for (const auto& skipped : report->skipped) {
        log::warn("module \"{}\" skipped: {}", skipped.file, skipped.reason);
    }
    if (report->modules.empty()) {
        log::notice("no modules found in \"{}\"", main.settings().modules_dir.string());
    }
    main.modules().assign(std::move(report->modules));
}

constexpr MainMessageHandler kMainHandlers[] = {
    {MessageType::ModulesReport, handleModulesReport},
};

}  // namespace

const ProcessKind kDiscoveryKind = {
    .name = "discovery",
    .title = "canopy: discovery",
    .boot = BootRole::RunToCompletion,
    .restart = RestartPolicy::Never,
    .setup = setupDiscovery,
    .start = startDiscovery,
    .main_handlers = kMainHandlers,
};

}  // namespace canopy
