#include "core/base/socket_address.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <charconv>
#include <cstring>

namespace canopy {
namespace {

Result<uint16_t> parsePort(std::string_view text, std::string_view whole) {
    unsigned value = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size() || value == 0 || value > 65535) {
        return Error{fmt::format("invalid port in address \"{}\"", whole)};
    }
    return static_cast<uint16_t>(value);
}

}  // namespace

bool SocketAddress::isAbstract() const {
    const auto* unix_address = reinterpret_cast<const sockaddr_un*>(&storage);
    return isUnix() && unix_address->sun_path[0] == '\0';
}

std::string SocketAddress::unixPath() const {
    if (!isUnix() || isAbstract()) {
        return {};
    }
    return reinterpret_cast<const sockaddr_un*>(&storage)->sun_path;
}

bool SocketAddress::loopback() const {
    if (family() == AF_INET) {
        const auto* inet = reinterpret_cast<const sockaddr_in*>(&storage);
        return (ntohl(inet->sin_addr.s_addr) >> 24) == 127;
    }
    if (family() == AF_INET6) {
        const auto* inet6 = reinterpret_cast<const sockaddr_in6*>(&storage);
        return IN6_IS_ADDR_LOOPBACK(&inet6->sin6_addr);
    }
    return isUnix();
}

Result<SocketAddress> parseSocketAddress(std::string_view text) {
    SocketAddress address;
    address.text = std::string(text);
    if (text.starts_with("unix:")) {
        std::string_view path = text.substr(5);
        auto* unix_address = reinterpret_cast<sockaddr_un*>(&address.storage);
        unix_address->sun_family = AF_UNIX;
        if (path.empty() || path.size() >= sizeof(unix_address->sun_path)) {
            return Error{fmt::format("invalid Unix socket address \"{}\"", text)};
        }
        if (path.front() == '@') {
            // Linux abstract namespace: a leading NUL, no file.
            std::memcpy(unix_address->sun_path + 1, path.data() + 1, path.size() - 1);
            address.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
            return address;
        }
        if (path.front() != '/') {
            return Error{fmt::format("the Unix socket path must be absolute: \"{}\"", text)};
        }
        std::memcpy(unix_address->sun_path, path.data(), path.size());
        address.length = sizeof(sockaddr_un);
        return address;
    }

    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
        return Error{
            fmt::format("invalid address \"{}\": expected ADDRESS:PORT or unix:PATH", text)};
    }
    auto port = parsePort(text.substr(colon + 1), text);
    if (!port) {
        return port.error();
    }
    std::string host(text.substr(0, colon));
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        auto* inet6 = reinterpret_cast<sockaddr_in6*>(&address.storage);
        inet6->sin6_family = AF_INET6;
        inet6->sin6_port = htons(*port);
        if (::inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &inet6->sin6_addr) !=
            1) {
            return Error{fmt::format("invalid IPv6 address in \"{}\"", text)};
        }
        address.length = sizeof(sockaddr_in6);
        return address;
    }
    auto* inet = reinterpret_cast<sockaddr_in*>(&address.storage);
    inet->sin_family = AF_INET;
    inet->sin_port = htons(*port);
    if (host == "*") {
        inet->sin_addr.s_addr = htonl(INADDR_ANY);
    } else if (::inet_pton(AF_INET, host.c_str(), &inet->sin_addr) != 1) {
        return Error{fmt::format("invalid IPv4 address in \"{}\"", text)};
    }
    address.length = sizeof(sockaddr_in);
    return address;
}

Result<UniqueFd> listenOn(const SocketAddress& address, int backlog, unsigned unix_mode) {
    UniqueFd socket(::socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!socket) {
        return systemError(fmt::format("socket() for \"{}\"", address.text));
    }
    int on = 1;
    if (!address.isUnix()) {
        ::setsockopt(socket.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    }
    if (address.family() == AF_INET6) {
        ::setsockopt(socket.get(), IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
    }
    std::string path = address.unixPath();
    if (!path.empty()) {
        struct stat existing {};
        if (::lstat(path.c_str(), &existing) == 0 && S_ISSOCK(existing.st_mode)) {
            ::unlink(path.c_str());
        }
    }
    if (::bind(socket.get(), reinterpret_cast<const sockaddr*>(&address.storage), address.length) !=
        0) {
        if (errno == EADDRINUSE) {
            return Error{fmt::format("the address {} is already in use", address.text), EADDRINUSE};
        }
        return systemError(fmt::format("bind(\"{}\")", address.text));
    }
    if (!path.empty() && ::chmod(path.c_str(), unix_mode) != 0) {
        Error error = systemError(fmt::format("chmod(\"{}\")", path));
        ::unlink(path.c_str());
        return error;
    }
    if (::listen(socket.get(), backlog) != 0) {
        Error error = systemError(fmt::format("listen(\"{}\")", address.text));
        if (!path.empty()) {
            ::unlink(path.c_str());
        }
        return error;
    }
    return socket;
}

}  // namespace canopy
