#pragma once

// The control API's listening socket, which main creates (it may need root
// for the path or port) and hands to every controller process it starts.

#include <sys/types.h>

#include <string>

#include "core/base/result.h"
#include "core/base/unique_fd.h"

namespace canopy {

class ControlSocket {
  public:
    // Listens on `address`: "unix:/path" (created atomically with `mode`;
    // refused when another daemon answers on it; a stale socket file is
    // replaced) or "IPv4:PORT", "[IPv6]:PORT", "*:PORT".
    static Result<ControlSocket> listen(const std::string& address, unsigned mode,
                                        uid_t owner = static_cast<uid_t>(-1),
                                        gid_t group = static_cast<gid_t>(-1));

    ControlSocket() = default;
    ControlSocket(ControlSocket&&) noexcept = default;
    ControlSocket& operator=(ControlSocket&&) noexcept = default;
    ~ControlSocket() = default;

    int fd() const { return socket_.get(); }
    const std::string& address() const { return address_; }
    bool loopback() const { return loopback_; }

    // Closes the socket and removes its file, if it is still the one this
    // object created.
    void close();

  private:
    UniqueFd socket_;
    std::string address_;
    std::string path_;  // for a Unix socket
    dev_t device_ = 0;
    ino_t inode_ = 0;
    bool loopback_ = true;
};

}  // namespace canopy
