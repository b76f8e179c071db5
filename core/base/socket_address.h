#pragma once

// Addresses as Unit's configuration writes them — "*:8080", "127.0.0.1:80",
// "[::1]:8443", "unix:/run/app.sock", "unix:@abstract" — and the listening
// sockets made from them.

#include <sys/socket.h>

#include <string>
#include <string_view>

#include "core/base/result.h"
#include "core/base/unique_fd.h"

namespace canopy {

struct SocketAddress {
    sockaddr_storage storage{};
    socklen_t length = 0;
    std::string text;  // as configured

    int family() const { return storage.ss_family; }
    bool isUnix() const { return family() == AF_UNIX; }
    bool isAbstract() const;
    std::string unixPath() const;  // a filesystem socket's path, else ""
    bool loopback() const;         // 127/8, ::1, or a Unix socket
};

// Parses a listener or control address; host names are not resolved, a port
// (1-65535) is required for IP addresses.
Result<SocketAddress> parseSocketAddress(std::string_view text);

// A non-blocking, close-on-exec listening socket. IP sockets get
// SO_REUSEADDR, and IPv6 ones IPV6_V6ONLY (so "[::]:80" and "*:80" can
// coexist, as in Unit). A filesystem Unix socket replaces a stale file and
// gets `unix_mode`.
Result<UniqueFd> listenOn(const SocketAddress& address, int backlog, unsigned unix_mode = 0666);

}  // namespace canopy
