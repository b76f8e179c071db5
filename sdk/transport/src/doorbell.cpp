#include "canopy/transport/doorbell.h"

#include "shared.h"

namespace canopy::transport {

using detail::shared;

namespace {

// The armed word sits on its own cache line, the bitmap after it.
constexpr size_t kBitsOffset = 64;

}  // namespace

Doorbell::Doorbell(std::byte* memory, uint32_t bit_count, int event_fd)
    : memory_(memory), bit_count_(bit_count), event_fd_(event_fd) {}

size_t Doorbell::sizeFor(uint32_t bit_count) {
    return kBitsOffset + detail::alignUp(size_t{(bit_count + 63) / 64} * sizeof(uint64_t), 64);
}

void Doorbell::ring(uint32_t bit) const {
    if (memory_ == nullptr || bit >= bit_count_) {
        return;
    }
    auto* words = reinterpret_cast<uint64_t*>(memory_ + kBitsOffset);
    shared(words[bit / 64]).fetch_or(uint64_t{1} << (bit % 64), std::memory_order_seq_cst);
    auto armed = shared(*reinterpret_cast<uint32_t*>(memory_));
    // Only the ringer that disarms pays the system call; the rest find the
    // owner already woken, and their bits are collected with the first.
    if (armed.load(std::memory_order_seq_cst) != 0 &&
        armed.exchange(0, std::memory_order_seq_cst) != 0) {
        detail::signalEventFd(event_fd_);
    }
}

void Doorbell::arm() const {
    if (event_fd_ >= 0) {
        // Drop a wake-up already delivered: its bits are collected now.
        detail::drainEventFd(event_fd_);
    }
    shared(*reinterpret_cast<uint32_t*>(memory_)).store(1, std::memory_order_seq_cst);
}

uint64_t Doorbell::takeWord(uint32_t word) const {
    auto* words = reinterpret_cast<uint64_t*>(memory_ + kBitsOffset);
    auto bits = shared(words[word]);
    // Skip the read-modify-write for the common empty word.
    if (bits.load(std::memory_order_seq_cst) == 0) {
        return 0;
    }
    return bits.exchange(0, std::memory_order_seq_cst);
}

Result<bool> Doorbell::wait(int timeout_ms, int extra_fd) const {
    if (event_fd_ < 0) {
        return Error{Errc::Invalid, 0, "doorbell without an eventfd"};
    }
    return detail::waitReadable(event_fd_, extra_fd, timeout_ms);
}

}  // namespace canopy::transport
