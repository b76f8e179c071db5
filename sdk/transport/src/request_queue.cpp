#include "canopy/transport/request_queue.h"

#include <sched.h>

#include <bit>
#include <cstring>

#include "shared.h"

namespace canopy::transport {

using detail::kMaxRetries;
using detail::shared;

namespace {

struct QueueHeader {
    alignas(64) uint64_t enqueue_position;
    alignas(64) uint64_t dequeue_position;
};
static_assert(sizeof(QueueHeader) == 128);

struct QueueCell {
    uint64_t sequence;
    uint64_t reserved;
    RequestDescriptor descriptor;
};
static_assert(sizeof(QueueCell) == 128);

// How often a consumer holding a ticket looks again for a request a producer
// reserved but has not finished writing (a few instructions away).
constexpr int kPublishSpins = 1024;

}  // namespace

RequestQueue::RequestQueue(std::byte* memory, uint32_t capacity, int event_fd)
    : memory_(memory), capacity_(capacity), event_fd_(event_fd) {}

size_t RequestQueue::sizeFor(uint32_t capacity) {
    return sizeof(QueueHeader) + sizeof(QueueCell) * size_t{capacity};
}

void RequestQueue::initialize() {
    auto* cells = reinterpret_cast<QueueCell*>(memory_ + sizeof(QueueHeader));
    for (uint32_t index = 0; index < capacity_; ++index) {
        shared(cells[index].sequence).store(index, std::memory_order_relaxed);
    }
    std::atomic_thread_fence(std::memory_order_release);
}

Result<void> RequestQueue::push(const RequestDescriptor& descriptor) {
    auto* header = reinterpret_cast<QueueHeader*>(memory_);
    auto* cells = reinterpret_cast<QueueCell*>(memory_ + sizeof(QueueHeader));
    auto enqueue = shared(header->enqueue_position);
    uint64_t position = enqueue.load(std::memory_order_relaxed);
    for (int attempt = 0; attempt < kMaxRetries; ++attempt) {
        // Masking keeps the index in range whatever a peer wrote.
        QueueCell& cell = cells[position & (capacity_ - 1)];
        uint64_t sequence = shared(cell.sequence).load(std::memory_order_acquire);
        auto difference = static_cast<int64_t>(sequence - position);
        if (difference == 0) {
            if (enqueue.compare_exchange_weak(position, position + 1, std::memory_order_relaxed)) {
                std::memcpy(&cell.descriptor, &descriptor, sizeof descriptor);
                shared(cell.sequence).store(position + 1, std::memory_order_release);
                detail::signalEventFd(event_fd_);
                return {};
            }
        } else if (difference < 0) {
            return Error{Errc::WouldBlock, 0, "request queue full"};
        } else {
            position = enqueue.load(std::memory_order_relaxed);
        }
    }
    return Error{Errc::Corrupt, 0, "request queue never settles"};
}

Result<RequestDescriptor> RequestQueue::pop() {
    auto* header = reinterpret_cast<QueueHeader*>(memory_);
    auto* cells = reinterpret_cast<QueueCell*>(memory_ + sizeof(QueueHeader));
    auto dequeue = shared(header->dequeue_position);
    uint64_t position = dequeue.load(std::memory_order_relaxed);
    for (int attempt = 0; attempt < kMaxRetries; ++attempt) {
        QueueCell& cell = cells[position & (capacity_ - 1)];
        uint64_t sequence = shared(cell.sequence).load(std::memory_order_acquire);
        auto difference = static_cast<int64_t>(sequence - (position + 1));
        if (difference == 0) {
            // Copy before claiming: the claim is then the last step, which
            // leaves the smallest window in which a consumer killed by a
            // signal could strand a cell.
            RequestDescriptor descriptor;
            std::memcpy(&descriptor, &cell.descriptor, sizeof descriptor);
            if (dequeue.compare_exchange_weak(position, position + 1, std::memory_order_relaxed)) {
                shared(cell.sequence).store(position + capacity_, std::memory_order_release);
                return descriptor;
            }
        } else if (difference < 0) {
            return Error{Errc::WouldBlock, 0, "request queue empty"};
        } else {
            position = dequeue.load(std::memory_order_relaxed);
        }
    }
    return Error{Errc::Corrupt, 0, "request queue never settles"};
}

Result<RequestDescriptor> RequestQueue::take() {
    if (!detail::drainEventFd(event_fd_)) {
        return Error{Errc::WouldBlock, 0, "no request queued"};
    }
    for (int spin = 0; spin < kPublishSpins; ++spin) {
        auto descriptor = pop();
        if (descriptor.code() != Errc::WouldBlock) {
            return descriptor;
        }
        if (spin % 64 == 63) {
            sched_yield();
        }
    }
    if (approximateSize() == 0) {
        // No request is being written either: the ticket was a nudge (after a
        // consumer died) that nobody needs. Putting it back would have every
        // idle consumer spin on it forever.
        return Error{Errc::WouldBlock, 0, "no request queued"};
    }
    // The ticket's request is still being written by a preempted producer:
    // put the ticket back so this or another consumer comes back for it.
    detail::signalEventFd(event_fd_);
    return Error{Errc::WouldBlock, 0, "request not yet published"};
}

Result<RequestDescriptor> RequestQueue::takeWait(int timeout_ms, int extra_fd) {
    for (;;) {
        auto descriptor = take();
        if (descriptor.code() != Errc::WouldBlock) {
            return descriptor;
        }
        auto ready = detail::waitReadable(event_fd_, extra_fd, timeout_ms);
        if (!ready) {
            return ready.error();
        }
        if (!*ready) {
            return Error{Errc::WouldBlock, 0, "timed out waiting for a request"};
        }
        if (extra_fd >= 0) {
            // The caller's descriptor may be what woke us: let it look.
            auto queue_ready = detail::waitReadable(event_fd_, -1, 0);
            if (!queue_ready || !*queue_ready) {
                return Error{Errc::WouldBlock, 0, "woken by the other descriptor"};
            }
        }
    }
}

void RequestQueue::nudge() const {
    detail::signalEventFd(event_fd_);
}

uint64_t RequestQueue::approximateSize() const {
    auto* header = reinterpret_cast<QueueHeader*>(memory_);
    uint64_t enqueued = shared(header->enqueue_position).load(std::memory_order_relaxed);
    uint64_t dequeued = shared(header->dequeue_position).load(std::memory_order_relaxed);
    return enqueued >= dequeued ? enqueued - dequeued : 0;
}

}  // namespace canopy::transport
