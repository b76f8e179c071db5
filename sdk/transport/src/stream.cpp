#include "canopy/transport/stream.h"

#include <cstring>

#include "layout.h"
#include "shared.h"

namespace canopy::transport {

using detail::kStreamAbort;
using detail::kStreamBroken;
using detail::kStreamEnd;
using detail::shared;
using detail::StreamSlotShared;

namespace {

// A consumer checks the slot still belongs to its stream before each step;
// the router owns the generation and needs no check.
bool slotIsCurrent(const Channel& channel, StreamSlotShared* slot, StreamId id) {
    if (slot == nullptr || id.generation == 0) {
        return false;
    }
    if (channel.self() == kRouterParty) {
        return true;
    }
    return shared(slot->generation).load(std::memory_order_acquire) == id.generation;
}

// The peer to ring. The consumer's peer is always the router; the router
// asks the slot which consumer claimed the other side (validated).
Party peerOf(const Channel& channel, StreamId id, bool peer_is_reader) {
    if (channel.self() != kRouterParty) {
        return kRouterParty;
    }
    return peer_is_reader ? channel.streamReader(id) : channel.streamWriter(id);
}

}  // namespace

StreamWriter::StreamWriter(Channel& channel, StreamId id, Party self, SegmentTable& own_segments)
    : channel_(&channel),
      id_(id),
      self_(self),
      segments_(&own_segments),
      capacity_(channel.geometry().stream_credit) {}

Result<uint64_t> StreamWriter::readReleased() {
    StreamSlotShared* slot = channel_->slot(id_.slot);
    if (!slotIsCurrent(*channel_, slot, id_)) {
        return Error{Errc::Aborted, 0, "stream closed"};
    }
    if ((shared(slot->reader_flags).load(std::memory_order_acquire) & kStreamAbort) != 0) {
        return Error{Errc::Aborted, 0, "reader aborted the stream"};
    }
    uint64_t released = shared(slot->released).load(std::memory_order_acquire);
    // The reader can release only what was written, and only forwards.
    if (released < released_ || released > written_) {
        return Error{Errc::Corrupt, 0, "stream release count out of range"};
    }
    released_ = released;
    return released;
}

Result<uint32_t> StreamWriter::credit() {
    auto released = readReleased();
    if (!released) {
        return released.error();
    }
    return static_cast<uint32_t>(capacity_ - (written_ - *released));
}

Result<void> StreamWriter::write(const StreamEntry& entry) {
    if (entry.kind == EntryKind::Chunk && !segments_->validRef(entry.chunk)) {
        return Error{Errc::Invalid, 0, "chunk not in the writer's segments"};
    }
    if (entry.kind != EntryKind::Chunk && entry.kind != EntryKind::File) {
        return Error{Errc::Invalid, 0, "unknown stream entry kind"};
    }
    auto released = readReleased();
    if (!released) {
        return released.error();
    }
    if (written_ - *released >= capacity_) {
        return Error{Errc::WouldBlock, 0, "stream has no credit"};
    }
    StreamSlotShared* slot = channel_->slot(id_.slot);
    uint32_t position = static_cast<uint32_t>(written_ % capacity_);
    sent_[position] = entry;
    std::memcpy(&slot->ring[position], &entry, sizeof entry);
    ++written_;
    shared(slot->written).store(written_, std::memory_order_release);
    ringReader();
    return {};
}

Result<void> StreamWriter::writeChunk(const ChunkRef& chunk) {
    StreamEntry entry;
    entry.kind = EntryKind::Chunk;
    entry.chunk = chunk;
    return write(entry);
}

Result<void> StreamWriter::writeFile(uint32_t token, uint64_t offset, uint64_t length) {
    StreamEntry entry;
    entry.kind = EntryKind::File;
    entry.file_token = token;
    entry.file_offset = offset;
    entry.file_length = length;
    return write(entry);
}

Result<void> StreamWriter::finish(bool complete) {
    StreamSlotShared* slot = channel_->slot(id_.slot);
    if (!slotIsCurrent(*channel_, slot, id_)) {
        return Error{Errc::Aborted, 0, "stream closed"};
    }
    shared(slot->writer_flags)
        .fetch_or(complete ? kStreamEnd : kStreamEnd | kStreamBroken, std::memory_order_release);
    ringReader();
    return {};
}

void StreamWriter::abort() {
    StreamSlotShared* slot = channel_->slot(id_.slot);
    if (!slotIsCurrent(*channel_, slot, id_)) {
        return;
    }
    shared(slot->writer_flags).fetch_or(kStreamAbort, std::memory_order_release);
    ringReader();
}

bool StreamWriter::readerAborted() const {
    StreamSlotShared* slot = channel_->slot(id_.slot);
    if (!slotIsCurrent(*channel_, slot, id_)) {
        return true;
    }
    return (shared(slot->reader_flags).load(std::memory_order_acquire) & kStreamAbort) != 0;
}

size_t StreamWriter::reclaimUnread() {
    size_t reclaimed = 0;
    // Entries the reader took are its own (it transferred them); the rest
    // are still ours. Our copies, not the ring, say what we wrote.
    uint64_t first = written_ > capacity_ ? written_ - capacity_ : 0;
    for (uint64_t position = std::max(first, released_); position < written_; ++position) {
        const StreamEntry& entry = sent_[position % capacity_];
        if (entry.kind == EntryKind::Chunk &&
            segments_->releaseIfHeld(entry.chunk, holderOf(self_))) {
            ++reclaimed;
        }
    }
    return reclaimed;
}

void StreamWriter::ringReader() const {
    Party reader = peerOf(*channel_, id_, true);
    if (reader != kNoParty && reader != self_) {
        channel_->doorbell(reader).ring(id_.slot);
    }
}

StreamReader::StreamReader(Channel& channel, StreamId id, Party self, SegmentTable& writer_segments)
    : channel_(&channel),
      id_(id),
      self_(self),
      segments_(&writer_segments),
      capacity_(channel.geometry().stream_credit) {}

Result<StreamEntry> StreamReader::next() {
    if (aborted_) {
        return Error{Errc::Aborted, 0, "stream aborted by this reader"};
    }
    StreamSlotShared* slot = channel_->slot(id_.slot);
    if (!slotIsCurrent(*channel_, slot, id_)) {
        return Error{Errc::Aborted, 0, "stream closed"};
    }
    // Flags before the count: the end flag is set after the last entry is
    // published, so with the flag seen, the count read next is final.
    uint32_t flags = shared(slot->writer_flags).load(std::memory_order_acquire);
    if ((flags & kStreamAbort) != 0) {
        return Error{Errc::Aborted, 0, "writer aborted the stream"};
    }
    uint64_t written = shared(slot->written).load(std::memory_order_acquire);
    if (written < taken_ || written - released_ > capacity_) {
        return Error{Errc::Corrupt, 0, "stream write count out of range"};
    }
    if (written == taken_) {
        if ((flags & kStreamBroken) != 0) {
            return Error{Errc::Aborted, 0, "writer cut the stream short"};
        }
        if ((flags & kStreamEnd) != 0) {
            return Error{Errc::Closed, 0, "end of stream"};
        }
        return Error{Errc::WouldBlock, 0, "no data yet"};
    }
    uint32_t position = static_cast<uint32_t>(taken_ % capacity_);
    StreamEntry entry;
    std::memcpy(&entry, &slot->ring[position], sizeof entry);
    if (entry.kind == EntryKind::Chunk) {
        if (!segments_->validRef(entry.chunk)) {
            return Error{Errc::Corrupt, 0, "stream entry names no valid chunk"};
        }
        // Ours now: if this process dies, the owner reclaims it by holder.
        Party writer = peerOf(*channel_, id_, false);
        if (writer != kNoParty) {
            segments_->transfer(entry.chunk, holderOf(writer), holderOf(self_));
        }
    } else if (entry.kind != EntryKind::File) {
        return Error{Errc::Corrupt, 0, "stream entry of unknown kind"};
    }
    held_[position] = entry;
    ++taken_;
    return entry;
}

std::span<const std::byte> StreamReader::data(const StreamEntry& entry) const {
    if (entry.kind != EntryKind::Chunk) {
        return {};
    }
    return segments_->data(entry.chunk);
}

Result<void> StreamReader::release() {
    if (released_ == taken_) {
        return Error{Errc::Invalid, 0, "nothing to release"};
    }
    const StreamEntry& entry = held_[released_ % capacity_];
    if (entry.kind == EntryKind::Chunk) {
        segments_->release(entry.chunk);
    }
    ++released_;
    StreamSlotShared* slot = channel_->slot(id_.slot);
    if (slotIsCurrent(*channel_, slot, id_)) {
        shared(slot->released).store(released_, std::memory_order_release);
        ringWriter();
    }
    return {};
}

void StreamReader::abort() {
    while (released_ < taken_) {
        (void)release();
    }
    if (aborted_) {
        return;
    }
    aborted_ = true;
    StreamSlotShared* slot = channel_->slot(id_.slot);
    if (slotIsCurrent(*channel_, slot, id_)) {
        shared(slot->reader_flags).fetch_or(kStreamAbort, std::memory_order_release);
        ringWriter();
    }
}

bool StreamReader::writerAborted() const {
    StreamSlotShared* slot = channel_->slot(id_.slot);
    if (!slotIsCurrent(*channel_, slot, id_)) {
        return true;
    }
    return (shared(slot->writer_flags).load(std::memory_order_acquire) & kStreamAbort) != 0;
}

void StreamReader::ringWriter() const {
    Party writer = peerOf(*channel_, id_, false);
    if (writer != kNoParty && writer != self_) {
        channel_->doorbell(writer).ring(id_.slot);
    }
}

}  // namespace canopy::transport
