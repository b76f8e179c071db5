#include "core/main/daemon.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <fstream>
#include <sstream>

namespace canopy {

Result<void> checkWritableDirectory(const std::filesystem::path& directory, std::string_view what) {
    std::error_code ec;
    if (!std::filesystem::is_directory(directory, ec)) {
        return Error{fmt::format("the {} \"{}\" is not a directory", what, directory.string())};
    }
    if (::access(directory.c_str(), W_OK | X_OK) != 0) {
        return systemError(fmt::format("the {} \"{}\" is not usable", what, directory.string()));
    }
    return {};
}

Result<void> prepareDirectory(const std::filesystem::path& directory, std::string_view what) {
    std::error_code ec;
    std::filesystem::create_directories(directory, ec);
    if (ec) {
        return Error{
            fmt::format("cannot create the {} \"{}\": {}", what, directory.string(), ec.message())};
    }
    return checkWritableDirectory(directory, what);
}

Result<UniqueFd> openLogFile(const std::filesystem::path& file) {
    if (file.has_parent_path() && !file.string().starts_with("/dev/")) {
        std::error_code ec;
        std::filesystem::create_directories(file.parent_path(), ec);
    }
    UniqueFd fd(::open(file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
    if (!fd) {
        return systemError(fmt::format("cannot open the log file \"{}\"", file.string()));
    }
    return fd;
}

Result<UniqueFd> daemonize() {
    std::array<int, 2> readiness{};
    if (::pipe2(readiness.data(), O_CLOEXEC) != 0) {
        return systemError("pipe()");
    }
    pid_t pid = ::fork();
    if (pid < 0) {
        return systemError("fork()");
    }
    if (pid > 0) {
        ::close(readiness[1]);
        char ready = 0;
        ssize_t got = 0;
        do {
            got = ::read(readiness[0], &ready, 1);
        } while (got < 0 && errno == EINTR);
        if (got == 1) {
            ::_exit(0);
        }
        int status = 0;
        while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        ::_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 1);
    }
    ::close(readiness[0]);
    if (::setsid() < 0) {
        return systemError("setsid()");
    }
    ::umask(022);
    return UniqueFd(readiness[1]);
}

void notifyReady(UniqueFd readiness) {
    UniqueFd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
    if (null) {
        ::dup2(null.get(), STDIN_FILENO);
        ::dup2(null.get(), STDOUT_FILENO);
    }
    if (readiness) {
        char ready = 1;
        (void)::write(readiness.get(), &ready, 1);
    }
}

Result<void> writePidFile(const std::filesystem::path& file, pid_t pid) {
    std::error_code ec;
    if (file.has_parent_path()) {
        std::filesystem::create_directories(file.parent_path(), ec);
        if (ec) {
            return Error{fmt::format("cannot create the directory of the pid file \"{}\": {}",
                                     file.string(), ec.message())};
        }
    }
    std::string temporary = fmt::format("{}.{}.tmp", file.string(), pid);
    std::string content = fmt::format("{}\n", pid);
    UniqueFd fd(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd) {
        return systemError(fmt::format("cannot write the pid file \"{}\"", file.string()));
    }
    if (::write(fd.get(), content.data(), content.size()) != static_cast<ssize_t>(content.size())) {
        Error error = systemError(fmt::format("cannot write the pid file \"{}\"", file.string()));
        ::unlink(temporary.c_str());
        return error;
    }
    fd.reset();
    if (::rename(temporary.c_str(), file.c_str()) != 0) {
        Error error = systemError(fmt::format("cannot write the pid file \"{}\"", file.string()));
        ::unlink(temporary.c_str());
        return error;
    }
    return {};
}

void removePidFile(const std::filesystem::path& file, pid_t pid) {
    std::ifstream stream(file);
    pid_t stored = 0;
    if (stream >> stored && stored == pid) {
        ::unlink(file.c_str());
    }
}

}  // namespace canopy
