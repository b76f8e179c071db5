#include "core/controller/controller_kind.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <array>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <variant>

#include "core/base/file.h"
#include "core/base/log.h"
#include "core/config/validator.h"
#include "core/controller/config_state.h"
#include "core/controller/control_api.h"
#include "core/controller/control_http.h"
#include "core/controller/control_socket.h"
#include "core/json/value.h"
#include "core/process/child_context.h"
#include "core/process/credentials.h"
#include "core/process/main_context.h"
#include "core/process/process.h"
#include "core/tls/certificate_store.h"

namespace canopy {
namespace {

constexpr std::string_view kName = "controller";
constexpr auto kApplyTimeout = std::chrono::minutes(5);
constexpr auto kQueryTimeout = std::chrono::seconds(30);

// What main keeps for the controller: the listening socket it opened while
// privileged, the certificate store in the state directory, and the
// configuration a container image may bring (--config).
struct ControllerMainState {
    ControlSocket socket;
    std::optional<tls::CertificateStore> certificates;
    std::optional<std::string> initial_config;
};

// Parses and validates a configuration text; the reason when it is unusable.
Result<json::Value> usableConfiguration(std::string_view text, const ModuleRegistry& modules,
                                        const json::Value& certificates) {
    auto parsed = json::parse(text);
    if (auto* error = std::get_if<json::ParseError>(&parsed)) {
        return Error{fmt::format("not valid JSON at offset {}: {}", error->offset, error->detail)};
    }
    json::Value tree = std::get<json::Value>(std::move(parsed));
    auto valid = config::validateConfiguration(tree, validationContextFor(modules, certificates));
    if (!valid) {
        return Error{fmt::format("{} (at /config{})", valid.error().message, valid.error().path)};
    }
    return tree;
}

// ---- main's side ----

Result<void> controllerInit(MainContext& main) {
    const auto& settings = main.settings();
    auto state = std::make_shared<ControllerMainState>();
    if (!settings.initial_config.empty()) {
        auto text = readFile(settings.initial_config);
        if (!text) {
            return systemError(fmt::format("cannot read the configuration file \"{}\"",
                                           settings.initial_config.string()),
                               text.error().system_errno);
        }
        auto parsed = json::parse(*text);
        if (auto* error = std::get_if<json::ParseError>(&parsed)) {
            return Error{
                fmt::format("the configuration file \"{}\" is not valid JSON: {} "
                            "(line {}, column {})",
                            settings.initial_config.string(), error->detail,
                            error->line.value_or(0), error->column.value_or(0))};
        }
        state->initial_config = std::move(*text);
    }
    auto certificates = tls::CertificateStore::open(settings.state_dir / "certs");
    if (!certificates) {
        return certificates.error();
    }
    state->certificates = std::move(*certificates);

    auto socket = ControlSocket::listen(settings.control_address, settings.control_mode,
                                        settings.control_owner, settings.control_group);
    if (!socket) {
        return socket.error();
    }
    if (!socket->loopback()) {
        log::warn(
            "the control API listens on {}, which is not a loopback address: anyone who "
            "reaches it can reconfigure the server",
            settings.control_address);
    }
    state->socket = std::move(*socket);
    main.setKindState(kName, std::move(state));
    return {};
}

// The configuration the new controller starts from: the stored one if it is
// usable (else moved aside), or the --config file on a fresh state
// directory, or the default.
std::string startingConfiguration(MainContext& main, const json::Value& certificates,
                                  const ControllerMainState& state) {
    const auto& state_dir = main.settings().state_dir;
    auto stored = readStoredConfig(state_dir);
    if (!stored) {
        log::alert("{}; starting with the empty configuration", stored.error().message);
        return std::string(kDefaultConfiguration);
    }
    if (stored->has_value()) {
        auto usable = usableConfiguration(**stored, main.modules(), certificates);
        if (usable) {
            return **stored;
        }
        auto aside = setAsideStoredConfig(state_dir);
        log::alert(
            "the stored configuration is unusable: {}; it was moved to \"{}\" and the "
            "server starts with the empty configuration",
            usable.error().message, aside ? aside->string() : std::string("(could not be moved)"));
        return std::string(kDefaultConfiguration);
    }
    if (state.initial_config) {
        auto usable = usableConfiguration(*state.initial_config, main.modules(), certificates);
        if (usable) {
            return *state.initial_config;
        }
        log::alert(
            "the configuration file \"{}\" is unusable: {}; starting with the empty "
            "configuration",
            main.settings().initial_config.string(), usable.error().message);
    }
    return std::string(kDefaultConfiguration);
}

Result<void> controllerPrefork(MainContext& main, Process& process) {
    auto* state = main.kindState<ControllerMainState>(kName);
    if (state == nullptr) {
        return Error{"the control socket is not open"};
    }
    int copy = ::fcntl(state->socket.fd(), F_DUPFD_CLOEXEC, 3);
    if (copy < 0) {
        return systemError("fcntl(F_DUPFD_CLOEXEC)");
    }
    process.inherited_fds.emplace_back(copy);

    auto certificates = state->certificates->all();
    json::Value certificate_infos = certificates ? std::move(*certificates) : json::Value::object();
    if (!certificates) {
        log::alert("cannot read the certificate store: {}", certificates.error().detail);
    }
    DiscoveryReport modules{main.modules().modules(), {}};
    nlohmann::json data = {
        {"modules", toJson(modules)},
        {"configuration", startingConfiguration(main, certificate_infos, *state)},
        {"certificates", json::serialize(certificate_infos)},
    };
    process.data = data.dump();
    return {};
}

void replyTo(Process& process, uint32_t stream, const json::Value& answer) {
    if (auto sent = process.port.send(MessageType::Reply, json::serialize(answer), {}, stream);
        !sent) {
        log::warn("cannot answer the controller: {}", sent.error().message);
    }
}

json::Value failure(std::string_view title, std::string_view detail) {
    json::Value answer = json::Value::object();
    answer.set("error", std::string(title));
    if (!detail.empty()) {
        answer.set("detail", std::string(detail));
    }
    return answer;
}

void storeConfiguration(MainContext& main, Process& sender, Message& message) {
    auto stored = writeStoredConfig(main.settings().state_dir, message.payload);
    replyTo(sender, message.stream,
            stored ? json::Value::object() : failure(stored.error().message, {}));
}

void storeCertificate(MainContext& main, Process& sender, Message& message) {
    auto* state = main.kindState<ControllerMainState>(kName);
    size_t separator = message.payload.find('\0');
    if (state == nullptr || separator == std::string::npos) {
        replyTo(sender, message.stream, failure("Invalid certificate.", "malformed request"));
        return;
    }
    std::string name = message.payload.substr(0, separator);
    auto added =
        state->certificates->add(name, std::string_view(message.payload).substr(separator + 1));
    if (!added) {
        replyTo(sender, message.stream, failure(added.error().title, added.error().detail));
        return;
    }
    json::Value answer = json::Value::object();
    answer.set("info", std::move(*added));
    log::notice("certificate \"{}\" stored", name);
    replyTo(sender, message.stream, answer);
}

void deleteCertificate(MainContext& main, Process& sender, Message& message) {
    auto* state = main.kindState<ControllerMainState>(kName);
    if (state == nullptr) {
        replyTo(sender, message.stream, failure("Certificate doesn't exist.", {}));
        return;
    }
    auto removed = state->certificates->remove(message.payload);
    if (!removed) {
        replyTo(sender, message.stream, failure(removed.error().title, removed.error().detail));
        return;
    }
    log::notice("certificate \"{}\" deleted", message.payload);
    replyTo(sender, message.stream, json::Value::object());
}

constexpr std::array<MainMessageHandler, 3> kMainHandlers = {{
    {MessageType::ConfigStore, storeConfiguration},
    {MessageType::CertificateStore, storeCertificate},
    {MessageType::CertificateDelete, deleteCertificate},
}};

void controllerShutdown(MainContext& main) {
    if (auto* state = main.kindState<ControllerMainState>(kName); state != nullptr) {
        state->socket.close();
    }
    main.clearKindState(kName);
}

// ---- the controller's side ----

// A reply is a JSON object; {"error": ...} means the request failed.
Result<json::Value> decodeReply(Result<Message> reply) {
    if (!reply) {
        return reply.error();
    }
    auto parsed = json::parse(reply->payload);
    if (std::holds_alternative<json::ParseError>(parsed)) {
        return Error{"malformed reply"};
    }
    return std::get<json::Value>(std::move(parsed));
}

std::optional<ApiError> replyError(const json::Value& answer) {
    const json::Value* error = answer.find("error");
    if (error == nullptr || !error->isString()) {
        return std::nullopt;
    }
    const json::Value* detail = answer.find("detail");
    return ApiError{error->asString(),
                    detail != nullptr && detail->isString() ? detail->asString() : ""};
}

class ProcessBackend final : public ControlBackend {
  public:
    explicit ProcessBackend(ChildContext& child) : child_(child) {}

