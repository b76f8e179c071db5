#include "core/router/listener_sockets.h"

#include <sys/socket.h>
#include <unistd.h>

#include "core/base/log.h"
#include "core/base/socket_address.h"

namespace canopy {

ListenerSockets::~ListenerSockets() {
    closeAll();
}

Result<int> ListenerSockets::open(const std::string& address, int backlog) {
    if (auto found = listeners_.find(address); found != listeners_.end()) {
        // The backlog of a kept socket can change without a new bind.
        ::listen(found->second.socket.get(), backlog);
        return found->second.socket.get();
    }
    auto parsed = parseSocketAddress(address);
    if (!parsed) {
        return parsed.error();
    }
    auto socket = listenOn(*parsed, backlog);
    if (!socket) {
        log::error("cannot listen on {}: {}", address, socket.error().message);
        return socket.error();
    }
    int fd = socket->get();
    listeners_[address] = Listener{std::move(*socket), parsed->unixPath()};
    log::info("listening on {}", address);
    return fd;
}

void ListenerSockets::close(std::string address) {
    // By value: callers may pass a key of the map this erases from.
    auto found = listeners_.find(address);
    if (found == listeners_.end()) {
        return;
    }
    if (!found->second.unix_path.empty()) {
        ::unlink(found->second.unix_path.c_str());
    }
    listeners_.erase(found);
    log::info("stopped listening on {}", address);
}

void ListenerSockets::closeAll() {
    while (!listeners_.empty()) {
        close(listeners_.begin()->first);
    }
}

}  // namespace canopy
