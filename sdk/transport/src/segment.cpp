#include "canopy/transport/segment.h"

#include <bit>
#include <cstring>

#include "shared.h"

namespace canopy::transport {

using detail::kMaxRetries;
using detail::shared;

namespace {

constexpr uint32_t kSegmentMagic = 0x47455343;  // "CSEG"
constexpr uint32_t kSegmentVersion = 1;
constexpr uint32_t kNoChunk = 0xFFFFFFFF;
constexpr size_t kPageSize = 4096;

// The first bytes of a segment. Geometry is written for debugging only: each
// side uses the geometry it was given out of band, never these copies.
struct SegmentHeader {
    uint32_t magic;
    uint32_t version;
    uint32_t chunk_size;
    uint32_t chunk_count;
    uint8_t pad0[48];
    // Free-list head: chunk index in the low half, an ABA tag in the high
    // half that every successful update bumps. On its own cache line: every
    // allocation and free touches it.
    alignas(64) uint64_t free_head;
    uint8_t pad1[56];
};
static_assert(sizeof(SegmentHeader) == 128);

// A chunk's state word: generation in the high half, holder in the low half.
constexpr uint64_t packState(uint32_t generation, Holder holder) {
    return (uint64_t{generation} << 32) | holder;
}
constexpr uint32_t stateGeneration(uint64_t state) {
    return static_cast<uint32_t>(state >> 32);
}
constexpr Holder stateHolder(uint64_t state) {
    return static_cast<Holder>(state);
}
constexpr uint64_t packHead(uint32_t tag, uint32_t index) {
    return (uint64_t{tag} << 32) | index;
}
constexpr uint32_t headTag(uint64_t head) {
    return static_cast<uint32_t>(head >> 32);
}

}  // namespace

bool SegmentGeometry::valid() const {
    return chunk_size >= kMinChunkSize && chunk_size <= kMaxChunkSize &&
           std::has_single_bit(chunk_size) && chunk_count > 0 &&
           chunk_count <= kMaxChunksPerSegment && mappedSize() <= kMaxSegmentBytes;
}

size_t SegmentGeometry::metadataSize() const {
    size_t states = sizeof(SegmentHeader) + sizeof(uint64_t) * chunk_count;
    return detail::alignUp(states + sizeof(uint32_t) * chunk_count, kPageSize);
}

size_t SegmentGeometry::mappedSize() const {
    return metadataSize() + size_t{chunk_size} * chunk_count;
}

Segment::Segment(uint32_t id, FileDescriptor fd, const SegmentGeometry& geometry, std::byte* base)
    : id_(id), fd_(std::move(fd)), geometry_(geometry), base_(base) {
    auto* header = reinterpret_cast<SegmentHeader*>(base_);
    free_head_ = &header->free_head;
    states_ = reinterpret_cast<uint64_t*>(base_ + sizeof(SegmentHeader));
    links_ = reinterpret_cast<uint32_t*>(base_ + sizeof(SegmentHeader) +
                                         sizeof(uint64_t) * geometry_.chunk_count);
    chunks_ = base_ + geometry_.metadataSize();
}

Segment::~Segment() {
    detail::unmapSharedMemory(base_, geometry_.mappedSize());
}

Result<std::unique_ptr<Segment>> Segment::create(uint32_t id, const SegmentGeometry& geometry) {
    if (!geometry.valid()) {
        return Error{Errc::Invalid, 0, "segment geometry out of range"};
    }
    auto fd = detail::createSealedMemory("canopy-segment", geometry.mappedSize());
    if (!fd) {
        return fd.error();
    }
    auto base = detail::mapSharedMemory(fd->get(), geometry.mappedSize(), false);
    if (!base) {
        return base.error();
    }
    std::unique_ptr<Segment> segment(new Segment(id, std::move(*fd), geometry, *base));
    // A fresh memfd is zero-filled: every state word already says "free,
    // generation 0". Only the list links need writing.
    auto* header = reinterpret_cast<SegmentHeader*>(*base);
    header->magic = kSegmentMagic;
    header->version = kSegmentVersion;
    header->chunk_size = geometry.chunk_size;
    header->chunk_count = geometry.chunk_count;
    for (uint32_t index = 0; index < geometry.chunk_count; ++index) {
        segment->links_[index] = index + 1 < geometry.chunk_count ? index + 1 : kNoChunk;
    }
    shared(*segment->free_head_).store(packHead(0, 0), std::memory_order_release);
    return segment;
}

Result<std::unique_ptr<Segment>> Segment::attach(uint32_t id, FileDescriptor fd,
                                                 const SegmentGeometry& geometry) {
    if (!geometry.valid()) {
        return Error{Errc::Invalid, 0, "segment geometry out of range"};
    }
    auto base = detail::mapSharedMemory(fd.get(), geometry.mappedSize(), true);
    if (!base) {
        return base.error();
    }
    return std::unique_ptr<Segment>(new Segment(id, std::move(fd), geometry, *base));
}

Result<ChunkRef> Segment::allocate(Holder holder) {
    auto head = shared(*free_head_);
    uint64_t current = head.load(std::memory_order_acquire);
    for (int attempt = 0; attempt < kMaxRetries; ++attempt) {
        uint32_t index = static_cast<uint32_t>(current);
        if (index == kNoChunk) {
            return Error{Errc::WouldBlock, 0, "segment has no free chunk"};
        }
        if (index >= geometry_.chunk_count) {
            return Error{Errc::Corrupt, 0, "segment free list points out of range"};
        }
        // The link may be stale if another thread pops `index` first; then
        // the tag has moved on and the exchange below fails.
        uint32_t next = shared(links_[index]).load(std::memory_order_relaxed);
        uint64_t desired = packHead(headTag(current) + 1, next);
        if (head.compare_exchange_weak(current, desired, std::memory_order_acq_rel,
                                       std::memory_order_acquire)) {
            auto state = shared(states_[index]);
            uint64_t old = state.load(std::memory_order_acquire);
            if (stateHolder(old) != kHolderFree) {
                // Only a peer writing the list can put a held chunk on it. The
                // chunk stays with its holder; the caller sees the damage.
                return Error{Errc::Corrupt, 0, "segment free list holds a chunk in use"};
            }
            uint32_t generation = stateGeneration(old) + 1;
            state.store(packState(generation, holder), std::memory_order_release);
            return ChunkRef{id_, index, generation, 0};
        }
    }
    return Error{Errc::Corrupt, 0, "segment free list never settles"};
}

void Segment::push(uint32_t index) {
    auto head = shared(*free_head_);
    uint64_t current = head.load(std::memory_order_acquire);
    for (int attempt = 0; attempt < kMaxRetries; ++attempt) {
        shared(links_[index]).store(static_cast<uint32_t>(current), std::memory_order_relaxed);
        uint64_t desired = packHead(headTag(current) + 1, index);
        if (head.compare_exchange_weak(current, desired, std::memory_order_release,
                                       std::memory_order_acquire)) {
            return;
        }
    }
    // Only a hostile peer keeps the head moving this long; the chunk is
    // lost for this segment's lifetime, which harms only that peer's traffic.
}

bool Segment::releaseIfHeld(const ChunkRef& ref, Holder holder) {
    if (ref.segment != id_ || ref.index >= geometry_.chunk_count) {
        return false;
    }
    auto state = shared(states_[ref.index]);
    uint64_t current = state.load(std::memory_order_acquire);
    for (int attempt = 0; attempt < kMaxRetries; ++attempt) {
        Holder current_holder = stateHolder(current);
        if (current_holder == kHolderFree || stateGeneration(current) != ref.generation ||
            (holder != kHolderFree && current_holder != holder)) {
            return false;
        }
        if (state.compare_exchange_weak(current, packState(ref.generation, kHolderFree),
                                        std::memory_order_acq_rel, std::memory_order_acquire)) {
            push(ref.index);
            return true;
        }
    }
    return false;
}

bool Segment::release(const ChunkRef& ref) {
    return releaseIfHeld(ref, kHolderFree);
}

bool Segment::transfer(const ChunkRef& ref, Holder from, Holder to) {
    if (ref.segment != id_ || ref.index >= geometry_.chunk_count || to == kHolderFree) {
        return false;
    }
    uint64_t expected = packState(ref.generation, from);
    return shared(states_[ref.index])
        .compare_exchange_strong(expected, packState(ref.generation, to),
                                 std::memory_order_acq_rel);
}

size_t Segment::reclaim(Holder holder) {
    if (holder == kHolderFree) {
        return 0;
    }
    size_t reclaimed = 0;
    for (uint32_t index = 0; index < geometry_.chunk_count; ++index) {
        auto state = shared(states_[index]);
        uint64_t current = state.load(std::memory_order_acquire);
        if (stateHolder(current) != holder) {
            continue;
        }
        if (state.compare_exchange_strong(current, packState(stateGeneration(current), kHolderFree),
                                          std::memory_order_acq_rel)) {
            push(index);
            ++reclaimed;
        }
    }
    return reclaimed;
}

bool Segment::validRef(const ChunkRef& ref) const {
    return ref.segment == id_ && ref.index < geometry_.chunk_count &&
           ref.length <= geometry_.chunk_size;
}

std::span<std::byte> Segment::data(const ChunkRef& ref) const {
    if (!validRef(ref)) {
        return {};
    }
    return {chunks_ + size_t{ref.index} * geometry_.chunk_size, ref.length};
}

std::span<std::byte> Segment::chunk(uint32_t index) const {
    if (index >= geometry_.chunk_count) {
        return {};
    }
    return {chunks_ + size_t{index} * geometry_.chunk_size, geometry_.chunk_size};
}

size_t Segment::usedChunks() const {
    size_t used = 0;
    for (uint32_t index = 0; index < geometry_.chunk_count; ++index) {
        if (stateHolder(shared(states_[index]).load(std::memory_order_relaxed)) != kHolderFree) {
            ++used;
        }
    }
    return used;
}

SegmentTable::SegmentTable() : slots_(new std::atomic<Segment*>[kMaxSegments]) {
    for (uint32_t id = 0; id < kMaxSegments; ++id) {
        slots_[id].store(nullptr, std::memory_order_relaxed);
    }
}

SegmentTable::~SegmentTable() {
    for (uint32_t id = 0; id < kMaxSegments; ++id) {
        delete slots_[id].load(std::memory_order_relaxed);
    }
}

Result<void> SegmentTable::add(std::unique_ptr<Segment> segment) {
    if (segment == nullptr || segment->id() >= kMaxSegments) {
        return Error{Errc::Invalid, 0, "segment id out of range"};
    }
    std::lock_guard lock(mutex_);
    auto& slot = slots_[segment->id()];
    if (slot.load(std::memory_order_relaxed) != nullptr) {
        return Error{Errc::Invalid, 0, "segment id already in use"};
    }
    slot.store(segment.release(), std::memory_order_release);
    count_.fetch_add(1, std::memory_order_acq_rel);
    return {};
}

Result<void> SegmentTable::attach(uint32_t id, FileDescriptor fd, const SegmentGeometry& geometry) {
    auto segment = Segment::attach(id, std::move(fd), geometry);
    if (!segment) {
        return segment.error();
    }
    return add(std::move(*segment));
}

void SegmentTable::remove(uint32_t id) {
    if (id >= kMaxSegments) {
        return;
    }
    std::lock_guard lock(mutex_);
    Segment* segment = slots_[id].exchange(nullptr, std::memory_order_acq_rel);
    if (segment != nullptr) {
        count_.fetch_sub(1, std::memory_order_acq_rel);
        delete segment;
    }
}

Segment* SegmentTable::find(uint32_t id) const {
    if (id >= kMaxSegments) {
        return nullptr;
    }
    return slots_[id].load(std::memory_order_acquire);
}

std::span<std::byte> SegmentTable::data(const ChunkRef& ref) const {
    Segment* segment = find(ref.segment);
    return segment != nullptr ? segment->data(ref) : std::span<std::byte>{};
}

bool SegmentTable::validRef(const ChunkRef& ref) const {
    Segment* segment = find(ref.segment);
    return segment != nullptr && segment->validRef(ref);
}

bool SegmentTable::release(const ChunkRef& ref) {
    Segment* segment = find(ref.segment);
    return segment != nullptr && segment->release(ref);
}

bool SegmentTable::releaseIfHeld(const ChunkRef& ref, Holder holder) {
    Segment* segment = find(ref.segment);
    return segment != nullptr && segment->releaseIfHeld(ref, holder);
}

bool SegmentTable::transfer(const ChunkRef& ref, Holder from, Holder to) {
    Segment* segment = find(ref.segment);
    return segment != nullptr && segment->transfer(ref, from, to);
}

size_t SegmentTable::reclaim(Holder holder) {
    size_t reclaimed = 0;
    for (uint32_t id = 0; id < kMaxSegments; ++id) {
        if (Segment* segment = find(id)) {
            reclaimed += segment->reclaim(holder);
        }
    }
    return reclaimed;
}

size_t SegmentTable::usedChunks() const {
    size_t used = 0;
    for (uint32_t id = 0; id < kMaxSegments; ++id) {
        if (Segment* segment = find(id)) {
            used += segment->usedChunks();
        }
    }
    return used;
}

SegmentPool::SegmentPool(const SegmentGeometry& geometry, Holder holder, size_t budget_bytes)
    : geometry_(geometry), holder_(holder) {
    size_t per_segment = geometry_.valid() ? geometry_.mappedSize() : 1;
    size_t segments = budget_bytes / per_segment;
    // A budget below one segment still gets one: a process that can send
    // nothing is useless, and the limit is a cap on growth, not on start.
    max_segments_ = segments == 0 ? 1 : std::min<size_t>(segments, SegmentTable::kMaxSegments);
}

Result<void> SegmentPool::grow() {
    std::lock_guard lock(grow_mutex_);
    size_t id = table_.size();
    if (id >= max_segments_) {
        return Error{Errc::WouldBlock, 0, "shared-memory budget spent"};
    }
    auto segment = Segment::create(static_cast<uint32_t>(id), geometry_);
    if (!segment) {
        return segment.error();
    }
    return table_.add(std::move(*segment));
}

Result<void> SegmentPool::reserve(size_t segments) {
    while (table_.size() < segments) {
        if (auto grown = grow(); !grown) {
            return grown;
        }
    }
    return {};
}

Result<ChunkRef> SegmentPool::allocate() {
    for (;;) {
        size_t count = table_.size();
        for (uint32_t id = 0; id < count; ++id) {
            Segment* segment = table_.find(id);
            if (segment == nullptr) {
                continue;
            }
            auto chunk = segment->allocate(holder_);
            // A corrupt segment is skipped: the others may still serve.
            if (chunk) {
                return chunk;
            }
        }
        if (count >= max_segments_) {
            return Error{Errc::WouldBlock, 0, "shared-memory budget spent"};
        }
        // Another thread may have grown the pool meanwhile; grow() then adds
        // one more only while the budget allows, and the loop retries.
        if (auto grown = grow(); !grown && grown.code() != Errc::WouldBlock) {
            return grown.error();
        }
    }
}

}  // namespace canopy::transport