    void apply(const std::string& tree, std::function<void(Result<void>)> done) override {
        simple("router", MessageType::ConfigApply, tree, kApplyTimeout, std::move(done));
    }

    void store(const std::string& tree, std::function<void(Result<void>)> done) override {
        simple("main", MessageType::ConfigStore, tree, kQueryTimeout, std::move(done));
    }

    void storeCertificate(const std::string& name, const std::string& pem,
                          std::function<void(Result<json::Value>, ApiError)> done) override {
        std::string payload = name;
        payload.push_back('\0');
        payload += pem;
        child_.request(
            "main", MessageType::CertificateStore, payload, kQueryTimeout,
            [done = std::move(done)](Result<Message> reply) {
                auto answer = decodeReply(std::move(reply));
                if (!answer) {
                    done(answer.error(), {"Invalid certificate.", answer.error().message});
                    return;
                }
                if (auto error = replyError(*answer)) {
                    done(Error{error->detail}, *error);
                    return;
                }
                const json::Value* info = answer->find("info");
                done(info != nullptr ? *info : json::Value::object(), {});
            });
    }

    void deleteCertificate(const std::string& name,
                           std::function<void(Result<void>, ApiError)> done) override {
        child_.request("main", MessageType::CertificateDelete, name, kQueryTimeout,
                       [done = std::move(done)](Result<Message> reply) {
                           auto answer = decodeReply(std::move(reply));
                           if (!answer) {
                               done(answer.error(),
                                    {"Failed to delete the certificate.", answer.error().message});
                               return;
                           }
                           if (auto error = replyError(*answer)) {
                               done(Error{error->title}, *error);
                               return;
                           }
                           done({}, {});
                       });
    }

