#include "core/router/router_kind.h"

#include <array>
#include <variant>

#include "core/base/log.h"
#include "core/json/value.h"
#include "core/process/child_context.h"
#include "core/process/credentials.h"

namespace canopy {
namespace {

constexpr std::array<std::string_view, 1> kRouterPeers = {"controller"};

// The router's view of the configuration it accepted last.
struct RouterState {
    json::Value configuration = json::Value::object();
};

RouterState& state() {
    static RouterState router_state;
    return router_state;
}

std::string errorReply(std::string_view reason) {
    json::Value reply = json::Value::object();
    reply.set("error", std::string(reason));
    return json::serialize(reply);
}

// Until the HTTP engine and application processes exist, a tree that needs
// them is refused with the reason rather than accepted and silently unserved.
std::optional<std::string> unsupportedPart(const json::Value& tree) {
    if (const auto* listeners = tree.find("listeners");
        listeners != nullptr && listeners->isObject() && !listeners->asObject().empty()) {
        return "Listeners are not served yet: this version of Canopy has no HTTP engine.";
    }
    if (tree.find("access_log") != nullptr) {
        return "Access logs are not written yet: this version of Canopy has no HTTP engine.";
    }
    if (const auto* applications = tree.find("applications");
        applications != nullptr && applications->isObject() && !applications->asObject().empty()) {
        return "Applications are not started yet: this version of Canopy cannot run "
               "application processes.";
    }
    return std::nullopt;
}

void applyConfiguration(ChildContext& child, std::string_view from, Message& message) {
    auto parsed = json::parse(message.payload);
    if (auto* error = std::get_if<json::ParseError>(&parsed)) {
        child.reply(from, message.stream,
                    errorReply("The configuration is not JSON: " + error->detail));
        return;
    }
    json::Value tree = std::get<json::Value>(std::move(parsed));
    if (!tree.isObject()) {
        child.reply(from, message.stream, errorReply("The configuration must be an object."));
        return;
    }
    if (auto refused = unsupportedPart(tree)) {
        child.reply(from, message.stream, errorReply(*refused));
        return;
    }
    state().configuration = std::move(tree);
    log::info("router: configuration applied");
    child.reply(from, message.stream, "{}");
}

void reportStatus(ChildContext& child, std::string_view from, Message& message) {
    json::Value connections = json::Value::object();
    for (const char* counter : {"accepted", "active", "idle", "closed"}) {
        connections.set(counter, 0);
    }
    json::Value requests = json::Value::object();
    requests.set("total", 0);
    json::Value applications = json::Value::object();
    if (const auto* configured = state().configuration.find("applications");
        configured != nullptr && configured->isObject()) {
        for (const auto& member : configured->asObject()) {
            json::Value processes = json::Value::object();
            processes.set("running", 0);
            processes.set("starting", 0);
            processes.set("idle", 0);
            json::Value active = json::Value::object();
            active.set("active", 0);
            json::Value application = json::Value::object();
            application.set("processes", std::move(processes));
            application.set("requests", std::move(active));
            applications.set(member.key, std::move(application));
        }
    }
    json::Value status = json::Value::object();
    status.set("connections", std::move(connections));
    status.set("requests", std::move(requests));
    status.set("applications", std::move(applications));
    child.reply(from, message.stream, json::serialize(status));
}

void restartApplication(ChildContext& child, std::string_view from, Message& message) {
    const auto* applications = state().configuration.find("applications");
    if (applications == nullptr || applications->find(message.payload) == nullptr) {
        child.reply(from, message.stream, errorReply("No such application."));
        return;
    }
    child.reply(from, message.stream, "{}");
}

constexpr std::array<ChildMessageHandler, 3> kRouterHandlers = {{
    {MessageType::ConfigApply, applyConfiguration},
    {MessageType::StatusQuery, reportStatus},
    {MessageType::AppRestart, restartApplication},
}};

Result<ProcessState> routerSetup(ChildContext& child) {
    if (auto dropped = dropPrivileges(child.settings().unprivileged); !dropped) {
        return dropped.error();
    }
    return ProcessState::Ready;
}

int routerStart(ChildContext& child) {
    log::info("router started");
    return child.run();
}

}  // namespace

const ProcessKind kRouterKind = {
    .name = "router",
    .title = "canopy: router",
    .boot = BootRole::Service,
    .restart = RestartPolicy::Always,
    .setup = routerSetup,
    .start = routerStart,
    .handlers = kRouterHandlers,
    .peers = kRouterPeers,
};

}  // namespace canopy
