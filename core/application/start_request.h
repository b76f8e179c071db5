#pragma once

// The payloads of the application messages (core/port/message.h) that main
// and the prototype both read: AppProcessStart, AppWorkerKill, AppRetire,
// AppProcessExited, and the replies to a start.

#include <sys/types.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/result.h"

namespace canopy {

// AppProcessStart: {"app", "generation", "conf", "attachment", "descriptors"}.
struct StartRequest {
    std::string app;
    uint64_t generation = 0;
    nlohmann::json conf;     // the application's object of the configuration tree
    std::string attachment;  // the worker's CANOPY_APP_INIT
    // The number each descriptor of the message gets in the worker, in the
    // order the descriptors came; each >= 3, no two alike.
    std::vector<int> descriptors;
};

// Parses and checks a start request that came with `fd_count` descriptors
// (nullopt: the descriptors are elsewhere; their count is not checked). The
// error says what is wrong in words a user understands.
Result<StartRequest> parseStartRequest(std::string_view payload, std::optional<size_t> fd_count);

// AppWorkerKill {"app", "pid"} and AppProcessExited {"pid", "status"}: the
// app is empty for the latter.
struct WorkerReport {
    std::string app;
    pid_t pid = 0;
    int status = 0;  // AppProcessExited: the wait status, as waitpid(2) gives it
};
Result<WorkerReport> parseWorkerKill(std::string_view payload);
Result<WorkerReport> parseWorkerExited(std::string_view payload);
std::string workerExitedPayload(pid_t pid, int wait_status);

// AppRetire {"app", "generation"}.
struct RetireRequest {
    std::string app;
    uint64_t generation = 0;
};
Result<RetireRequest> parseRetireRequest(std::string_view payload);

// The replies to AppProcessStart: {"pid": N} or {"error": "<reason>"}.
std::string startedReply(pid_t pid);
std::string startFailedReply(std::string_view reason);
// The pid of a {"pid"} reply; nullopt for an error reply or garbage.
std::optional<pid_t> startedPid(std::string_view reply);

}  // namespace canopy
