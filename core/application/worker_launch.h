#pragma once

// Forking a worker from the prototype (process-model spec §4.2 step 4, no
// exec for modules): the worker gets exactly its descriptors, at the numbers
// the router chose, and then runs the module's start() or execs the
// external program.

#include <sys/types.h>

#include <span>
#include <vector>

#include "core/application/prototype_setup.h"
#include "core/application/start_request.h"
#include "core/base/result.h"
#include "core/base/unique_fd.h"

namespace canopy {

// Forks one worker. In the prototype, returns its pid; the child never
// returns (it exits with start()'s value, or execs).
Result<pid_t> launchWorker(PreparedApplication& application, const StartRequest& request,
                           const std::vector<UniqueFd>& descriptors);

// Logs a reaped worker's end as Unit does: `app process <pid> exited with
// code <n>` (notice) or `... exited on signal <n>` (alert).
void logWorkerExit(pid_t pid, int wait_status);

// In a freshly forked child: points 1 and 2 at `stdout_fd`/`stderr_fd` (-1:
// leave them), closes every descriptor but 0-2 and `received`, and moves
// received[i] to targets[i], inheritable. Targets are >= 3 and distinct; the
// received descriptors may sit anywhere, even on another's target. Exposed
// for tests.
Result<void> placeDescriptors(std::span<const int> received, std::span<const int> targets,
                              int stdout_fd, int stderr_fd);

}  // namespace canopy
