#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "core/base/unique_fd.h"
#include "core/port/port.h"
#include "core/process/process_kind.h"

namespace canopy {

// Main's record of one child process.
struct Process {
    uint64_t id = 0;  // unique for the daemon's lifetime
    const ProcessKind* kind = nullptr;
    pid_t pid = -1;
    ProcessState state = ProcessState::Creating;
    std::string title;
    // Filled by the kind's prefork and handed to the child: `data` as
    // ChildContext::data(), `inherited_fds` stay open (same numbers) in the
    // child and are closed in main after the fork.
    std::string data;
    std::vector<UniqueFd> inherited_fds;
    Port port;  // main's end of the process's port
    // Why setup failed, as the child reported it (SETUP_FAILED); empty when
    // it did not.
    std::string setup_error;
    std::chrono::steady_clock::time_point started_at;
};

}  // namespace canopy
