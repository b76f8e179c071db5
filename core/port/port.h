#pragma once

// A port is one end of a SOCK_SEQPACKET socket pair between two processes.
// Each packet carries one header; messages larger than a packet are split
// into fragments and joined again by the receiver, so payload size is not
// limited by the socket buffer. Sending is thread-safe; receiving is for one
// thread at a time.

#include <chrono>
#include <mutex>
#include <optional>
#include <span>
#include <string_view>
#include <utility>

#include "core/base/result.h"
#include "core/base/unique_fd.h"
#include "core/port/message.h"

namespace canopy {

class Port {
  public:
    // Payload bytes per packet; larger messages are fragmented.
    static constexpr size_t kMaxPacketPayload = 60 * 1024;
    // Descriptors one message may carry.
    static constexpr size_t kMaxFds = 16;

    Port() = default;
    explicit Port(UniqueFd socket);
    Port(Port&& other) noexcept;
    Port& operator=(Port&& other) noexcept;

    // A connected pair; both ends non-blocking and close-on-exec.
    static Result<std::pair<Port, Port>> createPair();

    int fd() const { return socket_.get(); }
    bool valid() const { return socket_.valid(); }
    void close();

    // Sends one message. The descriptors are duplicated into the peer; the
    // caller keeps its own. Waits up to `timeout` while the peer's buffer is
    // full.
    Result<void> send(MessageType type, std::string_view payload = {},
                      std::span<const int> fds = {}, uint32_t stream = 0,
                      std::chrono::milliseconds timeout = std::chrono::seconds(5));

    // Reads what is available without blocking. Returns a message once all its
    // fragments arrived, std::nullopt when none is complete yet, and an error
    // when the peer closed its end or the socket failed.
    Result<std::optional<Message>> receive();

    // Waits up to `timeout` for one whole message.
    Result<Message> receiveWait(std::chrono::milliseconds timeout);

  private:
    UniqueFd socket_;
    std::mutex send_mutex_;
    std::optional<Message> partial_;  // fragments received so far
};

}  // namespace canopy
