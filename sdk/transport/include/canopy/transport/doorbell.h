#pragma once

// A doorbell wakes one party (the router, or one consumer) and tells it what
// changed. It is a bitmap in shared memory (one bit per stream slot, plus a
// few for other events) and an eventfd. A ringer sets its bit and writes the
// eventfd only when the owner is armed, i.e. waiting or about to; a busy
// owner collects many rings with one wake-up and no system call per ring.
//
// Lost wake-ups cannot happen: the owner arms before it collects the bits,
// so a bit set after the collection finds the doorbell armed and writes the
// eventfd. A peer that tampers with the bitmap or the armed word can only
// cause spurious wake-ups or delay its own traffic: the owner bounds every
// bit to the range it knows.

#include <cstddef>
#include <cstdint>

#include "canopy/transport/result.h"

namespace canopy::transport {

class Doorbell {
  public:
    Doorbell() = default;
    // A view of a doorbell at `memory` (Doorbell::sizeFor(bit_count) bytes)
    // with its eventfd; the fd stays owned by the caller. `event_fd` may be
    // -1 when this process only collects without waiting (tests).
    Doorbell(std::byte* memory, uint32_t bit_count, int event_fd);

    static size_t sizeFor(uint32_t bit_count);

    bool valid() const { return memory_ != nullptr; }
    int fd() const { return event_fd_; }
    uint32_t bitCount() const { return bit_count_; }

    // Marks `bit` and wakes the owner if it is armed. From any process and
    // thread. A bit out of range is ignored.
    void ring(uint32_t bit) const;

    // Owner only: arms the doorbell, then reports every bit rung since the
    // last collection, once, to on_bit(uint32_t).
    template <typename OnBit>
    void collect(OnBit&& on_bit) const {
        arm();
        for (uint32_t word = 0; word < wordCount(); ++word) {
            uint64_t bits = takeWord(word);
            while (bits != 0) {
                uint32_t bit = word * 64 + static_cast<uint32_t>(__builtin_ctzll(bits));
                bits &= bits - 1;
                if (bit < bit_count_) {
                    on_bit(bit);
                }
            }
        }
    }

    // Owner only: blocks until the doorbell is rung (or `extra_fd`, when not
    // negative, is readable) or `timeout_ms` passes; negative waits forever.
    // Returns true when woken. Call collect() afterwards.
    Result<bool> wait(int timeout_ms, int extra_fd = -1) const;

  private:
    uint32_t wordCount() const { return (bit_count_ + 63) / 64; }
    void arm() const;
    uint64_t takeWord(uint32_t word) const;

    std::byte* memory_ = nullptr;
    uint32_t bit_count_ = 0;
    int event_fd_ = -1;
};

}  // namespace canopy::transport
