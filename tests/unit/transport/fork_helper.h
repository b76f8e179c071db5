#pragma once

// Runs a piece of a test in a forked child. The child reports through its
// exit status only (GoogleTest assertions do not cross fork()), so child code
// returns 0 for success and a distinct small number for each failure.

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>

namespace canopy::transport::testing {

inline pid_t forkChild(const std::function<int()>& body) {
    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid == 0) {
        int code = 99;
        try {
            code = body();
        } catch (...) {
            code = 98;
        }
        // _exit: no atexit handlers, no GoogleTest teardown in the child.
        ::_exit(code);
    }
    return pid;
}

// The child's exit code, or 128 + signal when a signal ended it.
inline int waitChild(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
    }
    if (WIFEXITED(status)) {
        return WEXITSTATUS(status);
    }
    return 128 + WTERMSIG(status);
}

// Resident set size of this process in KiB, from /proc/self/status.
inline long residentKib() {
    FILE* file = std::fopen("/proc/self/status", "r");
    if (file == nullptr) {
        return -1;
    }
    char line[256];
    long kib = -1;
    while (std::fgets(line, sizeof line, file) != nullptr) {
        if (std::sscanf(line, "VmRSS: %ld kB", &kib) == 1) {
            break;
        }
    }
    std::fclose(file);
    return kib;
}

}  // namespace canopy::transport::testing
