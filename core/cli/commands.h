#pragma once

// The commands of `canopy`, each one request (or a few) to the control API.
// Every function returns the process's exit code (exit_codes.h) and writes
// results to `out`, errors to `err`.

#include <istream>
#include <ostream>
#include <string>
#include <string_view>

#include "core/cli/control_client.h"

namespace canopy::cli {

struct CommandContext {
    const ControlClient& client;
    std::istream& in;  // FILE "-" of put/post, answers to config edit's questions
    std::ostream& out;
    std::ostream& err;
    bool verbose = false;  // -v: the socket, each request and its status on `err`
};

// Sends `request`, saying so on `err` when verbose.
Result<HttpAnswer> exchange(const CommandContext& context, const HttpRequest& request);
// Prints a failed exchange and returns kExitUnreachable.
int unreachable(const CommandContext& context, const Error& error);

// GET /config/PATH: the JSON as the API answers it (with LF line ends).
int configGet(const CommandContext& context, std::string_view path);
// PUT or POST /config/PATH with the contents of `file` ("-": `context.in`).
int configWrite(const CommandContext& context, std::string_view method, std::string_view path,
                const std::string& file, bool dry_run);
// DELETE /config/PATH.
int configDelete(const CommandContext& context, std::string_view path, bool dry_run);
// GET /status, as a table or as the API's JSON.
int showStatus(const CommandContext& context, bool as_json);
// GET /status/modules: TYPE VERSION FILE, or the API's JSON.
int showRuntimes(const CommandContext& context, bool as_json);
// GET /control/applications/APP/restart.
int restartApplication(const CommandContext& context, std::string_view application);

}  // namespace canopy::cli
