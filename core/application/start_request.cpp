#include "core/application/start_request.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>

namespace canopy {
namespace {

// A descriptor number beyond any sane RLIMIT_NOFILE is a bug of the sender.
constexpr int64_t kMaxDescriptor = 1 << 20;

Result<nlohmann::json> parseObject(std::string_view payload, std::string_view what) {
    auto document = nlohmann::json::parse(payload, nullptr, false);
    if (document.is_discarded() || !document.is_object()) {
        return Error{fmt::format("malformed {}: not a JSON object", what)};
    }
    return document;
}

Result<std::string> appName(const nlohmann::json& document, std::string_view what) {
    auto app = document.find("app");
    if (app == document.end() || !app->is_string() || app->get<std::string>().empty()) {
        return Error{fmt::format("malformed {}: \"app\" must be a non-empty string", what)};
    }
    return app->get<std::string>();
}

Result<uint64_t> generationOf(const nlohmann::json& document, std::string_view what) {
    auto generation = document.find("generation");
    if (generation == document.end() || !generation->is_number_unsigned()) {
        return Error{
            fmt::format("malformed {}: \"generation\" must be a non-negative integer", what)};
    }
    return generation->get<uint64_t>();
}

Result<pid_t> pidOf(const nlohmann::json& document, std::string_view what) {
    auto pid = document.find("pid");
    if (pid == document.end() || !pid->is_number_integer() || pid->get<int64_t>() <= 0 ||
        pid->get<int64_t>() > std::numeric_limits<pid_t>::max()) {
        return Error{fmt::format("malformed {}: \"pid\" must be a positive integer", what)};
    }
    return static_cast<pid_t>(pid->get<int64_t>());
}

}  // namespace

Result<StartRequest> parseStartRequest(std::string_view payload, std::optional<size_t> fd_count) {
    constexpr std::string_view kWhat = "application start request";
    auto document = parseObject(payload, kWhat);
    if (!document) {
        return document.error();
    }
    StartRequest request;
    auto app = appName(*document, kWhat);
    if (!app) {
        return app.error();
    }
    request.app = std::move(*app);
    auto generation = generationOf(*document, kWhat);
    if (!generation) {
        return generation.error();
    }
    request.generation = *generation;

    auto conf = document->find("conf");
    if (conf == document->end() || !conf->is_object()) {
        return Error{fmt::format("malformed {}: \"conf\" must be the application's object", kWhat)};
    }
    auto type = conf->find("type");
    if (type == conf->end() || !type->is_string()) {
        return Error{fmt::format("application \"{}\" has no \"type\"", request.app)};
    }
    request.conf = std::move(*conf);

    auto attachment = document->find("attachment");
    if (attachment != document->end()) {
        if (!attachment->is_string()) {
            return Error{fmt::format("malformed {}: \"attachment\" must be a string", kWhat)};
        }
        request.attachment = attachment->get<std::string>();
    }

    auto descriptors = document->find("descriptors");
    if (descriptors != document->end()) {
        if (!descriptors->is_array()) {
            return Error{fmt::format("malformed {}: \"descriptors\" must be an array", kWhat)};
        }
        for (const auto& number : *descriptors) {
            if (!number.is_number_integer() || number.get<int64_t>() < 3 ||
                number.get<int64_t>() > kMaxDescriptor) {
                return Error{fmt::format(
                    "malformed {}: each descriptor number must be an integer from 3 to {}", kWhat,
                    kMaxDescriptor)};
            }
            int target = static_cast<int>(number.get<int64_t>());
            if (std::find(request.descriptors.begin(), request.descriptors.end(), target) !=
                request.descriptors.end()) {
                return Error{
                    fmt::format("malformed {}: descriptor number {} given twice", kWhat, target)};
            }
            request.descriptors.push_back(target);
        }
    }
    if (fd_count && request.descriptors.size() != *fd_count) {
        return Error{fmt::format("malformed {}: {} descriptor numbers for {} descriptors", kWhat,
                                 request.descriptors.size(), *fd_count)};
    }
    return request;
}

Result<WorkerReport> parseWorkerKill(std::string_view payload) {
    constexpr std::string_view kWhat = "worker kill request";
    auto document = parseObject(payload, kWhat);
    if (!document) {
        return document.error();
    }
    auto app = appName(*document, kWhat);
    if (!app) {
        return app.error();
    }
    auto pid = pidOf(*document, kWhat);
    if (!pid) {
        return pid.error();
    }
    return WorkerReport{std::move(*app), *pid, 0};
}

Result<WorkerReport> parseWorkerExited(std::string_view payload) {
    constexpr std::string_view kWhat = "worker exit report";
    auto document = parseObject(payload, kWhat);
    if (!document) {
        return document.error();
    }
    auto pid = pidOf(*document, kWhat);
    if (!pid) {
        return pid.error();
    }
    auto status = document->find("status");
    if (status == document->end() || !status->is_number_integer()) {
        return Error{fmt::format("malformed {}: \"status\" must be an integer", kWhat)};
    }
    return WorkerReport{{}, *pid, status->get<int>()};
}

std::string workerExitedPayload(pid_t pid, int wait_status) {
    return nlohmann::json{{"pid", pid}, {"status", wait_status}}.dump();
}

Result<RetireRequest> parseRetireRequest(std::string_view payload) {
    constexpr std::string_view kWhat = "application retire request";
    auto document = parseObject(payload, kWhat);
    if (!document) {
        return document.error();
    }
    auto app = appName(*document, kWhat);
    if (!app) {
        return app.error();
    }
    auto generation = generationOf(*document, kWhat);
    if (!generation) {
        return generation.error();
    }
    return RetireRequest{std::move(*app), *generation};
}

std::string startedReply(pid_t pid) {
    return nlohmann::json{{"pid", pid}}.dump();
}

std::string startFailedReply(std::string_view reason) {
    // Reasons may quote file names, which need not be UTF-8.
    return nlohmann::json{{"error", std::string(reason)}}.dump(
        -1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::optional<pid_t> startedPid(std::string_view reply) {
    auto document = parseObject(reply, "reply");
    if (!document) {
        return std::nullopt;
    }
    auto pid = pidOf(*document, "reply");
    return pid ? std::optional<pid_t>(*pid) : std::nullopt;
}

}  // namespace canopy
