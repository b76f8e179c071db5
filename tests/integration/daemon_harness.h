#pragma once

// Runs the real canopyd as a child of the test and looks at it the way ps,
// pgrep and a user's scripts do: /proc, the pid file, the log, the sockets.

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace canopy::testing {

using namespace std::chrono_literals;

// A directory under /tmp that unprivileged children (user nobody) can enter.
class TempDirectory {
  public:
    TempDirectory();
    ~TempDirectory();
    const std::filesystem::path& path() const { return path_; }

  private:
    std::filesystem::path path_;
};

struct RunResult {
    int exit_code = -1;
    std::string out;
    std::string err;
};

// Runs canopyd with `arguments` to completion (up to `timeout`).
RunResult runCanopyd(const std::vector<std::string>& arguments,
                     std::chrono::milliseconds timeout = 20s);

// Starts canopyd in the background; returns its pid.
pid_t spawnCanopyd(const std::vector<std::string>& arguments);

// Waits for `pid` (a child of the test) and returns its wait status, or -1 on
// timeout.
int waitForExit(pid_t pid, std::chrono::milliseconds timeout = 15s);

bool waitUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout = 10s);

std::string processTitle(pid_t pid);          // /proc/<pid>/cmdline, NULs as spaces
pid_t parentOf(pid_t pid);                    // from /proc/<pid>/stat; -1 if gone
uid_t ownerOf(pid_t pid);                     // real uid; -1 if gone
std::vector<pid_t> childrenOf(pid_t parent);  // live, non-zombie
// The child of `parent` whose title is exactly `title`, or -1.
pid_t childWithTitle(pid_t parent, const std::string& title);
bool alive(pid_t pid);  // exists and is not a zombie

std::string readFile(const std::filesystem::path& file);

// Connects to a Unix stream socket, sends `request`, returns all it answers.
std::string askUnixSocket(const std::filesystem::path& socket, const std::string& request);

}  // namespace canopy::testing
