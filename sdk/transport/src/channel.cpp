#include "canopy/transport/channel.h"

#include <bit>
#include <cstring>

#include "layout.h"
#include "shared.h"

namespace canopy::transport {

using detail::shared;
using detail::StreamSlotShared;

namespace {

size_t queueOffset() {
    return sizeof(detail::ChannelHeader);
}

size_t doorbellsOffset(const ChannelGeometry& geometry) {
    return detail::alignUp(queueOffset() + RequestQueue::sizeFor(geometry.queue_capacity), 64);
}

size_t doorbellStride(const ChannelGeometry& geometry) {
    return Doorbell::sizeFor(geometry.doorbellBits());
}

size_t slotsOffset(const ChannelGeometry& geometry) {
    return doorbellsOffset(geometry) +
           doorbellStride(geometry) * (size_t{geometry.max_consumers} + 1);
}

}  // namespace

bool ChannelGeometry::valid() const {
    return queue_capacity >= 2 && queue_capacity <= (1U << 20) &&
           std::has_single_bit(queue_capacity) && stream_slots >= 1 && stream_slots <= (1U << 20) &&
           max_consumers >= 1 && max_consumers <= 4096 && stream_credit >= 1 &&
           stream_credit <= kMaxStreamCredit;
}

size_t ChannelGeometry::size() const {
    return detail::alignUp(slotsOffset(*this) + sizeof(StreamSlotShared) * size_t{stream_slots},
                           4096);
}

Channel::Channel(const ChannelGeometry& geometry, FileDescriptor memory, std::byte* base,
                 Party self)
    : geometry_(geometry),
      memory_(std::move(memory)),
      base_(base),
      self_(self),
      consumer_events_(geometry.max_consumers),
      doorbells_(base + doorbellsOffset(geometry)),
      slots_(base + slotsOffset(geometry)) {}

Channel::~Channel() {
    detail::unmapSharedMemory(base_, geometry_.size());
}

Result<std::unique_ptr<Channel>> Channel::create(const ChannelGeometry& geometry) {
    if (!geometry.valid()) {
        return Error{Errc::Invalid, 0, "channel geometry out of range"};
    }
    auto memory = detail::createSealedMemory("canopy-channel", geometry.size());
    if (!memory) {
        return memory.error();
    }
    auto base = detail::mapSharedMemory(memory->get(), geometry.size(), false);
    if (!base) {
        return base.error();
    }
    std::unique_ptr<Channel> channel(
        new Channel(geometry, std::move(*memory), *base, kRouterParty));
    auto queue_event = detail::createEventFd(true);
    auto router_event = detail::createEventFd(false);
    if (!queue_event) {
        return queue_event.error();
    }
    if (!router_event) {
        return router_event.error();
    }
    channel->queue_event_ = std::move(*queue_event);
    channel->router_event_ = std::move(*router_event);

    auto* header = reinterpret_cast<detail::ChannelHeader*>(*base);
    header->magic = detail::kChannelMagic;
    header->version = detail::kChannelVersion;
    header->geometry = geometry;
    channel->queue_ =
        RequestQueue(*base + queueOffset(), geometry.queue_capacity, channel->queue_event_.get());
    channel->queue_.initialize();
    for (uint32_t index = 0; index < geometry.stream_slots; ++index) {
        StreamSlotShared* slot = channel->slot(index);
        slot->writer = kNoParty;
        slot->reader = kNoParty;
        channel->free_slots_.push_back(index);
    }
    channel->slot_generation_.assign(geometry.stream_slots, 0);
    return channel;
}

Result<std::unique_ptr<Channel>> Channel::attach(const ChannelGeometry& geometry,
                                                 FileDescriptor memory, FileDescriptor queue_event,
                                                 FileDescriptor router_event, uint32_t consumer,
                                                 FileDescriptor consumer_event) {
    if (!geometry.valid() || consumer >= geometry.max_consumers) {
        return Error{Errc::Invalid, 0, "channel geometry or consumer out of range"};
    }
    auto base = detail::mapSharedMemory(memory.get(), geometry.size(), true);
    if (!base) {
        return base.error();
    }
    std::unique_ptr<Channel> channel(
        new Channel(geometry, std::move(memory), *base, consumerParty(consumer)));
    channel->queue_event_ = std::move(queue_event);
    channel->router_event_ = std::move(router_event);
    channel->consumer_events_[consumer] = std::move(consumer_event);
    channel->queue_ =
        RequestQueue(*base + queueOffset(), geometry.queue_capacity, channel->queue_event_.get());
    return channel;
}

bool Channel::validParty(Party party) const {
    return party <= geometry_.max_consumers;
}

Doorbell Channel::doorbell(Party party) const {
    if (!validParty(party)) {
        return {};
    }
    int fd = party == kRouterParty ? router_event_.get() : consumer_events_[party - 1].get();
    return Doorbell(doorbells_ + doorbellStride(geometry_) * party, geometry_.doorbellBits(), fd);
}

Result<int> Channel::consumerEventFd(uint32_t consumer) {
    if (consumer >= geometry_.max_consumers) {
        return Error{Errc::Invalid, 0, "consumer out of range"};
    }
    std::lock_guard lock(streams_mutex_);
    if (!consumer_events_[consumer].valid()) {
        auto event = detail::createEventFd(false);
        if (!event) {
            return event.error();
        }
        consumer_events_[consumer] = std::move(*event);
    }
    return consumer_events_[consumer].get();
}

StreamSlotShared* Channel::slot(uint32_t index) const {
    if (index >= geometry_.stream_slots) {
        return nullptr;
    }
    return reinterpret_cast<StreamSlotShared*>(slots_) + index;
}

Result<StreamId> Channel::openStream(Party writer, Party reader) {
    std::lock_guard lock(streams_mutex_);
    if (free_slots_.empty()) {
        return Error{Errc::Exhausted, 0, "no free stream slot"};
    }
    uint32_t index = free_slots_.front();
    free_slots_.pop_front();
    uint64_t generation = next_generation_++;
    slot_generation_[index] = generation;
    StreamSlotShared* shared_slot = slot(index);
    // Reset everything before publishing the generation: a consumer looks at
    // the generation first.
    shared(shared_slot->written).store(0, std::memory_order_relaxed);
    shared(shared_slot->writer_flags).store(0, std::memory_order_relaxed);
    shared(shared_slot->released).store(0, std::memory_order_relaxed);
    shared(shared_slot->reader_flags).store(0, std::memory_order_relaxed);
    shared(shared_slot->writer).store(writer, std::memory_order_relaxed);
    shared(shared_slot->reader).store(reader, std::memory_order_relaxed);
    shared(shared_slot->generation).store(generation, std::memory_order_release);
    return StreamId{index, generation};
}

void Channel::closeStream(StreamId id) {
    std::lock_guard lock(streams_mutex_);
    if (id.slot >= geometry_.stream_slots || slot_generation_[id.slot] != id.generation ||
        id.generation == 0) {
        return;
    }
    slot_generation_[id.slot] = 0;
    StreamSlotShared* shared_slot = slot(id.slot);
    shared(shared_slot->generation).store(0, std::memory_order_release);
    // Wake a peer blocked on this stream so it notices the close.
    Party writer = shared(shared_slot->writer).load(std::memory_order_relaxed);
    Party reader = shared(shared_slot->reader).load(std::memory_order_relaxed);
    for (Party party : {writer, reader}) {
        if (party != kRouterParty && validParty(party)) {
            doorbell(party).ring(id.slot);
        }
    }
    free_slots_.push_back(id.slot);
}

Party Channel::streamWriter(StreamId id) const {
    StreamSlotShared* shared_slot = slot(id.slot);
    if (shared_slot == nullptr) {
        return kNoParty;
    }
    Party party = shared(shared_slot->writer).load(std::memory_order_acquire);
    return validParty(party) ? party : kNoParty;
}

Party Channel::streamReader(StreamId id) const {
    StreamSlotShared* shared_slot = slot(id.slot);
    if (shared_slot == nullptr) {
        return kNoParty;
    }
    Party party = shared(shared_slot->reader).load(std::memory_order_acquire);
    return validParty(party) ? party : kNoParty;
}

size_t Channel::openStreams() const {
    std::lock_guard lock(streams_mutex_);
    return geometry_.stream_slots - free_slots_.size();
}

Result<RequestDescriptor> Channel::takeRequest(SegmentTable& router_segments, int timeout_ms,
                                               int extra_fd,
                                               const std::function<void()>& attach_announced) {
    auto taken = queue_.takeWait(timeout_ms, extra_fd);
    if (!taken) {
        return taken;
    }
    RequestDescriptor descriptor = *taken;
    // Tell the router a queue cell is free and a request was claimed.
    Doorbell router = doorbell(kRouterParty);
    router.ring(geometry_.queueBit());

    if (descriptor.head_chunk_count > kMaxHeadChunks ||
        (descriptor.request_stream != kNoStream &&
         descriptor.request_stream >= geometry_.stream_slots) ||
        descriptor.response_stream >= geometry_.stream_slots) {
        return Error{Errc::Corrupt, 0, "request descriptor out of range"};
    }
    // Head chunks first: a request the router cancelled while it was queued
    // has had its chunks freed, so the transfer fails and we drop it.
    const Holder router_holder = holderOf(kRouterParty);
    const Holder own_holder = holderOf(self_);
    uint32_t claimed = 0;
    for (; claimed < descriptor.head_chunk_count; ++claimed) {
        const ChunkRef& ref = descriptor.head_chunks[claimed];
        if (router_segments.find(ref.segment) == nullptr && attach_announced) {
            attach_announced();
        }
        if (!router_segments.transfer(ref, router_holder, own_holder)) {
            break;
        }
    }
    auto claimSide = [&](uint32_t index, uint64_t generation, bool as_reader) {
        StreamSlotShared* shared_slot = slot(index);
        if (shared(shared_slot->generation).load(std::memory_order_acquire) != generation) {
            return false;
        }
        Party expected = kNoParty;
        return shared(as_reader ? shared_slot->reader : shared_slot->writer)
            .compare_exchange_strong(expected, self_, std::memory_order_acq_rel);
    };
    bool ok = claimed == descriptor.head_chunk_count &&
              claimSide(descriptor.response_stream, descriptor.response_stream_generation, false) &&
              (descriptor.request_stream == kNoStream ||
               claimSide(descriptor.request_stream, descriptor.request_stream_generation, true));
    if (!ok) {
        for (uint32_t index = 0; index < claimed; ++index) {
            router_segments.releaseIfHeld(descriptor.head_chunks[index], own_holder);
        }
        router.ring(geometry_.memoryBit());
        return Error{Errc::Aborted, 0, "request cancelled while queued"};
    }
    return descriptor;
}

}  // namespace canopy::transport
