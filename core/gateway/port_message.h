#pragma once

// The router's end of the 8-byte messages on a worker's seqpacket socket
// (docs/sdk.md, "Messages on the socket"). libcanopy keeps its own copy in
// sdk/lib/src/port_message.h, private to the SDK; the format is the wire
// contract both sides test against.

#include <cstdint>

#include "canopy/transport/file_descriptor.h"
#include "canopy/transport/result.h"

namespace canopy::gateway {

enum class PortMessageType : uint32_t {
    RouterSegment = 1,  // router -> app: a segment of the router's pool; id = segment id
    AppSegment = 2,     // app -> router: a segment of the app's pool; id = segment id
    AppFile = 3,        // app -> router: a file for sendfile; id = File entry token
    RouterFile = 4,     // router -> app: a spooled body; id = File entry token
    Ready = 5,          // app -> router: serving; id = consumer slots in use
    Quit = 6,           // router -> app: finish open requests and exit
};

struct PortMessage {
    PortMessageType type = PortMessageType::Ready;
    uint32_t id = 0;
    transport::FileDescriptor fd;  // invalid when the message carried none
};

// `fd` is duplicated into the peer (-1 for none). WouldBlock when full,
// Closed when the worker is gone.
transport::Result<void> sendPortMessage(int socket, PortMessageType type, uint32_t id, int fd);
// WouldBlock when nothing waits, Closed when the worker closed its end,
// Corrupt for a malformed datagram (any descriptors it carried are closed).
transport::Result<PortMessage> receivePortMessage(int socket);

}  // namespace canopy::gateway
