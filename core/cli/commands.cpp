#include "core/cli/commands.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <variant>
#include <vector>

#include "core/base/file.h"
#include "core/cli/config_path.h"
#include "core/cli/exit_codes.h"
#include "core/cli/output.h"
#include "core/json/value.h"

namespace canopy::cli {
namespace {

constexpr std::string_view kDryRunQuery = "?dry_run=1";

Result<std::string> readInput(const CommandContext& context, const std::string& file) {
    if (file == "-") {
        return std::string(std::istreambuf_iterator<char>(context.in), {});
    }
    return readFile(file);
}

int usage(const CommandContext& context, const Error& error) {
    context.err << "canopy: " << error.message << "\n";
    return kExitUsage;
}

// A 200 prints its body; anything else is the API's error.
int finish(const CommandContext& context, const HttpAnswer& answer, std::string_view sent = {}) {
    if (answer.status / 100 == 2) {
        context.out << withUnixLineEnds(answer.body);
        return kExitSuccess;
    }
    reportApiError(context.err, answer, sent);
    return kExitApiError;
}

std::string scalarText(const json::Value& value) {
    return value.isString() ? value.asString() : json::serialize(value);
}

// "accepted 12, active 1" for an object of scalars, else its compact JSON.
std::string summary(const json::Value& value) {
    if (!value.isObject()) {
        return scalarText(value);
    }
    std::vector<std::string> parts;
    for (const auto& member : value.asObject()) {
        if (member.value.isObject() || member.value.isArray()) {
            return json::serialize(value);
        }
        parts.push_back(member.key + " " + scalarText(member.value));
    }
    return parts.empty() ? "-" : fmt::format("{}", fmt::join(parts, ", "));
}

// The figure at `first`/`second` of an application's status, or "-".
std::string figure(const json::Value& application, std::string_view first,
                   std::string_view second) {
    const json::Value* group = application.find(first);
    const json::Value* value = group != nullptr ? group->find(second) : nullptr;
    return value != nullptr ? scalarText(*value) : "-";
}

// One row per loaded version: the API gives an object, or an array of them
// when a language has several versions.
std::vector<std::vector<std::string>> runtimeRows(const json::Value& modules) {
    std::vector<std::vector<std::string>> rows;
    if (!modules.isObject()) {
        return rows;
    }
    auto addRow = [&rows](const std::string& type, const json::Value& module) {
        const json::Value* version = module.find("version");
        const json::Value* lib = module.find("lib");
        std::string file = lib != nullptr ? scalarText(*lib) : "-";
        if (file.empty()) {
            file = "(built-in)";  // `external`: part of canopyd, no file
        }
        rows.push_back({type, version != nullptr ? scalarText(*version) : "-", file});
    };
    for (const auto& member : modules.asObject()) {
        if (member.value.isArray()) {
            for (const json::Value& module : member.value.asArray()) {
                addRow(member.key, module);
            }
        } else {
            addRow(member.key, member.value);
        }
    }
    return rows;
}

// The body of a 200 as JSON, or std::nullopt when it is something else.
std::optional<json::Value> parsedBody(const HttpAnswer& answer) {
    auto parsed = json::parse(answer.body);
    if (auto* value = std::get_if<json::Value>(&parsed)) {
        return std::move(*value);
    }
    return std::nullopt;
}

}  // namespace

Result<HttpAnswer> exchange(const CommandContext& context, const HttpRequest& request) {
    if (context.verbose) {
        context.err << fmt::format("canopy: {} {}", request.method, request.target);
        if (!request.body.empty()) {
            context.err << fmt::format(" ({} bytes)", request.body.size());
        }
        context.err << "\n";
    }
    auto answer = context.client.send(request);
    if (context.verbose && answer) {
        context.err << fmt::format("canopy: {} {}\n", answer->status, answer->reason);
    }
    return answer;
}

int unreachable(const CommandContext& context, const Error& error) {
    context.err << "canopy: " << error.message << "\n";
    return kExitUnreachable;
}

int configGet(const CommandContext& context, std::string_view path) {
    auto target = requestTarget("/config", path);
    if (!target) {
        return usage(context, target.error());
    }
    auto answer = exchange(context, {"GET", *target, {}, {}});
    if (!answer) {
        return unreachable(context, answer.error());
    }
    return finish(context, *answer);
}

int configWrite(const CommandContext& context, std::string_view method, std::string_view path,
                const std::string& file, bool dry_run) {
    auto target = requestTarget("/config", path);
    if (!target) {
        return usage(context, target.error());
    }
    auto body = readInput(context, file);
    if (!body) {
        return usage(context, body.error());
    }
    if (dry_run) {
        *target += kDryRunQuery;
    }
    auto answer = exchange(context, {std::string(method), *target, *body, {}});
    if (!answer) {
        return unreachable(context, answer.error());
    }
    return finish(context, *answer, *body);
}

int configDelete(const CommandContext& context, std::string_view path, bool dry_run) {
    auto target = requestTarget("/config", path);
    if (!target) {
        return usage(context, target.error());
    }
    if (dry_run) {
        *target += kDryRunQuery;
    }
    auto answer = exchange(context, {"DELETE", *target, {}, {}});
    if (!answer) {
        return unreachable(context, answer.error());
    }
    return finish(context, *answer);
}

int showStatus(const CommandContext& context, bool as_json) {
    auto answer = exchange(context, {"GET", "/status", {}, {}});
    if (!answer) {
        return unreachable(context, answer.error());
    }
    auto status = answer->status == 200 ? parsedBody(*answer) : std::nullopt;
    if (as_json || !status || !status->isObject()) {
        return finish(context, *answer);
    }

    // Sections the API may add later still show, summarized.
    std::vector<std::vector<std::string>> rows;
    const json::Value* applications = nullptr;
    for (const auto& member : status->asObject()) {
        if (member.key == "applications") {
            applications = &member.value;
        } else if (member.key == "modules") {
            std::vector<std::string> names;
            for (const auto& row : runtimeRows(member.value)) {
                names.push_back(row[0] + " " + row[1]);
            }
            rows.push_back(
                {"runtimes", names.empty() ? "none" : fmt::format("{}", fmt::join(names, ", "))});
        } else {
            rows.push_back({member.key, summary(member.value)});
        }
    }
    if (applications == nullptr || !applications->isObject() || applications->asObject().empty()) {
        rows.push_back({"applications", "none"});
        context.out << formatTable(rows);
        return kExitSuccess;
    }
    rows.push_back({"applications"});
    context.out << formatTable(rows);
    std::vector<std::vector<std::string>> table{
        {"NAME", "RUNNING", "STARTING", "IDLE", "ACTIVE REQUESTS"}};
    for (const auto& member : applications->asObject()) {
        table.push_back({member.key, figure(member.value, "processes", "running"),
                         figure(member.value, "processes", "starting"),
                         figure(member.value, "processes", "idle"),
                         figure(member.value, "requests", "active")});
    }
    std::istringstream lines(formatTable(table));
    for (std::string line; std::getline(lines, line);) {
        context.out << "  " << line << "\n";
    }
    return kExitSuccess;
}

int showRuntimes(const CommandContext& context, bool as_json) {
    auto answer = exchange(context, {"GET", "/status/modules", {}, {}});
    if (!answer) {
        return unreachable(context, answer.error());
    }
    auto modules = answer->status == 200 ? parsedBody(*answer) : std::nullopt;
    if (as_json || !modules) {
        return finish(context, *answer);
    }
    std::vector<std::vector<std::string>> rows{{"TYPE", "VERSION", "FILE"}};
    auto found = runtimeRows(*modules);
    rows.insert(rows.end(), found.begin(), found.end());
    context.out << formatTable(rows);
    if (found.empty()) {
        context.err << "canopy: canopyd found no language runtimes (see its --modulesdir)\n";
    }
    return kExitSuccess;
}

int restartApplication(const CommandContext& context, std::string_view application) {
    // The name is one key: a '/' in it is part of the name, not a separator.
    std::string target = "/control/applications/" + percentEncode(application) + "/restart";
    auto answer = exchange(context, {"GET", target, {}, {}});
    if (!answer) {
        return unreachable(context, answer.error());
    }
    return finish(context, *answer);
}

}  // namespace canopy::cli
