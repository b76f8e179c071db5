#include "core/port/port.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

#include <array>
#include <cstring>

namespace canopy {

std::string_view messageTypeName(MessageType type) {
    switch (type) {
        case MessageType::Ping:
            return "PING";
        case MessageType::Pong:
            return "PONG";
        case MessageType::ProcessCreated:
            return "PROCESS_CREATED";
        case MessageType::ProcessReady:
            return "PROCESS_READY";
        case MessageType::Continue:
            return "CONTINUE";
        case MessageType::SetupFailed:
            return "SETUP_FAILED";
        case MessageType::Quit:
            return "QUIT";
        case MessageType::NewPort:
            return "NEW_PORT";
        case MessageType::LogFile:
            return "LOG_FILE";
        case MessageType::ModulesReport:
            return "MODULES_REPORT";
        case MessageType::Reply:
            return "REPLY";
        case MessageType::ConfigApply:
            return "CONFIG_APPLY";
        case MessageType::ConfigStore:
            return "CONFIG_STORE";
        case MessageType::CertificateStore:
            return "CERTIFICATE_STORE";
        case MessageType::CertificateDelete:
            return "CERTIFICATE_DELETE";
        case MessageType::StatusQuery:
            return "STATUS_QUERY";
        case MessageType::AppRestart:
            return "APP_RESTART";
        case MessageType::ListenerOpen:
            return "LISTENER_OPEN";
        case MessageType::ListenerClose:
            return "LISTENER_CLOSE";
        case MessageType::AccessLogOpen:
            return "ACCESS_LOG_OPEN";
        case MessageType::ReopenFiles:
            return "REOPEN_FILES";
        case MessageType::AppProcessStart:
            return "APP_PROCESS_START";
        case MessageType::AppWorkerKill:
            return "APP_WORKER_KILL";
        case MessageType::AppRetire:
            return "APP_RETIRE";
        case MessageType::AppProcessExited:
            return "APP_PROCESS_EXITED";
        case MessageType::CertificateOpen:
            return "CERTIFICATE_OPEN";
    }
    return "UNKNOWN";
}

Port::Port(UniqueFd socket) : socket_(std::move(socket)) {}

Port::Port(Port&& other) noexcept
    : socket_(std::move(other.socket_)), partial_(std::move(other.partial_)) {}

Port& Port::operator=(Port&& other) noexcept {
    if (this != &other) {
        socket_ = std::move(other.socket_);
        partial_ = std::move(other.partial_);
    }
    return *this;
}

Result<std::pair<Port, Port>> Port::createPair() {
    std::array<int, 2> fds{};
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds.data()) != 0) {
        return systemError("socketpair()");
    }
    return std::pair<Port, Port>{Port(UniqueFd(fds[0])), Port(UniqueFd(fds[1]))};
}

void Port::close() {
    socket_.reset();
    partial_.reset();
}

namespace {

Result<void> waitFor(int fd, short events, std::chrono::steady_clock::time_point deadline) {
    for (;;) {
        auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (remaining.count() <= 0) {
            return Error{"timed out waiting for the peer process", ETIMEDOUT};
        }
        pollfd descriptor{fd, events, 0};
        int ready = ::poll(&descriptor, 1, static_cast<int>(remaining.count()));
        if (ready > 0) {
            return {};
        }
        if (ready < 0 && errno != EINTR) {
            return systemError("poll()");
        }
    }
}

Result<void> sendPacket(int fd, const MessageHeader& header, const char* data,
                        std::span<const int> fds, std::chrono::steady_clock::time_point deadline) {
    std::array<iovec, 2> parts{};
    parts[0].iov_base = const_cast<MessageHeader*>(&header);
    parts[0].iov_len = sizeof(header);
    parts[1].iov_base = const_cast<char*>(data);
    parts[1].iov_len = header.length;

    msghdr packet{};
    packet.msg_iov = parts.data();
    packet.msg_iovlen = header.length > 0 ? 2 : 1;

    alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int) * Port::kMaxFds)> control{};
    if (!fds.empty()) {
        packet.msg_control = control.data();
        packet.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
        cmsghdr* rights = CMSG_FIRSTHDR(&packet);
        rights->cmsg_level = SOL_SOCKET;
        rights->cmsg_type = SCM_RIGHTS;
        rights->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
        std::memcpy(CMSG_DATA(rights), fds.data(), sizeof(int) * fds.size());
    }

    for (;;) {
        ssize_t sent = ::sendmsg(fd, &packet, MSG_NOSIGNAL);
        if (sent >= 0) {
            return {};
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno != EAGAIN) {
            return systemError("sendmsg()");
        }
        if (auto ready = waitFor(fd, POLLOUT, deadline); !ready) {
            return ready.error();
        }
    }
}

}  // namespace

