#pragma once

// The layout of a channel's shared memory, private to the transport.
//
//   ChannelHeader | RequestQueue | Doorbell x (1 + max_consumers) | StreamSlotShared x stream_slots
//
// Fields written by one side only sit on their own cache lines, so a write
// by the router never contends with the consumer's and vice versa.

#include <cstdint>

#include "canopy/transport/channel.h"
#include "canopy/transport/stream.h"

namespace canopy::transport::detail {

constexpr uint32_t kChannelMagic = 0x4E484343;  // "CCHN"
constexpr uint32_t kChannelVersion = 1;

struct ChannelHeader {
    uint32_t magic;
    uint32_t version;
    ChannelGeometry geometry;  // for debugging: both sides use their own copy
    uint8_t pad[40];
};
static_assert(sizeof(ChannelHeader) == 64);

// Writer flags.
constexpr uint32_t kStreamEnd = 1U << 0;
// Set with kStreamEnd: the body is cut short there; the reader takes every
// entry published before it, then sees the stream aborted.
constexpr uint32_t kStreamBroken = 1U << 2;
// Either side's flags.
constexpr uint32_t kStreamAbort = 1U << 1;

struct StreamSlotShared {
    // Router: the generation while open, 0 while closed; the parties.
    uint64_t generation;
    uint32_t writer;  // a consumer claims with a CAS from kNoParty
    uint32_t reader;
    uint8_t pad0[48];
    // Writer's line.
    alignas(64) uint64_t written;  // entries published
    uint32_t writer_flags;
    uint8_t pad1[52];
    // Reader's line.
    alignas(64) uint64_t released;  // entries released
    uint32_t reader_flags;
    uint8_t pad2[52];
    StreamEntry ring[kMaxStreamCredit];
};
static_assert(sizeof(StreamSlotShared) % 64 == 0);

}  // namespace canopy::transport::detail
