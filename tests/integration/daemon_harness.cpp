#include "tests/integration/daemon_harness.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace canopy::testing {

TempDirectory::TempDirectory() {
    char pattern[] = "/tmp/canopy-daemon-test-XXXXXX";
    path_ = ::mkdtemp(pattern);
    std::filesystem::permissions(path_, std::filesystem::perms(0755));
}

TempDirectory::~TempDirectory() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

namespace {

std::vector<char*> argvFor(const std::vector<std::string>& arguments) {
    static std::string program = CANOPYD_PATH;
    std::vector<char*> argv;
    argv.push_back(program.data());
    for (const auto& argument : arguments) {
        argv.push_back(const_cast<char*>(argument.c_str()));
    }
    argv.push_back(nullptr);
    return argv;
}

void execCanopyd(const std::vector<std::string>& arguments) {
    // The test process blocks SIGCHLD and friends; canopyd starts clean.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    auto argv = argvFor(arguments);
    ::execv(argv[0], argv.data());
    ::_exit(127);
}

void readInto(int fd, std::string& target) {
    std::array<char, 4096> buffer{};
    ssize_t got = ::read(fd, buffer.data(), buffer.size());
    if (got > 0) {
        target.append(buffer.data(), static_cast<size_t>(got));
    }
}

}  // namespace

RunResult runCanopyd(const std::vector<std::string>& arguments, std::chrono::milliseconds timeout) {
    std::array<int, 2> out{};
    std::array<int, 2> err{};
    if (::pipe2(out.data(), O_CLOEXEC) != 0 || ::pipe2(err.data(), O_CLOEXEC) != 0) {
        return {};
    }
    pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(out[1], STDOUT_FILENO);
        ::dup2(err[1], STDERR_FILENO);
        execCanopyd(arguments);
    }
    ::close(out[1]);
    ::close(err[1]);
    RunResult result;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::array<pollfd, 2> watched = {pollfd{out[0], POLLIN, 0}, pollfd{err[0], POLLIN, 0}};
    int open_pipes = 2;
    while (open_pipes > 0 && std::chrono::steady_clock::now() < deadline) {
        if (::poll(watched.data(), watched.size(), 100) <= 0) {
            continue;
        }
        for (size_t index = 0; index < watched.size(); ++index) {
            if (watched[index].fd < 0 || watched[index].revents == 0) {
                continue;
            }
            std::string& target = index == 0 ? result.out : result.err;
            size_t before = target.size();
            readInto(watched[index].fd, target);
            if (target.size() == before) {
                ::close(watched[index].fd);
                watched[index].fd = -1;
                --open_pipes;
            }
        }
    }
    for (auto& entry : watched) {
        if (entry.fd >= 0) {
            ::close(entry.fd);
        }
    }
    int status = waitForExit(pid, std::chrono::duration_cast<std::chrono::milliseconds>(
                                      deadline - std::chrono::steady_clock::now() + 1s));
    result.exit_code = status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return result;
}

pid_t spawnCanopyd(const std::vector<std::string>& arguments) {
    pid_t pid = ::fork();
    if (pid == 0) {
        execCanopyd(arguments);
    }
    return pid;
}

int waitForExit(pid_t pid, std::chrono::milliseconds timeout) {
    int status = 0;
    bool exited = waitUntil([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, timeout);
    return exited ? status : -1;
}

bool waitUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!condition()) {
        if (std::chrono::steady_clock::now() > deadline) {
            return false;
        }
        std::this_thread::sleep_for(10ms);
    }
    return true;
}

std::string readFile(const std::filesystem::path& file) {
    std::ifstream stream(file, std::ios::binary);
    std::stringstream content;
    content << stream.rdbuf();
    return content.str();
}

std::string processTitle(pid_t pid) {
    std::string title = readFile("/proc/" + std::to_string(pid) + "/cmdline");
    while (!title.empty() && title.back() == '\0') {
        title.pop_back();
    }
    for (char& character : title) {
        if (character == '\0') {
            character = ' ';
        }
    }
    return title;
}

namespace {

// Fields of /proc/<pid>/stat after the command name: state, ppid, ...
std::vector<std::string> statFields(pid_t pid) {
    std::string stat = readFile("/proc/" + std::to_string(pid) + "/stat");
    size_t close = stat.rfind(')');
    if (close == std::string::npos) {
        return {};
    }
    std::istringstream rest(stat.substr(close + 1));
    std::vector<std::string> fields;
    std::string field;
    while (rest >> field) {
        fields.push_back(field);
    }
    return fields;
}

}  // namespace

pid_t parentOf(pid_t pid) {
    auto fields = statFields(pid);
    return fields.size() > 1 ? static_cast<pid_t>(std::stol(fields[1])) : -1;
}

bool alive(pid_t pid) {
    auto fields = statFields(pid);
    return !fields.empty() && fields[0] != "Z" && fields[0] != "X";
}

uid_t ownerOf(pid_t pid) {
    std::istringstream status(readFile("/proc/" + std::to_string(pid) + "/status"));
    std::string line;
    while (std::getline(status, line)) {
        if (line.starts_with("Uid:")) {
            return static_cast<uid_t>(std::stoul(line.substr(4)));
        }
    }
    return static_cast<uid_t>(-1);
}

std::vector<pid_t> childrenOf(pid_t parent) {
    std::vector<pid_t> children;
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
        std::string name = entry.path().filename();
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) {
            continue;
        }
        pid_t pid = static_cast<pid_t>(std::stol(name));
        if (parentOf(pid) == parent && alive(pid)) {
            children.push_back(pid);
        }
    }
    return children;
}

pid_t childWithTitle(pid_t parent, const std::string& title) {
    for (pid_t pid : childrenOf(parent)) {
        if (processTitle(pid) == title) {
            return pid;
        }
    }
    return -1;
}

std::string askUnixSocket(const std::filesystem::path& socket_path, const std::string& request) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, socket_path.c_str(), sizeof(address.sun_path) - 1);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
        ::close(fd);
        return {};
    }
    (void)::write(fd, request.data(), request.size());
    std::string answer;
    std::array<char, 4096> buffer{};
    timeval timeout{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    ssize_t got = 0;
    while ((got = ::read(fd, buffer.data(), buffer.size())) > 0) {
        answer.append(buffer.data(), static_cast<size_t>(got));
    }
    ::close(fd);
    return answer;
}

}  // namespace canopy::testing
