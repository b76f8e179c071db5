#include "core/router/router_kind.h"

#include <array>
#include <memory>
#include <set>
#include <variant>

#include "core/base/log.h"
#include "core/base/socket_address.h"
#include "core/json/value.h"
#include "core/process/child_context.h"
#include "core/process/credentials.h"
#include "core/process/main_context.h"
#include "core/process/process.h"
#include "core/router/listener_sockets.h"
#include "core/router/router_engine.h"
#include "core/router/router_snapshot.h"

namespace canopy {
namespace {

constexpr std::string_view kName = "router";
constexpr std::array<std::string_view, 1> kRouterPeers = {"controller"};
constexpr auto kMainTimeout = std::chrono::seconds(30);

std::string errorReply(std::string_view reason) {
    json::Value reply = json::Value::object();
    reply.set("error", std::string(reason));
    return json::serialize(reply);
}

// ---- main's side: the listening sockets ----

Result<void> routerInit(MainContext& main) {
    main.setKindState(kName, std::make_shared<ListenerSockets>());
    return {};
}

void routerShutdown(MainContext& main) {
    if (auto* sockets = main.kindState<ListenerSockets>(kName); sockets != nullptr) {
        sockets->closeAll();
    }
    main.clearKindState(kName);
}

void openListener(MainContext& main, Process& sender, Message& message) {
    auto* sockets = main.kindState<ListenerSockets>(kName);
    auto parsed = json::parse(message.payload);
    const json::Value* request = std::get_if<json::Value>(&parsed);
    const json::Value* address = request == nullptr ? nullptr : request->find("address");
    const json::Value* backlog = request == nullptr ? nullptr : request->find("backlog");
    if (sockets == nullptr || address == nullptr || !address->isString()) {
        (void)sender.port.send(MessageType::Reply, errorReply("malformed listener request"), {},
                               message.stream);
        return;
    }
    int requested_backlog = -1;
    if (backlog != nullptr && backlog->isNumber() && backlog->asNumber().integer()) {
        requested_backlog = static_cast<int>(*backlog->asNumber().integer());
    }
    auto opened = sockets->open(address->asString(), requested_backlog);
    if (!opened) {
        (void)sender.port.send(MessageType::Reply, errorReply(opened.error().message), {},
                               message.stream);
        return;
    }
    std::array<int, 1> fds = {*opened};
    (void)sender.port.send(MessageType::Reply, "{}", fds, message.stream);
}

void closeListener(MainContext& main, Process&, Message& message) {
    if (auto* sockets = main.kindState<ListenerSockets>(kName); sockets != nullptr) {
        sockets->close(message.payload);
    }
}

constexpr std::array<MainMessageHandler, 2> kMainHandlers = {{
    {MessageType::ListenerOpen, openListener},
    {MessageType::ListenerClose, closeListener},
}};

// ---- the router's side ----

std::unique_ptr<RouterEngine>& engine() {
    static std::unique_ptr<RouterEngine> router_engine;
    return router_engine;
}

// One configuration change: the sockets it needs from main, then the swap.
struct PendingApply {
    std::shared_ptr<const RouterSnapshot> snapshot;
    std::string asker;
    uint32_t stream = 0;
    size_t waiting = 0;
    std::vector<std::pair<std::string, UniqueFd>> opened;
    std::vector<std::string> errors;
};

void finishApply(ChildContext& child, const std::shared_ptr<PendingApply>& apply) {
    RouterEngine& router = *engine();
    if (!apply->errors.empty()) {
        // Sockets opened for this change only go back; the old ones stay.
        for (const auto& [address, fd] : apply->opened) {
            (void)child.mainPort().send(MessageType::ListenerClose, address);
        }
        child.reply(apply->asker, apply->stream, errorReply(apply->errors.front()));
        return;
    }
    for (auto& [address, fd] : apply->opened) {
        auto parsed = parseSocketAddress(address);
        router.addListener(address, fd.get(), parsed ? parsed->family() : AF_INET);
    }
    router.resize(apply->snapshot->listen_threads);
    router.publish(apply->snapshot);
    for (const auto& address : router.listenerAddresses()) {
        if (!apply->snapshot->listeners.contains(address)) {
            router.removeListener(address);
            (void)child.mainPort().send(MessageType::ListenerClose, address);
        }
    }
    log::info("router: configuration applied ({} listeners)", apply->snapshot->listeners.size());
    child.reply(apply->asker, apply->stream, "{}");
}

void applyConfiguration(ChildContext& child, std::string_view from, Message& message) {
    auto parsed = json::parse(message.payload);
    if (auto* error = std::get_if<json::ParseError>(&parsed)) {
        child.reply(from, message.stream,
                    errorReply("The configuration is not JSON: " + error->detail));
        return;
    }
    auto snapshot = RouterSnapshot::build(std::get<json::Value>(parsed));
    if (!snapshot) {
        child.reply(from, message.stream, errorReply(snapshot.error().message));
        return;
    }
    auto apply = std::make_shared<PendingApply>();
    apply->snapshot = std::move(*snapshot);
    apply->asker = std::string(from);
    apply->stream = message.stream;
    for (const auto& [address, listener] : apply->snapshot->listeners) {
        if (engine()->listening(address)) {
            continue;
        }
        ++apply->waiting;
        json::Value request = json::Value::object();
        request.set("address", address);
        request.set("backlog", listener.backlog);
        child.request("main", MessageType::ListenerOpen, json::serialize(request), kMainTimeout,
                      [&child, apply, address = address](Result<Message> reply) {
                          if (!reply) {
                              apply->errors.push_back(reply.error().message);
                          } else if (reply->fds.size() == 1) {
                              apply->opened.emplace_back(address, std::move(reply->fds[0]));
                          } else {
                              auto answer = json::parse(reply->payload);
                              const auto* tree = std::get_if<json::Value>(&answer);
                              const auto* error = tree == nullptr ? nullptr : tree->find("error");
                              apply->errors.push_back(error != nullptr && error->isString()
                                                          ? error->asString()
                                                          : "cannot listen on " + address);
                          }
                          if (--apply->waiting == 0) {
                              finishApply(child, apply);
                          }
                      });
    }
    if (apply->waiting == 0) {
        finishApply(child, apply);
    }
}

void reportStatus(ChildContext& child, std::string_view from, Message& message) {
    RouterEngine& router = *engine();
    json::Value requests = json::Value::object();
    requests.set("total", router.counters().requests.load(std::memory_order_relaxed));
    json::Value status = json::Value::object();
    status.set("connections", router.connectionsStatus());
    status.set("requests", std::move(requests));
    status.set("applications", json::Value::object());
    child.reply(from, message.stream, json::serialize(status));
}

void restartApplication(ChildContext& child, std::string_view from, Message& message) {
    // Applications are refused at apply time until they can run.
    child.reply(from, message.stream, errorReply("No such application: " + message.payload));
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
    engine() = std::make_unique<RouterEngine>(1);
    log::info("router started");
    int code = child.run();
    engine().reset();
    return code;
}

}  // namespace

const ProcessKind kRouterKind = {
    .name = kName,
    .title = "canopy: router",
    .boot = BootRole::Service,
    .restart = RestartPolicy::Always,
    .init = routerInit,
    .setup = routerSetup,
    .start = routerStart,
    .shutdown = routerShutdown,
    .main_handlers = kMainHandlers,
    .handlers = kRouterHandlers,
    .peers = kRouterPeers,
};

}  // namespace canopy
