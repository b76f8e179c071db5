#pragma once

// Main's side of the router's listening sockets. Main binds them (it may be
// root: ports below 1024, any path) and keeps them open across router
// restarts, so a restarted router takes over the same sockets and no
// connection attempt is refused meanwhile.

#include <map>
#include <string>

#include "core/base/result.h"
#include "core/base/unique_fd.h"

namespace canopy {

class ListenerSockets {
  public:
    ListenerSockets() = default;
    ListenerSockets(const ListenerSockets&) = delete;
    ListenerSockets& operator=(const ListenerSockets&) = delete;
    ~ListenerSockets();

    // The socket listening on `address` (opened now, or kept from before).
    // The descriptor stays owned by this object.
    Result<int> open(const std::string& address, int backlog);
    // Closes it and removes a Unix socket's file.
    void close(std::string address);
    void closeAll();

  private:
    struct Listener {
        UniqueFd socket;
        std::string unix_path;
    };
    std::map<std::string, Listener> listeners_;
};

}  // namespace canopy
