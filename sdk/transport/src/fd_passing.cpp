#include "canopy/transport/fd_passing.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace canopy::transport {

Result<void> sendDescriptor(int socket, uint32_t token, int fd) {
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    iovec payload{&token, sizeof token};
    msghdr message{};
    message.msg_iov = &payload;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof control;
    cmsghdr* header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(header), &fd, sizeof fd);
    for (;;) {
        ssize_t sent = ::sendmsg(socket, &message, MSG_NOSIGNAL);
        if (sent == static_cast<ssize_t>(sizeof token)) {
            return {};
        }
        if (sent < 0 && errno == EINTR) {
            continue;
        }
        if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return Error{Errc::WouldBlock, 0, "socket full"};
        }
        return sent < 0 ? systemError("sendmsg with a descriptor")
                        : Error{Errc::System, 0, "short sendmsg with a descriptor"};
    }
}

Result<ReceivedDescriptor> receiveDescriptor(int socket) {
    // Room for more descriptors than we accept, so that extra ones a peer
    // sends are received (and closed) rather than left in flight.
    constexpr int kRoom = 8;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kRoom)] = {};
    uint32_t token = 0;
    iovec payload{&token, sizeof token};
    msghdr message{};
    message.msg_iov = &payload;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof control;
    ssize_t got = 0;
    while ((got = ::recvmsg(socket, &message, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {
    }
    if (got < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return Error{Errc::WouldBlock, 0, "nothing to receive"};
        }
        return systemError("recvmsg of a descriptor");
    }
    if (got == 0) {
        return Error{Errc::Closed, 0, "peer closed the socket"};
    }
    ReceivedDescriptor received;
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
    if (got != static_cast<ssize_t>(sizeof token) || descriptors != 1 ||
        (message.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) != 0) {
        return Error{Errc::Corrupt, 0, "descriptor message malformed"};
    }
    received.token = token;
    return received;
}

}  // namespace canopy::transport
