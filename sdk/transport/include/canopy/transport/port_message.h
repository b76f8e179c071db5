#pragma once

// Messages on the Unix seqpacket socket between the router and one
// application process. The socket carries only what shared memory cannot:
// descriptors (segments, files) and a few control words. Each message is
// one datagram of 8 bytes, {u32 type, u32 id}, with at most one descriptor
// as SCM_RIGHTS. The router (core/gateway) and libcanopy share this one
// definition.

#include <cstddef>
#include <cstdint>

#include "canopy/transport/file_descriptor.h"
#include "canopy/transport/result.h"

namespace canopy::transport {

enum class PortMessageType : uint32_t {
    RouterSegment = 1,  // router -> app, fd: a segment of the router's pool; id = segment id
    AppSegment = 2,     // app -> router, fd: a segment of the app's pool; id = segment id
    AppFile = 3,        // app -> router, fd: a file for sendfile; id = the File entry's token
    RouterFile = 4,     // router -> app, fd: a spooled body; id = the File entry's token
    Ready = 5,          // app -> router: attached and serving; id = consumer slots in use
    Quit = 6,           // router -> app: finish open requests and exit
    // app -> router, before Ready, fd: a memfd holding why the process cannot
    // serve (UTF-8 text; the router reads the first kStartFailureMax bytes);
    // id = the text's length. The process exits next.
    StartFailed = 7,
};

// The longest start-failure text the router reads.
constexpr size_t kStartFailureMax = 1024;

struct PortMessage {
    PortMessageType type = PortMessageType::Ready;
    uint32_t id = 0;
    FileDescriptor fd;  // invalid when the message carries none
};

// Sends one message; `fd` is duplicated into the peer (the caller keeps it),
// -1 for none. WouldBlock when a non-blocking socket is full.
Result<void> sendPortMessage(int socket, PortMessageType type, uint32_t id, int fd);
// Receives one message. WouldBlock when none is waiting on a non-blocking
// socket, Closed when the peer closed, Corrupt for a malformed datagram (its
// descriptors are closed).
Result<PortMessage> receivePortMessage(int socket);

}  // namespace canopy::transport
