#include "core/main/daemon.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

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
        return Error{fmt::format("cannot create the {} \"{}\": {}", what, directory.string(),
                                 ec.message())};
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

Result<void> daemonize() {
    pid_t pid = ::fork();
    if (pid < 0) {
        return systemError("fork()");
    }
    if (pid > 0) {
        ::_exit(0);
    }
    if (::setsid() < 0) {
        return systemError("setsid()");
    }
    ::umask(022);
    UniqueFd null(::open("/dev/null", O_RDWR));
    if (!null) {
        return systemError("open(\"/dev/null\")");
    }
    if (::dup2(null.get(), STDIN_FILENO) < 0 || ::dup2(null.get(), STDOUT_FILENO) < 0) {
        return systemError("dup2(\"/dev/null\")");
    }
    return {};
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
