#include "core/controller/control_socket.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "core/base/socket_address.h"

namespace canopy {
namespace {

constexpr int kBacklog = 511;

Result<UniqueFd> listenUnix(const std::string& path, unsigned mode, uid_t owner, gid_t group) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::string temporary = fmt::format("{}.{}.tmp", path, ::getpid());
    if (temporary.size() >= sizeof(address.sun_path)) {
        return Error{fmt::format("the control socket path \"{}\" is too long", path)};
    }
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
    if (ec) {
        return Error{fmt::format("cannot create the directory of the control socket \"{}\": {}",
                                 path, ec.message())};
    }

    struct stat existing {};
    if (::lstat(path.c_str(), &existing) == 0) {
        if (!S_ISSOCK(existing.st_mode)) {
            return Error{fmt::format("\"{}\" exists and is not a socket", path)};
        }
        UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
        if (probe &&
            ::connect(probe.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0) {
            return Error{
                fmt::format("another daemon is already listening on the control socket \"unix:{}\"",
                            path),
                EADDRINUSE};
        }
        // Nobody answers: a socket left by a daemon that died.
    }

    UniqueFd socket(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!socket) {
        return systemError("socket(AF_UNIX)");
    }
    // Bind under a temporary name and rename, so the socket appears at its
    // path with its final permissions and never half-made.
    std::memset(address.sun_path, 0, sizeof(address.sun_path));
    std::strncpy(address.sun_path, temporary.c_str(), sizeof(address.sun_path) - 1);
    ::unlink(temporary.c_str());
    mode_t previous = ::umask(0777 & ~mode);
    int bound = ::bind(socket.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address));
    int bind_errno = errno;
    ::umask(previous);
    if (bound != 0) {
        return systemError(fmt::format("bind(\"{}\")", temporary), bind_errno);
    }
    auto fail = [&](const std::string& what) {
        Error error = systemError(what);
        ::unlink(temporary.c_str());
        return error;
    };
    if (::chmod(temporary.c_str(), mode) != 0) {
        return fail(fmt::format("chmod(\"{}\")", temporary));
    }
    if ((owner != static_cast<uid_t>(-1) || group != static_cast<gid_t>(-1)) &&
        ::chown(temporary.c_str(), owner, group) != 0) {
        return fail(fmt::format("chown(\"{}\")", temporary));
    }
    if (::listen(socket.get(), kBacklog) != 0) {
        return fail("listen()");
    }
    if (::rename(temporary.c_str(), path.c_str()) != 0) {
        return fail(fmt::format("rename(\"{}\", \"{}\")", temporary, path));
    }
    return socket;
}

}  // namespace

Result<ControlSocket> ControlSocket::listen(const std::string& address, unsigned mode, uid_t owner,
                                            gid_t group) {
    ControlSocket control;
    control.address_ = address;
    if (address.starts_with("unix:") && !address.starts_with("unix:@")) {
        control.path_ = address.substr(5);
        if (control.path_.empty() || control.path_.front() != '/') {
            return Error{fmt::format("the control socket path must be absolute: \"{}\"", address)};
        }
        auto socket = listenUnix(control.path_, mode, owner, group);
        if (!socket) {
            return socket.error();
        }
        struct stat created {};
        if (::stat(control.path_.c_str(), &created) == 0) {
            control.device_ = created.st_dev;
            control.inode_ = created.st_ino;
        }
        control.socket_ = std::move(*socket);
        return control;
    }

    // IP addresses and abstract Unix sockets have no file to create atomically.
    auto parsed = parseSocketAddress(address);
    if (!parsed) {
        return Error{
            fmt::format("invalid control address \"{}\": {}", address, parsed.error().message)};
    }
    auto socket = listenOn(*parsed, kBacklog);
    if (!socket) {
        if (socket.error().system_errno == EADDRINUSE) {
            return Error{fmt::format("the control address {} is already in use", address),
                         EADDRINUSE};
        }
        return socket.error();
    }
    control.loopback_ = parsed->loopback();
    control.socket_ = std::move(*socket);
    return control;
}

void ControlSocket::close() {
    socket_.reset();
    if (path_.empty()) {
        return;
    }
    struct stat current {};
    if (::stat(path_.c_str(), &current) == 0 && current.st_dev == device_ &&
        current.st_ino == inode_) {
        ::unlink(path_.c_str());
    }
    path_.clear();
}

}  // namespace canopy