    void status(std::function<void(Result<json::Value>)> done) override {
        child_.request("router", MessageType::StatusQuery, {}, kQueryTimeout,
                       [done = std::move(done)](Result<Message> reply) {
                           auto answer = decodeReply(std::move(reply));
                           if (answer && !answer->isObject()) {
                               done(Error{"malformed status"});
                               return;
                           }
                           done(std::move(answer));
                       });
    }

    void restartApplication(const std::string& name,
                            std::function<void(Result<void>)> done) override {
        simple("router", MessageType::AppRestart, name, kQueryTimeout, std::move(done));
    }

  private:
    void simple(std::string_view to, MessageType type, std::string_view payload,
                std::chrono::milliseconds timeout, std::function<void(Result<void>)> done) {
        child_.request(to, type, payload, timeout, [done = std::move(done)](Result<Message> reply) {
            auto answer = decodeReply(std::move(reply));
            if (!answer) {
                done(answer.error());
                return;
            }
            if (auto error = replyError(*answer)) {
                done(Error{error->detail.empty() ? error->title : error->detail});
                return;
            }
            done({});
        });
    }

    ChildContext& child_;
};

Result<ProcessState> controllerSetup(ChildContext& child) {
    if (auto dropped = dropPrivileges(child.settings().unprivileged); !dropped) {
        return dropped.error();
    }
    return ProcessState::Ready;
}

int controllerStart(ChildContext& child) {
    if (child.inheritedFds().empty()) {
        log::alert("controller: no control socket was handed over");
        return 1;
    }
    ModuleRegistry modules;
    json::Value configuration;
    json::Value certificates;
    try {
        auto data = nlohmann::json::parse(child.data());
        auto report = parseDiscoveryReport(data.at("modules").dump());
        if (!report) {
            log::alert("controller: {}", report.error().message);
            return 1;
        }
        modules.assign(std::move(report->modules));
        configuration =
            std::get<json::Value>(json::parse(data.at("configuration").get<std::string>()));
        certificates =
            std::get<json::Value>(json::parse(data.at("certificates").get<std::string>()));
    } catch (const std::exception& failure) {
        log::alert("controller: malformed start data from main: {}", failure.what());
        return 1;
    }

    ProcessBackend backend(child);
    ControlApi api(backend, std::move(modules), std::move(configuration), std::move(certificates));
    child.setPeerConnectedHandler([&api](std::string_view peer) {
        if (peer == "router") {
            api.routerConnected();
        }
    });
    child.setPeerLostHandler([&api](std::string_view peer) {
        if (peer == "router") {
            api.routerLost();
        }
    });
    ControlHttpServer server(child.io(), child.inheritedFds().front(),
                             [&api](ControlRequest request, ControlResponder respond) {
                                 api.handle(std::move(request), std::move(respond));
                             });
    server.start();
    log::info("controller started");
    return child.run();
}

}  // namespace

const ProcessKind kControllerKind = {
    .name = kName,
    .title = "canopy: controller",
    .boot = BootRole::Service,
    .restart = RestartPolicy::Always,
    .init = controllerInit,
    .prefork = controllerPrefork,
    .setup = controllerSetup,
    .start = controllerStart,
    .shutdown = controllerShutdown,
    .main_handlers = kMainHandlers,
};

}  // namespace canopy
