#pragma once

// Handing a file to the peer: the fd rides as SCM_RIGHTS on the Unix socket
// with a 32-bit token, and a stream entry of kind File names the token, the
// offset and the length. The router then sendfile()s from it. New segments
// travel the same way (token = segment id).

#include <cstdint>

#include "canopy/transport/file_descriptor.h"
#include "canopy/transport/result.h"

namespace canopy::transport {

struct ReceivedDescriptor {
    uint32_t token = 0;
    FileDescriptor fd;
};

// Sends `fd` with `token` on a connected Unix socket (stream or seqpacket).
// The caller keeps its own fd.
Result<void> sendDescriptor(int socket, uint32_t token, int fd);
// Receives one token and descriptor. WouldBlock on a non-blocking socket with
// nothing to read; Closed when the peer closed; Corrupt when a message came
// without exactly one descriptor (any descriptors it had are closed).
Result<ReceivedDescriptor> receiveDescriptor(int socket);

}  // namespace canopy::transport
