#include "canopy/transport/port_message.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace canopy::transport {

namespace {

struct Wire {
    uint32_t type;
    uint32_t id;
};

}  // namespace

Result<void> sendPortMessage(int socket, PortMessageType type, uint32_t id, int fd) {
    Wire wire{static_cast<uint32_t>(type), id};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    iovec payload{&wire, sizeof wire};
    msghdr message{};
    message.msg_iov = &payload;
    message.msg_iovlen = 1;
    if (fd >= 0) {
        message.msg_control = control;
        message.msg_controllen = sizeof control;
        cmsghdr* header = CMSG_FIRSTHDR(&message);
        header->cmsg_level = SOL_SOCKET;
        header->cmsg_type = SCM_RIGHTS;
        header->cmsg_len = CMSG_LEN(sizeof(int));
        std::memcpy(CMSG_DATA(header), &fd, sizeof fd);
    }
    for (;;) {
        ssize_t sent = ::sendmsg(socket, &message, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (sent == static_cast<ssize_t>(sizeof wire)) {
            return {};
        }
        if (sent < 0 && errno == EINTR) {
            continue;
        }
        if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return Error{Errc::WouldBlock, 0, "port socket full"};
        }
        if (sent < 0 && (errno == EPIPE || errno == ECONNRESET)) {
            return Error{Errc::Closed, 0, "the peer closed the port socket"};
        }
        return sent < 0 ? systemError("sendmsg on the port socket")
                        : Error{Errc::System, 0, "short sendmsg on the port socket"};
    }
}

Result<PortMessage> receivePortMessage(int socket) {
    // Room for more descriptors than we accept, so that extra ones are
    // received and closed rather than left in flight.
    constexpr int kRoom = 8;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kRoom)] = {};
    Wire wire{};
    iovec payload{&wire, sizeof wire};
    msghdr message{};
    message.msg_iov = &payload;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof control;
    ssize_t got = 0;
    while ((got = ::recvmsg(socket, &message, MSG_CMSG_CLOEXEC | MSG_DONTWAIT)) < 0 &&
           errno == EINTR) {
    }
    if (got < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return Error{Errc::WouldBlock, 0, "nothing on the port socket"};
        }
        if (errno == ECONNRESET) {
            return Error{Errc::Closed, 0, "the peer closed the port socket"};
        }
        return systemError("recvmsg on the port socket");
    }
    if (got == 0) {
        return Error{Errc::Closed, 0, "the peer closed the port socket"};
    }
    PortMessage received;
    int descriptors = 0;
    for (cmsghdr* header = CMSG_FIRSTHDR(&message); header != nullptr;
         header = CMSG_NXTHDR(&message, header)) {
        if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        size_t count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t index = 0; index < count; ++index) {
            int fd = -1;
            std::memcpy(&fd, CMSG_DATA(header) + index * sizeof(int), sizeof fd);
            if (descriptors++ == 0) {
                received.fd.reset(fd);
            } else {
                FileDescriptor extra(fd);
            }
        }
    }
    if (got != static_cast<ssize_t>(sizeof wire) || descriptors > 1 ||
        (message.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) != 0) {
        return Error{Errc::Corrupt, 0, "port message malformed"};
    }
    received.type = static_cast<PortMessageType>(wire.type);
    received.id = wire.id;
    return received;
}

}  // namespace canopy::transport
