#pragma once

// The request head as it crosses from the router to an app: a compact,
// little-endian, length-prefixed encoding, and a parser that checks every
// length against the bytes it was given (the other side is not trusted).
//
//   u32 magic "CRH2" | u32 total length | u8 flags | u8 0 | u16 local port
//   u64 content length (kUnknownLength if none) | u32 field count
//   9 x (u32 length, bytes): method, target, path, query, version,
//                            remote, local address, server name, app target
//   field count x (u16 name length, u32 value length, name, value)

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "canopy/transport/request_queue.h"
#include "canopy/transport/result.h"
#include "canopy/transport/segment.h"

namespace canopy::transport {

constexpr uint64_t kUnknownLength = ~uint64_t{0};
// A head larger than this is refused on both sides; the router's own header
// limits are far smaller.
constexpr size_t kMaxHeadBytes = size_t{1} << 20;
constexpr uint32_t kHeadFlagTls = 1U << 0;

struct HeaderField {
    std::string_view name;
    std::string_view value;
};

// Views into the buffer the head was decoded from (or built from by the
// caller when encoding).
struct RequestHead {
    std::string_view method;
    std::string_view target;  // raw, with the query
    std::string_view path;    // decoded and normalised
    std::string_view query;
    std::string_view version;  // "HTTP/1.1"
    std::string_view remote;
    std::string_view local_address;
    std::string_view server_name;
    // The application target a route passed the request to
    // ("applications/NAME/TARGET"), empty when the application has none.
    std::string_view app_target;
    uint16_t local_port = 0;
    bool tls = false;
    uint64_t content_length = kUnknownLength;
    std::vector<HeaderField> fields;  // in order, names as sent
};

size_t encodedSize(const RequestHead& head);
// Writes the head into `out`; TooLarge when it does not fit or exceeds
// kMaxHeadBytes. Returns the bytes written.
Result<size_t> encodeHead(const RequestHead& head, std::span<std::byte> out);
// Parses a head; every view points into `in`. Corrupt when any length, count
// or the magic is wrong or bytes are left over.
Result<RequestHead> decodeHead(std::span<const std::byte> in);

// Router side: encodes the head followed by `preread` body bytes into chunks
// of `pool` and fills the head fields of `descriptor`. TooLarge when they
// need more than kMaxHeadChunks chunks; WouldBlock when the pool is spent
// (chunks already taken are freed again).
Result<void> storeHead(SegmentPool& pool, const RequestHead& head,
                       std::span<const std::byte> preread, RequestDescriptor& descriptor);

// Consumer side: the head bytes of a descriptor, gathered into `storage`
// when they span chunks, then decoded; views point into the chunk or into
// `storage`, which must outlive the result.
Result<RequestHead> loadHead(const SegmentTable& router_segments,
                             const RequestDescriptor& descriptor, std::vector<std::byte>& storage);
// The preread body bytes into `out` (resized); Corrupt when the descriptor
// does not add up.
Result<void> loadPreread(const SegmentTable& router_segments, const RequestDescriptor& descriptor,
                         std::vector<std::byte>& out);

// Frees the head chunks a consumer took with a request.
void releaseHead(SegmentTable& router_segments, const RequestDescriptor& descriptor);

}  // namespace canopy::transport
