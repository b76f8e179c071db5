#pragma once

// A channel joins the router and the workers of one application. It is one
// sealed memfd holding the request queue, a doorbell per party and a table
// of stream slots, plus eventfds for wake-ups: one for the queue's tickets,
// one per party's doorbell. The router creates it and sends the memfd and
// eventfds to every worker over the worker's Unix socket, which otherwise
// carries only the fds of new segments and of files.
//
// Parties: the router is party 0; consumer c (a worker process, or one
// thread context of it) is party c + 1. A consumer trusts the router; the
// router trusts no consumer, so every value it reads from the channel is
// checked and a consumer that damages it harms only its own application.

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "canopy/transport/doorbell.h"
#include "canopy/transport/file_descriptor.h"
#include "canopy/transport/request_queue.h"
#include "canopy/transport/result.h"
#include "canopy/transport/segment.h"

namespace canopy::transport {

using Party = uint32_t;
constexpr Party kRouterParty = 0;
constexpr Party kNoParty = 0xFFFFFFFF;
constexpr Party consumerParty(uint32_t consumer) {
    return consumer + 1;
}

// Entries a stream may have in flight, at most.
constexpr uint32_t kMaxStreamCredit = 16;

struct ChannelGeometry {
    uint32_t queue_capacity = 1024;  // a power of two
    uint32_t stream_slots = 2048;    // two per request in flight (request body, response)
    uint32_t max_consumers = 64;
    uint32_t stream_credit = 8;  // chunks in flight per stream: 8 x 16 KiB = 128 KiB

    bool valid() const;
    size_t size() const;
    // Doorbell bits: one per stream slot, then these.
    uint32_t memoryBit() const { return stream_slots; }     // chunks were freed
    uint32_t queueBit() const { return stream_slots + 1; }  // a request was taken
    uint32_t doorbellBits() const { return stream_slots + 2; }
};

// A stream slot and the generation it had when opened: a slot is reused, and
// a stale StreamId must not touch its next stream.
struct StreamId {
    uint32_t slot = kNoStream;
    uint64_t generation = 0;
};

namespace detail {
struct StreamSlotShared;
}

class Channel {
  public:
    // Router: a fresh channel with its queue and router eventfds.
    static Result<std::unique_ptr<Channel>> create(const ChannelGeometry& geometry);
    // Consumer: maps a channel received from the router. Takes ownership of
    // the descriptors; checks the memfd's size and seals.
    static Result<std::unique_ptr<Channel>> attach(const ChannelGeometry& geometry,
                                                   FileDescriptor memory,
                                                   FileDescriptor queue_event,
                                                   FileDescriptor router_event, uint32_t consumer,
                                                   FileDescriptor consumer_event);
    ~Channel();
    Channel(const Channel&) = delete;
    Channel& operator=(const Channel&) = delete;

    const ChannelGeometry& geometry() const { return geometry_; }
    Party self() const { return self_; }
    int memoryFd() const { return memory_.get(); }
    int queueEventFd() const { return queue_event_.get(); }
    int routerEventFd() const { return router_event_.get(); }

    RequestQueue& queue() { return queue_; }
    // The doorbell of `party`. Its fd is -1 when this process has none for
    // it (a consumer has only the router's and its own).
    Doorbell doorbell(Party party) const;

    // --- Router side -------------------------------------------------------

    // The eventfd of consumer `consumer`, created on first use; the router
    // sends it to the worker that will be that consumer.
    Result<int> consumerEventFd(uint32_t consumer);
    // A stream slot for a new stream. Pass kNoParty for the side a consumer
    // will claim when it takes the request. Exhausted when all slots are in
    // use. Thread-safe.
    Result<StreamId> openStream(Party writer, Party reader);
    // Gives the slot back. Slots are reused oldest-first so that a late
    // write by a consumer that missed the close finds a different generation.
    void closeStream(StreamId id);
    // The party that claimed a side of a stream, validated; kNoParty when
    // none or when the slot holds nonsense.
    Party streamWriter(StreamId id) const;
    Party streamReader(StreamId id) const;
    size_t openStreams() const;

    // --- Consumer side -----------------------------------------------------

    // Takes the next request (waiting up to timeout_ms, negative forever;
    // extra_fd as in RequestQueue::takeWait), claims its streams and head
    // chunks for this consumer and rings the router. Aborted when the router
    // cancelled the request while it was queued: just take the next one.
    // `attach_announced` runs when a head chunk names a segment this process
    // has not attached: the router announces a segment on the worker's
    // socket before it queues a request into it, but the announcement may
    // still wait in the socket; the callback reads it and the chunk is
    // tried again (without it, such a request would pass for cancelled).
    Result<RequestDescriptor> takeRequest(SegmentTable& router_segments, int timeout_ms,
                                          int extra_fd = -1,
                                          const std::function<void()>& attach_announced = {});

    // For streams (stream.cpp): the slot, or nullptr when out of range.
    detail::StreamSlotShared* slot(uint32_t index) const;

  private:
    Channel(const ChannelGeometry& geometry, FileDescriptor memory, std::byte* base, Party self);
    bool validParty(Party party) const;

    ChannelGeometry geometry_;
    FileDescriptor memory_;
    std::byte* base_;
    Party self_;
    FileDescriptor queue_event_;
    FileDescriptor router_event_;
    std::vector<FileDescriptor> consumer_events_;  // router: all; consumer: its own
    RequestQueue queue_;
    std::byte* doorbells_ = nullptr;
    std::byte* slots_ = nullptr;

    // Router bookkeeping of stream slots; never in shared memory.
    mutable std::mutex streams_mutex_;
    std::deque<uint32_t> free_slots_;
    std::vector<uint64_t> slot_generation_;  // 0 while closed
    uint64_t next_generation_ = 1;
};

}  // namespace canopy::transport
