#pragma once

// The per-application request queue: a bounded multi-producer (router
// threads), multi-consumer (any worker of the application) ring in shared
// memory, after Dmitry Vyukov's bounded MPMC queue. Each cell has a sequence
// number that says whose turn it is, so producers and consumers never wait
// on each other except when the ring is full or empty.
//
// Wake-ups: an eventfd in semaphore mode holds one ticket per queued request.
// A consumer takes a ticket (one read) before it takes a request, so exactly
// as many consumers wake as there are requests; an idle consumer sleeps in
// poll() on the eventfd together with its own doorbell and socket. No
// polling loop and no busy wait.

#include <cstddef>
#include <cstdint>

#include "canopy/transport/result.h"
#include "canopy/transport/segment.h"

namespace canopy::transport {

constexpr uint32_t kMaxHeadChunks = 4;
constexpr uint32_t kNoStream = 0xFFFFFFFF;

// What a consumer needs to start on a request. The head (see request_head.h)
// and the first body bytes fill head_chunks in order: head_length bytes of
// head, then preread_length bytes of body. More body, if any, follows on the
// request stream; the response goes back on the response stream.
struct RequestDescriptor {
    uint64_t request_id = 0;
    uint64_t request_stream_generation = 0;
    uint64_t response_stream_generation = 0;
    uint32_t request_stream = kNoStream;   // slot of the body stream; kNoStream when preread is all
    uint32_t response_stream = kNoStream;  // slot of the response stream
    uint32_t head_length = 0;
    uint32_t preread_length = 0;
    uint32_t head_chunk_count = 0;
    uint32_t flags = 0;
    ChunkRef head_chunks[kMaxHeadChunks] = {};
};
static_assert(sizeof(RequestDescriptor) == 112);

class RequestQueue {
  public:
    RequestQueue() = default;
    // A view of a queue at `memory` (sizeFor(capacity) bytes) with its
    // semaphore eventfd, which stays owned by the caller.
    RequestQueue(std::byte* memory, uint32_t capacity, int event_fd);

    // Capacity must be a power of two.
    static size_t sizeFor(uint32_t capacity);
    // The creator lays out an empty ring; memory must be zeroed.
    void initialize();

    uint32_t capacity() const { return capacity_; }
    int fd() const { return event_fd_; }

    // Producer: appends and posts one ticket. WouldBlock when full (the
    // router keeps the request and retries when a consumer rings its
    // doorbell), Corrupt when a peer broke the ring. Thread-safe.
    Result<void> push(const RequestDescriptor& descriptor);

    // Consumer: takes a ticket, then the next request. WouldBlock when there
    // is no ticket: wait for fd() to become readable. Thread-safe.
    Result<RequestDescriptor> take();

    // Consumer: take(), waiting up to timeout_ms (negative: forever) while
    // the queue is empty; also returns WouldBlock when `extra_fd` becomes
    // readable so the caller can serve its socket.
    Result<RequestDescriptor> takeWait(int timeout_ms, int extra_fd = -1);

    // Adds one ticket without a request. The router calls it when a consumer
    // died, because it may have taken a ticket and not its request; a
    // spurious ticket only wakes one consumer for nothing.
    void nudge() const;

    // Requests in the ring, approximately (for tests and /status).
    uint64_t approximateSize() const;

  private:
    Result<RequestDescriptor> pop();

    std::byte* memory_ = nullptr;
    uint32_t capacity_ = 0;
    int event_fd_ = -1;
};

}  // namespace canopy::transport
