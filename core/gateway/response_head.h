#pragma once

// The records an application writes on its response stream, and their
// validating parsers (docs/sdk.md, "Wire formats"). The app is untrusted:
// every length is checked against the bytes at hand and the limits below
// before anything is allocated, and the fields must be what an HTTP/1.1
// response may carry, so nothing the app writes can split the router's
// response to the client.
//
//   head record:  u32 "CRP1" | u32 total length | u16 status | u16 flags | u32 field count
//                 field count x (u16 name length, u32 value length, name, value)
//   frame:        u8 FIN|RSV1-3|opcode | u8 0 | u16 0 | u32 payload length | payload

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "canopy/transport/result.h"

namespace canopy::gateway {

constexpr uint32_t kResponseMagic = 0x31505243;  // "CRP1", little-endian
constexpr size_t kResponseHeadFixed = 16;
constexpr uint16_t kResponseFlagUpgrade = 1U << 0;
constexpr size_t kFrameHeaderSize = 8;

struct ResponseLimits {
    size_t max_head_bytes = 64 * 1024;  // a whole head record, fixed part included
    uint32_t max_fields = 512;
};

struct ResponseHead {
    uint16_t status = 0;
    bool upgrade = false;
    std::vector<std::pair<std::string, std::string>> fields;  // in order, names as sent
};

// The total length of the head record starting `bytes`: WouldBlock while
// fewer than 8 bytes are known, Corrupt for a bad magic or a length outside
// [kResponseHeadFixed, limits.max_head_bytes].
transport::Result<size_t> responseHeadLength(std::span<const std::byte> bytes,
                                             const ResponseLimits& limits);
// Parses exactly one whole record. Corrupt for anything an honest libcanopy
// does not produce: status outside 100-999, unknown flags, a field name that
// is not a 1-255 character token, a value with CR, LF or NUL, counts or
// lengths that overrun, bytes left over.
transport::Result<ResponseHead> parseResponseHead(std::span<const std::byte> record,
                                                  const ResponseLimits& limits);
// The record for `head` (tests, and hostile apps in tests).
std::string encodeResponseHead(const ResponseHead& head);

struct FrameHeader {
    uint8_t first = 0;  // FIN | RSV1-3 | opcode, as in RFC 6455
    uint32_t length = 0;

    bool fin() const { return (first & 0x80) != 0; }
    uint8_t rsv() const { return static_cast<uint8_t>((first >> 4) & 0x07); }
    uint8_t opcode() const { return first & 0x0F; }
};

// Corrupt when the reserved bytes are not zero or the payload exceeds
// `max_payload`; `bytes` must hold kFrameHeaderSize bytes.
transport::Result<FrameHeader> parseFrameHeader(std::span<const std::byte> bytes,
                                                uint32_t max_payload);
void encodeFrameHeader(const FrameHeader& header, std::byte (&out)[kFrameHeaderSize]);

}  // namespace canopy::gateway
