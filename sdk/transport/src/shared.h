#pragma once

// Helpers for words that live in shared memory. Plain fields in mapped
// memory are accessed through std::atomic_ref, which is address-free and
// lock-free for these sizes, so the same word works across processes.

#include <sys/mman.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "canopy/transport/file_descriptor.h"
#include "canopy/transport/result.h"

namespace canopy::transport::detail {

static_assert(std::atomic_ref<uint64_t>::is_always_lock_free);
static_assert(std::atomic_ref<uint32_t>::is_always_lock_free);

template <typename T>
std::atomic_ref<T> shared(T& word) {
    return std::atomic_ref<T>(word);
}

// Bound on every retry loop over state a peer can write: an honest peer
// makes a CAS fail a handful of times; a hostile one must not hang us.
constexpr int kMaxRetries = 1 << 16;

constexpr size_t alignUp(size_t value, size_t alignment) {
    return (value + alignment - 1) / alignment * alignment;
}

// A sealed memfd of `size` bytes: sealed against shrinking and growing so no
// process holding the fd can make our mapping fault (SIGBUS) by truncation.
Result<FileDescriptor> createSealedMemory(const char* name, size_t size);
// Checks that `fd` is a memfd of exactly `size` bytes, sealed against
// shrinking, and maps it.
Result<std::byte*> mapSharedMemory(int fd, size_t size, bool check_seals);
void unmapSharedMemory(std::byte* base, size_t size);

// eventfd helpers; errors other than EAGAIN are ignored on signal because a
// lost wake-up is preferable to a failure in a peer-facing path.
Result<FileDescriptor> createEventFd(bool semaphore);
void signalEventFd(int fd);
// Reads the counter (one unit in semaphore mode). False when it was zero.
bool drainEventFd(int fd);
// Waits until `fd` (or `extra_fd` when >= 0) is readable. True when
// readable, false on timeout; a negative timeout waits forever.
Result<bool> waitReadable(int fd, int extra_fd, int timeout_ms);

}  // namespace canopy::transport::detail