Result<void> Port::send(MessageType type, std::string_view payload, std::span<const int> fds,
                        uint32_t stream, std::chrono::milliseconds timeout) {
    if (!socket_) {
        return Error{"port is closed", EBADF};
    }
    if (fds.size() > kMaxFds) {
        return Error{"too many descriptors for one message", EINVAL};
    }
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::lock_guard lock(send_mutex_);
    size_t offset = 0;
    do {
        size_t chunk = std::min(payload.size() - offset, kMaxPacketPayload);
        bool last = offset + chunk == payload.size();
        MessageHeader header{static_cast<uint32_t>(type), stream,
                             last ? 0U : kMessageFlagMoreFragments, static_cast<uint32_t>(chunk)};
        auto sent = sendPacket(socket_.get(), header, payload.data() + offset,
                               offset == 0 ? fds : std::span<const int>{}, deadline);
        if (!sent) {
            return sent;
        }
        offset += chunk;
    } while (offset < payload.size());
    return {};
}

Result<std::optional<Message>> Port::receive() {
    if (!socket_) {
        return Error{"port is closed", EBADF};
    }
    std::array<char, sizeof(MessageHeader) + kMaxPacketPayload> buffer;
    alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int) * kMaxFds)> control{};
    for (;;) {
        iovec part{buffer.data(), buffer.size()};
        msghdr packet{};
        packet.msg_iov = &part;
        packet.msg_iovlen = 1;
        packet.msg_control = control.data();
        packet.msg_controllen = control.size();

        ssize_t received = ::recvmsg(socket_.get(), &packet, MSG_CMSG_CLOEXEC);
        if (received < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN) {
                return std::optional<Message>{};
            }
            return systemError("recvmsg()");
        }
        if (received == 0) {
            return Error{"the peer closed its port", EPIPE};
        }

        std::vector<UniqueFd> fds;
        for (cmsghdr* item = CMSG_FIRSTHDR(&packet); item != nullptr;
             item = CMSG_NXTHDR(&packet, item)) {
            if (item->cmsg_level == SOL_SOCKET && item->cmsg_type == SCM_RIGHTS) {
                size_t count = (item->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t index = 0; index < count; ++index) {
                    int fd = -1;
                    std::memcpy(&fd, CMSG_DATA(item) + index * sizeof(int), sizeof(int));
                    fds.emplace_back(fd);
                }
            }
        }
        if ((packet.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
            return Error{"a message from the peer was truncated", EMSGSIZE};
        }
        MessageHeader header{};
        if (static_cast<size_t>(received) < sizeof(header)) {
            return Error{"a packet from the peer is shorter than a message header", EPROTO};
        }
        std::memcpy(&header, buffer.data(), sizeof(header));
        if (header.length != static_cast<size_t>(received) - sizeof(header)) {
            return Error{"a packet from the peer has a wrong payload length", EPROTO};
        }

        if (!partial_) {
            partial_.emplace();
            partial_->type = static_cast<MessageType>(header.type);
            partial_->stream = header.stream;
            partial_->fds = std::move(fds);
        } else if (static_cast<MessageType>(header.type) != partial_->type ||
                   header.stream != partial_->stream) {
            partial_.reset();
            return Error{"the peer interleaved the fragments of two messages", EPROTO};
        }
        partial_->payload.append(buffer.data() + sizeof(header), header.length);
        if ((header.flags & kMessageFlagMoreFragments) == 0) {
            std::optional<Message> complete = std::move(partial_);
            partial_.reset();
            return complete;
        }
    }
}

Result<Message> Port::receiveWait(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        auto received = receive();
        if (!received) {
            return received.error();
        }
        if (received->has_value()) {
            return std::move(**received);
        }
        if (auto ready = waitFor(socket_.get(), POLLIN, deadline); !ready) {
            return ready.error();
        }
    }
}

}  // namespace canopy
