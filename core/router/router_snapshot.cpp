#include "core/router/router_snapshot.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/http/response.h"

namespace canopy {
namespace {

std::optional<int64_t> integerAt(const json::Value* object, std::string_view key) {
    const json::Value* value = object == nullptr ? nullptr : object->find(key);
    if (value == nullptr || !value->isNumber()) {
        return std::nullopt;
    }
    return value->asNumber().integer();
}

std::optional<bool> boolAt(const json::Value* object, std::string_view key) {
    const json::Value* value = object == nullptr ? nullptr : object->find(key);
    return value != nullptr && value->isBool() ? std::optional<bool>(value->asBool())
                                               : std::nullopt;
}

// The validator checked types and ranges; this only reads them.
std::shared_ptr<const ApplicationSpec> compileApplication(const std::string& name,
                                                          const json::Value& object) {
    auto spec = std::make_shared<ApplicationSpec>();
    spec->name = name;
    spec->conf = json::serialize(object);
    if (const json::Value* processes = object.find("processes"); processes != nullptr) {
        if (processes->isNumber()) {
            uint32_t count = static_cast<uint32_t>(processes->asNumber().integer().value_or(1));
            spec->max_processes = count;
            spec->spare_processes = count;
        } else if (processes->isObject()) {
            spec->max_processes = static_cast<uint32_t>(integerAt(processes, "max").value_or(1));
            spec->spare_processes =
                static_cast<uint32_t>(integerAt(processes, "spare").value_or(0));
            spec->idle_timeout = std::chrono::seconds(
                integerAt(processes, "idle_timeout").value_or(spec->idle_timeout.count()));
        }
    }
    spec->max_processes = std::max<uint32_t>(spec->max_processes, 1);
    spec->spare_processes = std::min(spec->spare_processes, spec->max_processes);
    if (const json::Value* limits = object.find("limits"); limits != nullptr) {
        if (const json::Value* timeout = limits->find("timeout");
            timeout != nullptr && timeout->isNumber()) {
            spec->request_timeout =
                std::chrono::milliseconds(static_cast<int64_t>(timeout->asNumber().value * 1000));
        }
        spec->request_limit = static_cast<uint64_t>(integerAt(limits, "requests").value_or(0));
        spec->shm_limit = static_cast<uint64_t>(integerAt(limits, "shm").value_or(0));
    }
    spec->threads =
        static_cast<uint32_t>(std::max<int64_t>(integerAt(&object, "threads").value_or(1), 1));
    if (const json::Value* targets = object.find("targets");
        targets != nullptr && targets->isObject()) {
        for (const auto& target : targets->asObject()) {
            spec->targets.push_back(target.key);
        }
    }
    return spec;
}

}  // namespace

Result<std::shared_ptr<RouterSnapshot>> RouterSnapshot::build(const json::Value& tree) {
    if (!tree.isObject()) {
        return Error{"The configuration must be an object."};
    }
    auto snapshot = std::make_shared<RouterSnapshot>();

    const json::Value* settings = tree.find("settings");
    const json::Value* http = settings == nullptr ? nullptr : settings->find("http");
    auto seconds = [&](std::string_view key, std::chrono::seconds& target) {
        if (auto value = integerAt(http, key)) {
            target = std::chrono::seconds(*value);
        }
    };
    seconds("header_read_timeout", snapshot->http.header_read_timeout);
    seconds("body_read_timeout", snapshot->http.body_read_timeout);
    seconds("send_timeout", snapshot->http.send_timeout);
    seconds("idle_timeout", snapshot->http.idle_timeout);
    if (auto value = integerAt(http, "large_header_buffer_size")) {
        snapshot->http.large_header_buffer_size = static_cast<size_t>(*value);
    }
    if (auto value = integerAt(http, "large_header_buffers")) {
        snapshot->http.large_header_buffers = static_cast<size_t>(*value);
    }
    if (auto value = integerAt(http, "max_body_size")) {
        snapshot->http.max_body_size = static_cast<uint64_t>(*value);
    }
    if (auto value = boolAt(http, "discard_unsafe_fields")) {
        snapshot->http.discard_unsafe_fields = *value;
    }
    if (boolAt(http, "log_route").value_or(false)) {
        return Error{
            "Route logging (\"log_route\") is not available yet in this version of "
            "Canopy."};
    }
    if (auto value = boolAt(http, "server_version")) {
        snapshot->http.server_version = *value;
    }
    snapshot->server = http::serverHeaderValue(snapshot->http.server_version);
    const json::Value* static_settings = http == nullptr ? nullptr : http->find("static");
    if (const json::Value* mime_types =
            static_settings == nullptr ? nullptr : static_settings->find("mime_types");
        mime_types != nullptr && mime_types->isObject()) {
        for (const auto& member : mime_types->asObject()) {
            if (member.value.isString()) {
                snapshot->mime_types.add(member.key, member.value.asString());
            } else if (member.value.isArray()) {
                for (const auto& extension : member.value.asArray()) {
                    if (extension.isString()) {
                        snapshot->mime_types.add(member.key, extension.asString());
                    }
                }
            }
        }
    }
    unsigned cores = std::max(1U, std::thread::hardware_concurrency());
    snapshot->listen_threads =
        static_cast<unsigned>(integerAt(settings, "listen_threads").value_or(cores));

    auto routes = routing::RouteTable::compile(tree);
    if (!routes) {
        return routes.error();
    }
    snapshot->routes = std::move(*routes);

    if (const auto* listeners = tree.find("listeners"); listeners != nullptr) {
        for (const auto& member : listeners->asObject()) {
            ListenerSnapshot listener;
            listener.address = member.key;
            if (auto backlog = integerAt(&member.value, "backlog")) {
                listener.backlog = static_cast<int>(*backlog);
            }
            const json::Value* pass = member.value.find("pass");
            const json::Value* application = member.value.find("application");
            if (pass != nullptr && pass->isString()) {
                auto compiled = routing::Template::compile(pass->asString());
                if (!compiled) {
                    return compiled.error();
                }
                listener.pass = std::move(*compiled);
            } else if (application != nullptr && application->isString()) {
                listener.pass =
                    routing::Template::literal("applications/" + application->asString());
            } else {
                return Error{fmt::format("The listener \"{}\" has no \"pass\".", member.key)};
            }
            const json::Value* forwarded = member.value.find("forwarded");
            bool legacy = false;
            if (forwarded == nullptr) {
                forwarded = member.value.find("client_ip");
                legacy = forwarded != nullptr;
            }
            if (forwarded != nullptr) {
                auto rule = routing::ForwardedRule::compile(*forwarded, legacy);
                if (!rule) {
                    return rule.error();
                }
                listener.forwarded = std::move(*rule);
            }
            if (const json::Value* tls = member.value.find("tls"); tls != nullptr) {
                auto tls_settings = tls::ServerSettings::fromJson(*tls);
                if (!tls_settings) {
                    return Error{fmt::format("The listener \"{}\" cannot use TLS: {}.", member.key,
                                             tls_settings.error().message)};
                }
                listener.tls_settings = std::move(*tls_settings);
            }
            snapshot->listeners.emplace(member.key, std::move(listener));
        }
    }
    if (const auto* applications = tree.find("applications");
        applications != nullptr && applications->isObject()) {
        for (const auto& member : applications->asObject()) {
            snapshot->applications.emplace(member.key,
                                           compileApplication(member.key, member.value));
        }
    }
    if (const auto* upstreams = tree.find("upstreams");
        upstreams != nullptr && upstreams->isObject()) {
        for (const auto& member : upstreams->asObject()) {
            auto group = UpstreamGroup::compile(member.key, member.value);
            if (!group) {
                return group.error();
            }
            snapshot->upstreams.emplace(member.key, std::move(*group));
        }
    }
    if (const auto* access_log = tree.find("access_log"); access_log != nullptr) {
        auto compiled = AccessLog::compile(*access_log);
        if (!compiled) {
            return compiled.error();
        }
        snapshot->access_log = std::move(*compiled);
    }
    return snapshot;
}

std::vector<std::string> RouterSnapshot::certificateNames() const {
    std::vector<std::string> names;
    for (const auto& [address, listener] : listeners) {
        if (!listener.tls_settings) {
            continue;
        }
        for (const auto& name : listener.tls_settings->certificates) {
            if (std::find(names.begin(), names.end(), name) == names.end()) {
                names.push_back(name);
            }
        }
    }
    return names;
}

Result<void> RouterSnapshot::attachTls(
    const std::map<std::string, std::string, std::less<>>& bundles) {
    for (auto& [address, listener] : listeners) {
        if (!listener.tls_settings) {
            continue;
        }
        std::vector<std::string> pems;
        for (const auto& name : listener.tls_settings->certificates) {
            auto found = bundles.find(name);
            if (found == bundles.end()) {
                return Error{fmt::format("The certificate \"{}\" could not be read.", name)};
            }
            pems.push_back(found->second);
        }
        auto context = tls::ServerContext::create(*listener.tls_settings, pems, address);
        if (!context) {
            return Error{fmt::format("The listener \"{}\" cannot use TLS: {}.", address,
                                     context.error().message)};
        }
        listener.tls = std::move(*context);
    }
    return {};
}

}  // namespace canopy
