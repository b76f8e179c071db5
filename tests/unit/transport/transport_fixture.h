#pragma once

// Builds the two ends of a channel for tests: the router's, and a consumer's
// attached from duplicated descriptors in a forked child, as a worker would
// attach from descriptors received on its socket.

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>

#include "canopy/transport/channel.h"
#include "canopy/transport/doorbell.h"
#include "canopy/transport/segment.h"

namespace canopy::transport::testing {

inline FileDescriptor duplicate(int fd) {
    return FileDescriptor(::dup(fd));
}

// Call in the parent before fork(): the consumer's eventfd must exist.
inline void prepareConsumer(Channel& router, uint32_t consumer) {
    ASSERT_TRUE(router.consumerEventFd(consumer).ok());
}

// Call in the child.
inline std::unique_ptr<Channel> attachConsumer(Channel& router, uint32_t consumer) {
    auto event = router.consumerEventFd(consumer);
    if (!event) {
        return nullptr;
    }
    auto channel = Channel::attach(router.geometry(), duplicate(router.memoryFd()),
                                   duplicate(router.queueEventFd()),
                                   duplicate(router.routerEventFd()), consumer, duplicate(*event));
    return channel ? std::move(*channel) : nullptr;
}

// A consumer's view of the router's segments, mapped from their fds.
inline bool attachSegments(const SegmentTable& from, SegmentTable& to, const SegmentGeometry& g) {
    for (uint32_t id = 0; id < from.size(); ++id) {
        Segment* segment = from.find(id);
        if (segment == nullptr || !to.attach(id, duplicate(segment->fd()), g).ok()) {
            return false;
        }
    }
    return true;
}

// Waits on `bell` until ready() holds; false after timeout_ms. No busy wait:
// between checks the caller sleeps in poll() on the doorbell's eventfd.
template <typename Ready>
bool waitUntil(const Doorbell& bell, Ready&& ready, int timeout_ms = 20000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
        bell.collect([](uint32_t) {});
        if (ready()) {
            return true;
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                        deadline - std::chrono::steady_clock::now())
                        .count();
        if (left <= 0) {
            return false;
        }
        if (!bell.wait(static_cast<int>(left)).ok()) {
            return false;
        }
    }
}

}  // namespace canopy::transport::testing
