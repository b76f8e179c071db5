#include "core/controller/control_api.h"

#include <fmt/format.h>

#include <variant>

#include "core/base/log.h"
#include "core/config/validator.h"
#include "core/controller/config_state.h"
#include "core/json/path.h"

namespace canopy {
namespace {

constexpr std::string_view kInvalidJson = "Invalid JSON.";
constexpr std::string_view kInvalidConfiguration = "Invalid configuration.";
constexpr std::string_view kNoValue = "Value doesn't exist.";
constexpr std::string_view kMethodNotAllowed = "Method isn't allowed.";
constexpr std::string_view kInvalidMethod = "Invalid method.";
constexpr std::string_view kInvalidPath = "Invalid path.";
constexpr std::string_view kApplyFailed = "Failed to apply new configuration.";

ControlResponse jsonResponse(int status, const json::Value& body) {
    return {status, json::serializePretty(body), {}};
}

bool isWrite(std::string_view method) {
    return method == "PUT" || method == "POST" || method == "DELETE";
}

// The query's dry_run flag: "dry_run", "dry_run=1" or "dry_run=true".
bool wantsDryRun(std::string_view query) {
    while (!query.empty()) {
        size_t amp = query.find('&');
        std::string_view pair = query.substr(0, amp);
        if (pair == "dry_run" || pair == "dry_run=1" || pair == "dry_run=true") {
            return true;
        }
        if (amp == std::string_view::npos) {
            break;
        }
        query.remove_prefix(amp + 1);
    }
    return false;
}

// FNV-1a over the compact tree: the same configuration has the same tag,
// also across restarts.
std::string tagOf(const json::Value& tree) {
    uint64_t hash = 14695981039346656037ULL;
    for (unsigned char byte : json::serialize(tree)) {
        hash ^= byte;
        hash *= 1099511628211ULL;
    }
    return fmt::format("\"{:016x}\"", hash);
}

json::Value modulesStatus(const ModuleRegistry& modules) {
    json::Value status = json::Value::object();
    for (const auto& module : modules.modules()) {  // newest first within a type
        json::Value entry = json::Value::object();
        entry.set("version", module.version);
        entry.set("lib", module.file);
        json::Value* existing = status.find(module.type);
        if (existing == nullptr) {
            status.set(module.type, std::move(entry));
        } else if (existing->isArray()) {
            existing->asArray().push_back(std::move(entry));
        } else {
            json::Array versions;
            versions.push_back(*existing);
            versions.push_back(std::move(entry));
            *existing = json::Value(std::move(versions));
        }
    }
    return status;
}

bool certificateInUse(const json::Value& configuration, std::string_view name) {
    const auto* listeners = configuration.find("listeners");
    if (listeners == nullptr || !listeners->isObject()) {
        return false;
    }
    for (const auto& listener : listeners->asObject()) {
        const auto* tls = listener.value.find("tls");
        const auto* certificate = tls == nullptr ? nullptr : tls->find("certificate");
        if (certificate == nullptr) {
            continue;
        }
        if (certificate->isString() && certificate->asString() == name) {
            return true;
        }
        if (certificate->isArray()) {
            for (const auto& item : certificate->asArray()) {
                if (item.isString() && item.asString() == name) {
                    return true;
                }
            }
        }
    }
    return false;
}

}  // namespace

config::ValidationContext validationContextFor(const ModuleRegistry& modules,
                                               const json::Value& certificates) {
    config::ValidationContext context;
    context.modules = &modules;
    context.certificate_exists = [&certificates](std::string_view name) {
        return certificates.find(name) != nullptr;
    };
    // Only what this build really serves passes validation.
    context.features.tls = true;  // listeners.*.tls: the router serves it (core/tls)
    context.features.isolation = false;
    context.features.openat2 = true;  // share's chroot and resolve limits
    context.features.compression_encodings.clear();
    return context;
}

ControlResponse successResponse(std::string_view message) {
    json::Value body = json::Value::object();
    body.set("success", std::string(message));
    return jsonResponse(200, body);
}

ControlResponse errorResponse(int status, std::string_view title, std::string_view detail) {
    json::Value body = json::Value::object();
    body.set("error", std::string(title));
    if (!detail.empty()) {
        body.set("detail", std::string(detail));
    }
    return jsonResponse(status, body);
}

ControlApi::ControlApi(ControlBackend& backend, ModuleRegistry modules, json::Value configuration,
                       json::Value certificates)
    : backend_(backend),
      modules_(std::move(modules)),
      configuration_(std::move(configuration)),
      certificates_(std::move(certificates)) {}

std::string ControlApi::etag() const {
    return tagOf(configuration_);
}

void ControlApi::routerConnected() {
    backend_.apply(json::serialize(configuration_), [this](Result<void> applied) {
        if (applied) {
            router_ready_ = true;
            runQueue();
            return;
        }
        if (applied.error().system_errno != 0) {
            // The router went away before it answered: nothing was refused.
            // Its replacement gets the same tree when it connects.
            log::warn(
                "the router did not take the configuration ({}); waiting for it to "
                "return",
                applied.error().message);
            return;
        }
        log::alert(
            "the router refused the stored configuration ({}); starting with the empty "
            "configuration",
            applied.error().message);
        configuration_ = std::get<json::Value>(json::parse(kDefaultConfiguration));
        backend_.apply(json::serialize(configuration_), [this](Result<void> empty_applied) {
            if (!empty_applied && empty_applied.error().system_errno != 0) {
                return;  // gone again; the next router gets the empty tree
            }
            if (!empty_applied) {
                log::alert("the router refused the empty configuration: {}",
                           empty_applied.error().message);
            }
            router_ready_ = true;
            runQueue();
        });
    });
}

void ControlApi::routerLost() {
    router_ready_ = false;
}

void ControlApi::handle(ControlRequest request, ControlResponder respond) {
    // Every request waits its turn, as in Unit: a GET during a change sees
    // the tree before or after it, never a half-made one.
    queue_.push_back({std::move(request), std::move(respond)});
    runQueue();
}

void ControlApi::runQueue() {
    while (!busy_ && router_ready_ && !queue_.empty()) {
        busy_ = true;
        Job job = std::move(queue_.front());
        queue_.pop_front();
        handleNow(job);
    }
}

void ControlApi::finishJob(ControlResponder& respond, ControlResponse response) {
    respond(std::move(response));
    busy_ = false;
    runQueue();
}

void ControlApi::handleNow(Job& job) {
    std::string_view target = job.request.target;
    size_t question = target.find('?');
    std::string_view query = question == std::string_view::npos ? "" : target.substr(question + 1);
    auto normalized = json::normalizeRequestPath(target.substr(0, question));
    if (auto* error = std::get_if<json::PathError>(&normalized)) {
        finishJob(job.respond, errorResponse(400, "Invalid request.", error->detail));
        return;
    }
    auto split = json::splitPath(std::get<std::string>(normalized));
    if (auto* error = std::get_if<json::PathError>(&split)) {
        finishJob(job.respond, errorResponse(isWrite(job.request.method) ? 400 : 404,
                                             isWrite(job.request.method) ? kInvalidPath : kNoValue,
                                             error->detail));
        return;
    }
    auto segments = std::get<std::vector<std::string>>(std::move(split));
    if (segments.empty()) {
        handleRoot(job);
        return;
    }
    std::string endpoint = segments.front();
    std::vector<std::string> rest(segments.begin() + 1, segments.end());
    if (endpoint == "config") {
        handleConfig(job, rest, wantsDryRun(query));
    } else if (endpoint == "status") {
        handleStatus(job, rest);
    } else if (endpoint == "certificates") {
        handleCertificates(job, rest);
    } else if (endpoint == "control") {
        handleControl(job, rest);
    } else {
        finishJob(job.respond, errorResponse(404, kNoValue));
    }
}

void ControlApi::handleRoot(Job& job) {
    if (job.request.method != "GET") {
        finishJob(job.respond, errorResponse(405, kInvalidMethod));
        return;
    }
    backend_.status([this, respond = std::move(job.respond)](Result<json::Value> router) mutable {
        json::Value status = router ? std::move(*router) : json::Value::object();
        status.set("modules", modulesStatus(modules_));
        json::Value root = json::Value::object();
        root.set("certificates", certificates_);
        root.set("config", configuration_);
        root.set("status", std::move(status));
        finishJob(respond, jsonResponse(200, root));
    });
}

void ControlApi::handleConfig(Job& job, const std::vector<std::string>& path, bool dry_run) {
    const std::string& method = job.request.method;
    if (method == "GET") {
        const json::Value* node = json::lookup(configuration_, path);
        if (node == nullptr) {
            finishJob(job.respond, errorResponse(404, kNoValue));
            return;
        }
        ControlResponse response = jsonResponse(200, *node);
        response.headers.emplace_back("ETag", etag());
        finishJob(job.respond, std::move(response));
        return;
    }
    if (!isWrite(method)) {
        finishJob(job.respond, errorResponse(405, kMethodNotAllowed));
        return;
    }
    const std::string& expected = job.request.if_match;
    if (!expected.empty() && expected != "*" && expected != etag()) {
        finishJob(
            job.respond,
            errorResponse(412, "Precondition failed.",
                          fmt::format("The configuration changed: its ETag is now {}.", etag())));
        return;
    }

    json::Value body;
    if (method != "DELETE") {
        auto parsed = json::parse(job.request.body);
        if (auto* error = std::get_if<json::ParseError>(&parsed)) {
            json::Value answer = json::Value::object();
            answer.set("error", std::string(kInvalidJson));
            answer.set("detail", error->detail);
            json::Value location = json::Value::object();
            location.set("offset", static_cast<uint64_t>(error->offset));
            if (error->line && error->column) {
                location.set("line", static_cast<uint64_t>(*error->line));
                location.set("column", static_cast<uint64_t>(*error->column));
            }
            answer.set("location", std::move(location));
            finishJob(job.respond, jsonResponse(400, answer));
            return;
        }
        body = std::get<json::Value>(std::move(parsed));
    }

    json::EditResult edited = method == "PUT"    ? json::put(configuration_, path, std::move(body))
                              : method == "POST" ? json::post(configuration_, path, std::move(body))
                                                 : json::remove(configuration_, path);
    if (!edited) {
        if (edited.error() == json::EditError::MethodNotAllowed) {
            finishJob(job.respond, errorResponse(405, kMethodNotAllowed));
        } else {
            finishJob(job.respond, errorResponse(404, kNoValue));
        }
        return;
    }
    change(job, std::move(edited).tree(), dry_run);
}

void ControlApi::change(Job& job, json::Value tree, bool dry_run) {
    auto validated =
        config::validateConfiguration(tree, validationContextFor(modules_, certificates_));
    if (!validated) {
        json::Value answer = json::Value::object();
        answer.set("error", std::string(kInvalidConfiguration));
        answer.set("detail", validated.error().message);
        answer.set("path", "/config" + validated.error().path);
        finishJob(job.respond, jsonResponse(400, answer));
        return;
    }
    if (dry_run) {
        finishJob(job.respond, successResponse("The configuration is valid; nothing was changed."));
        return;
    }
    std::string text = json::serialize(tree);
    backend_.apply(text, [this, text, tree = std::move(tree),
                          respond = std::move(job.respond)](Result<void> applied) mutable {
        if (!applied) {
            log::error("the router refused a new configuration: {}", applied.error().message);
            finishJob(respond, errorResponse(500, kApplyFailed, applied.error().message));
            return;
        }
        configuration_ = std::move(tree);
        backend_.store(text, [this, respond = std::move(respond)](Result<void> stored) mutable {
            if (!stored) {
                // The change is live; losing it at the next start needs an operator.
                log::alert("the new configuration is applied but could not be saved: {}",
                           stored.error().message);
            }
            ControlResponse response = successResponse("Reconfiguration done.");
            response.headers.emplace_back("ETag", etag());
            finishJob(respond, std::move(response));
        });
    });
}

void ControlApi::handleStatus(Job& job, const std::vector<std::string>& path) {
    if (job.request.method != "GET") {
        finishJob(job.respond, errorResponse(405, kInvalidMethod));
        return;
    }
    backend_.status(
        [this, path, respond = std::move(job.respond)](Result<json::Value> router) mutable {
            if (!router) {
                finishJob(respond,
                          errorResponse(500, "Failed to read the status.", router.error().message));
                return;
            }
            json::Value status = json::Value::object();
            status.set("modules", modulesStatus(modules_));
            for (const auto& member : router->asObject()) {
                status.set(member.key, member.value);
            }
            const json::Value* node = json::lookup(status, path);
            if (node == nullptr) {
                finishJob(respond, errorResponse(404, kInvalidPath));
                return;
            }
            finishJob(respond, jsonResponse(200, *node));
        });
}

void ControlApi::handleCertificates(Job& job, const std::vector<std::string>& path) {
    const std::string& method = job.request.method;
    if (method == "GET") {
        if (path.empty()) {
            finishJob(job.respond, jsonResponse(200, certificates_));
            return;
        }
        if (certificates_.find(path.front()) == nullptr) {
            finishJob(job.respond, errorResponse(404, "Certificate doesn't exist."));
            return;
        }
        const json::Value* node = json::lookup(certificates_, path);
        if (node == nullptr) {
            finishJob(job.respond, errorResponse(404, kInvalidPath));
            return;
        }
        finishJob(job.respond, jsonResponse(200, *node));
        return;
    }
    if (method != "PUT" && method != "DELETE") {
        finishJob(job.respond, errorResponse(405, kInvalidMethod));
        return;
    }
    if (path.size() != 1 || path.front().empty()) {
        finishJob(job.respond, errorResponse(400, "Invalid certificate name."));
        return;
    }
    std::string name = path.front();
    if (method == "PUT") {
        if (certificates_.find(name) != nullptr) {
            finishJob(job.respond, errorResponse(400, "Certificate already exists."));
            return;
        }
        backend_.storeCertificate(
            name, job.request.body,
            [this, name, respond = std::move(job.respond)](Result<json::Value> info,
                                                           ApiError error) mutable {
                if (!info) {
                    finishJob(respond, errorResponse(400, error.title, error.detail));
                    return;
                }
                certificates_.set(name, std::move(*info));
                finishJob(respond, successResponse("Certificate chain uploaded."));
            });
        return;
    }
    if (certificates_.find(name) == nullptr) {
        finishJob(job.respond, errorResponse(404, "Certificate doesn't exist."));
        return;
    }
    if (certificateInUse(configuration_, name)) {
        finishJob(job.respond, errorResponse(400, "Certificate is used in the configuration."));
        return;
    }
    backend_.deleteCertificate(name, [this, name, respond = std::move(job.respond)](
                                         Result<void> deleted, ApiError error) mutable {
        if (!deleted) {
            finishJob(respond, errorResponse(500, error.title, error.detail));
            return;
        }
        certificates_.erase(name);
        finishJob(respond, successResponse("Certificate deleted."));
    });
}

void ControlApi::handleControl(Job& job, const std::vector<std::string>& path) {
    if (job.request.method != "GET") {
        finishJob(job.respond, errorResponse(405, kMethodNotAllowed));
        return;
    }
    if (path.size() != 3 || path[0] != "applications" || path[2] != "restart") {
        finishJob(job.respond, errorResponse(404, kNoValue));
        return;
    }
    const json::Value* applications = configuration_.find("applications");
    if (applications == nullptr || applications->find(path[1]) == nullptr) {
        finishJob(job.respond, errorResponse(404, kNoValue));
        return;
    }
    backend_.restartApplication(
        path[1], [this, respond = std::move(job.respond)](Result<void> restarted) mutable {
            if (!restarted) {
                finishJob(respond,
                          errorResponse(500, "Failed to restart app.", restarted.error().message));
                return;
            }
            finishJob(respond, successResponse("Ok"));
        });
}

}  // namespace canopy
