#include "core/router/router_kind.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <boost/asio/steady_timer.hpp>
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
#include "core/router/applications.h"
#include "core/router/listener_sockets.h"
#include "core/router/main_reply.h"
#include "core/router/router_engine.h"
#include "core/router/router_snapshot.h"
#include "core/tls/certificate_store.h"

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

void openAccessLog(MainContext&, Process& sender, Message& message) {
    UniqueFd file(::open(message.payload.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
    if (!file) {
        auto error = systemError(fmt::format("cannot open the access log \"{}\"", message.payload));
        log::error("{}", error.message);
        (void)sender.port.send(MessageType::Reply, errorReply(error.message), {}, message.stream);
        return;
    }
    std::array<int, 1> fds = {file.get()};
    (void)sender.port.send(MessageType::Reply, "{}", fds, message.stream);
}

// The router needs the bundles of its TLS listeners, but the store is
// root's (0700) and the router is not: main opens the file and hands over
// the descriptor, as it does for listening sockets. Only store names are
// accepted, so no other file can be asked for.
void openCertificate(MainContext& main, Process& sender, Message& message) {
    const std::string& name = message.payload;
    if (!tls::CertificateStore::isValidName(name)) {
        (void)sender.port.send(MessageType::Reply, errorReply("invalid certificate name"), {},
                               message.stream);
        return;
    }
    auto path = main.settings().state_dir / "certs" / name;
    UniqueFd file(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
    struct stat status {};
    if (!file || ::fstat(file.get(), &status) != 0 || !S_ISREG(status.st_mode)) {
        auto error = systemError(fmt::format("cannot open the certificate \"{}\"", name));
        log::error("{}", error.message);
        (void)sender.port.send(MessageType::Reply, errorReply(error.message), {}, message.stream);
        return;
    }
    std::array<int, 1> fds = {file.get()};
    (void)sender.port.send(MessageType::Reply, "{}", fds, message.stream);
}

constexpr std::array<MainMessageHandler, 4> kMainHandlers = {{
    {MessageType::ListenerOpen, openListener},
    {MessageType::ListenerClose, closeListener},
    {MessageType::AccessLogOpen, openAccessLog},
    {MessageType::CertificateOpen, openCertificate},
}};

// ---- the router's side ----

std::unique_ptr<RouterEngine>& engine() {
    static std::unique_ptr<RouterEngine> router_engine;
    return router_engine;
}

// Lives on the router's main thread, beside the control messages.
std::unique_ptr<Applications>& applications() {
    static std::unique_ptr<Applications> router_applications;
    return router_applications;
}

// One configuration change: the sockets it needs from main, then the swap.
struct PendingApply {
    std::shared_ptr<RouterSnapshot> snapshot;  // TLS contexts are attached before publishing
    std::map<std::string, std::string, std::less<>> certificates;  // name -> PEM bundle
    std::string asker;
    uint32_t stream = 0;
    size_t waiting = 0;
    std::vector<std::pair<std::string, UniqueFd>> opened;
    UniqueFd access_log;
    std::vector<std::string> errors;
};

// A bundle is a few kilobytes; anything past this is not one.
constexpr size_t kMaxBundleSize = 1 << 20;

Result<std::string> readBundle(int fd, const std::string& name) {
    std::string text;
    char block[8192];
    while (true) {
        ssize_t got = ::read(fd, block, sizeof block);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got < 0) {
            return systemError(fmt::format("cannot read the certificate \"{}\"", name));
        }
        if (got == 0) {
            return text;
        }
        text.append(block, static_cast<size_t>(got));
        if (text.size() > kMaxBundleSize) {
            return Error{fmt::format("the certificate \"{}\" is too large", name)};
        }
    }
}

void finishApply(ChildContext& child, const std::shared_ptr<PendingApply>& apply) {
    RouterEngine& router = *engine();
    if (apply->errors.empty()) {
        if (auto attached = apply->snapshot->attachTls(apply->certificates); !attached) {
            apply->errors.push_back(attached.error().message);
        }
    }
    if (!apply->errors.empty()) {
        applications()->abandon();
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
    if (apply->snapshot->access_log) {
        apply->snapshot->access_log->setFile(std::move(apply->access_log));
    }
    router.resize(apply->snapshot->listen_threads);
    auto previous = router.snapshot();
    router.publish(apply->snapshot);
    applications()->commit(apply->snapshot->applications);
    if (previous && previous->access_log) {
        previous->access_log->flush();
    }
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
    // One count for this function itself, released at the end, so that
    // answers arriving while requests are still being sent cannot finish
    // the change early.
    apply->waiting = 1;
    auto answered = [&child, apply] {
        if (--apply->waiting == 0) {
            finishApply(child, apply);
        }
    };
    for (const auto& [address, listener] : apply->snapshot->listeners) {
        if (engine()->listening(address)) {
            continue;
        }
        ++apply->waiting;
        json::Value request = json::Value::object();
        request.set("address", address);
        request.set("backlog", listener.backlog);
        child.request(
            "main", MessageType::ListenerOpen, json::serialize(request), kMainTimeout,
            [apply, address = address, answered](Result<Message> reply) {
                if (reply && reply->fds.size() == 1) {
                    apply->opened.emplace_back(address, std::move(reply->fds[0]));
                } else {
                    apply->errors.push_back(replyReason(reply, "cannot listen on " + address));
                }
                answered();
            });
    }
    for (const auto& name : apply->snapshot->certificateNames()) {
        ++apply->waiting;
        child.request("main", MessageType::CertificateOpen, name, kMainTimeout,
                      [apply, name, answered](Result<Message> reply) {
                          if (reply && reply->fds.size() == 1) {
                              auto bundle = readBundle(reply->fds[0].get(), name);
                              if (bundle) {
                                  apply->certificates[name] = std::move(*bundle);
                              } else {
                                  apply->errors.push_back(bundle.error().message);
                              }
                          } else {
                              apply->errors.push_back(replyReason(
                                  reply, "cannot read the certificate \"" + name + "\""));
                          }
                          answered();
                      });
    }
    if (const auto& access_log = apply->snapshot->access_log) {
        ++apply->waiting;
        child.request(
            "main", MessageType::AccessLogOpen, access_log->path(), kMainTimeout,
            [apply, answered](Result<Message> reply) {
                if (reply && reply->fds.size() == 1) {
                    apply->access_log = std::move(reply->fds[0]);
                } else {
                    apply->errors.push_back(replyReason(reply, "cannot open the access log"));
                }
                answered();
            });
    }
    // New and changed applications start their spare processes; the change
    // is answered once they are ready, or refused with the reason one failed.
    ++apply->waiting;
    applications()->prepare(apply->snapshot->applications,
                            [apply, answered](std::optional<std::string> error) {
                                if (error) {
                                    apply->errors.push_back(std::move(*error));
                                }
                                answered();
                            });
    answered();
}

void reopenFiles(ChildContext& child, std::string_view, Message&) {
    auto current = engine()->snapshot();
    if (!current || !current->access_log) {
        return;
    }
    auto access_log = current->access_log;
    access_log->flush();
    child.request("main", MessageType::AccessLogOpen, access_log->path(), kMainTimeout,
                  [access_log](Result<Message> reply) {
                      if (reply && reply->fds.size() == 1) {
                          access_log->setFile(std::move(reply->fds[0]));
                      } else {
                          log::alert("cannot reopen the access log \"{}\": {}", access_log->path(),
                                     replyReason(reply, "no descriptor"));
                      }
                  });
}

void reportStatus(ChildContext& child, std::string_view from, Message& message) {
    RouterEngine& router = *engine();
    json::Value requests = json::Value::object();
    requests.set("total", router.counters().requests.load(std::memory_order_relaxed));
    json::Value status = json::Value::object();
    status.set("connections", router.connectionsStatus());
    status.set("requests", std::move(requests));
    status.set("applications", applications()->status());
    child.reply(from, message.stream, json::serialize(status));
}

void restartApplication(ChildContext& child, std::string_view from, Message& message) {
    applications()->restart(
        message.payload, [&child, from = std::string(from),
                          stream = message.stream](std::optional<std::string> error) {
            child.reply(from, stream, error ? errorReply(*error) : std::string("{}"));
        });
}

constexpr std::array<ChildMessageHandler, 4> kRouterHandlers = {{
    {MessageType::ConfigApply, applyConfiguration},
    {MessageType::ReopenFiles, reopenFiles},
    {MessageType::StatusQuery, reportStatus},
    {MessageType::AppRestart, restartApplication},
}};

Result<ProcessState> routerSetup(ChildContext& child) {
    if (auto dropped = dropPrivileges(child.settings().unprivileged); !dropped) {
        return dropped.error();
    }
    return ProcessState::Ready;
}

// Buffered access log lines reach the file at least this often.
constexpr auto kAccessLogFlushInterval = std::chrono::milliseconds(500);

void flushAccessLogPeriodically(boost::asio::steady_timer& timer) {
    timer.expires_after(kAccessLogFlushInterval);
    timer.async_wait([&timer](const boost::system::error_code& ec) {
        if (ec) {
            return;
        }
        if (auto current = engine()->snapshot(); current && current->access_log) {
            current->access_log->flush();
        }
        flushAccessLogPeriodically(timer);
    });
}

int routerStart(ChildContext& child) {
    engine() = std::make_unique<RouterEngine>(1);
    applications() = std::make_unique<Applications>(child);
    engine()->setApplications(child.io().get_executor(), [](std::shared_ptr<AppCall> call) {
        if (applications()) {
            applications()->submit(call);
        } else {
            call->failUnavailable(503);
        }
    });
    boost::asio::steady_timer flusher(child.io());
    flushAccessLogPeriodically(flusher);
    log::info("router started");
    int code = child.run();
    auto last = engine()->snapshot();
    // Applications first: requests they still hold are answered through
    // the connections' threads, which must still exist.
    applications().reset();
    engine().reset();  // joins the workers: no line is recorded after this
    if (last && last->access_log) {
        last->access_log->flush();
    }
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
