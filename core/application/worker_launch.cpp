#include "core/application/worker_launch.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <cstring>

#include "core/base/log.h"
#include "core/base/process_title.h"

namespace canopy {
namespace {

// The variable libcanopy reads its attachment from (docs/sdk.md).
constexpr const char* kAttachmentVariable = "CANOPY_APP_INIT";

// The prototype blocks the signals its event loop reads from a signalfd; a
// worker starts with none blocked and every disposition at its default, as
// after exec.
void resetSignals() {
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int signal_number = 1; signal_number < NSIG; ++signal_number) {
        if (signal_number != SIGKILL && signal_number != SIGSTOP) {
            ::signal(signal_number, SIG_DFL);
        }
    }
}

// Closes every descriptor from 3 up that is not in `keep`.
void closeAllExcept(std::vector<int> keep) {
    std::sort(keep.begin(), keep.end());
    unsigned next = 3;
    for (int fd : keep) {
        if (fd < 0 || static_cast<unsigned>(fd) < next) {
            continue;
        }
        if (static_cast<unsigned>(fd) > next) {
            ::close_range(next, static_cast<unsigned>(fd) - 1, 0);
        }
        next = static_cast<unsigned>(fd) + 1;
    }
    ::close_range(next, ~0U, 0);
}

[[noreturn]] void runWorker(PreparedApplication& application, const StartRequest& request,
                            const std::vector<UniqueFd>& descriptors) {
    resetSignals();
    setProcessTitle(fmt::format("canopy: \"{}\" application", application.app));
    // Before 2 becomes the application's stderr: this line is the daemon's.
    log::info("\"{}\" application started", application.app);

    std::vector<int> received;
    for (const auto& descriptor : descriptors) {
        received.push_back(descriptor.get());
    }
    if (auto placed = placeDescriptors(received, request.descriptors, application.stdout_file.get(),
                                       application.stderr_file.get());
        !placed) {
        log::alert("\"{}\" application: {}", application.app, placed.error().message);
        ::_exit(1);
    }
    if (::setenv(kAttachmentVariable, request.attachment.c_str(), 1) != 0) {
        log::alert("\"{}\" application: cannot set {}: {}", application.app, kAttachmentVariable,
                   std::strerror(errno));
        ::_exit(1);
    }

    if (application.module != nullptr) {
        ::_exit(application.module->start(&application.task, &application.module_conf));
    }
    std::vector<char*> argv;
    argv.push_back(application.executable.data());
    for (auto& argument : application.arguments) {
        argv.push_back(argument.data());
    }
    argv.push_back(nullptr);
    ::execv(application.executable.c_str(), argv.data());
    log::error("\"{}\" application: cannot execute \"{}\": {}", application.app,
               application.executable, std::strerror(errno));
    ::_exit(1);
}

}  // namespace

Result<void> placeDescriptors(std::span<const int> received, std::span<const int> targets,
                              int stdout_fd, int stderr_fd) {
    if (received.size() != targets.size()) {
        return Error{fmt::format("{} descriptors for {} numbers", received.size(), targets.size())};
    }
    // First everything above the highest target, so that moving one to its
    // target never lands on another that is still to be moved.
    int floor = 3;
    for (int target : targets) {
        if (target < 3) {
            return Error{fmt::format("descriptor number {} is reserved", target)};
        }
        floor = std::max(floor, target + 1);
    }
    std::vector<int> staged;
    for (int fd : received) {
        int moved = ::fcntl(fd, F_DUPFD, floor);  // F_DUPFD: not close-on-exec
        if (moved < 0) {
            return systemError(fmt::format("cannot move descriptor {} above {}", fd, floor - 1));
        }
        staged.push_back(moved);
    }
    if (stdout_fd >= 0 && ::dup2(stdout_fd, STDOUT_FILENO) < 0) {
        return systemError("cannot make the stdout file descriptor 1");
    }
    if (stderr_fd >= 0 && ::dup2(stderr_fd, STDERR_FILENO) < 0) {
        return systemError("cannot make the stderr file descriptor 2");
    }
    closeAllExcept(staged);
    for (size_t index = 0; index < staged.size(); ++index) {
        if (::dup2(staged[index], targets[index]) < 0) {
            return systemError(fmt::format("cannot move a descriptor to {}", targets[index]));
        }
    }
    ::close_range(static_cast<unsigned>(floor), ~0U, 0);
    return {};
}

void logWorkerExit(pid_t pid, int wait_status) {
    if (WIFSIGNALED(wait_status)) {
        log::alert("app process {} exited on signal {}{}", pid, WTERMSIG(wait_status),
                   WCOREDUMP(wait_status) ? " (core dumped)" : "");
        return;
    }
    log::notice("app process {} exited with code {}", pid, WEXITSTATUS(wait_status));
}

Result<pid_t> launchWorker(PreparedApplication& application, const StartRequest& request,
                           const std::vector<UniqueFd>& descriptors) {
    pid_t pid = ::fork();
    if (pid < 0) {
        return systemError("fork() failed");
    }
    if (pid == 0) {
        runWorker(application, request, descriptors);
    }
    return pid;
}

}  // namespace canopy
