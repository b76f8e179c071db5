#pragma once

// Shared-memory segments and the chunks inside them.
//
// A segment is a sealed memfd mapped MAP_SHARED by its owner (the process
// that created it and allocates from it) and by peers that received its fd.
// It is cut into fixed-size chunks; the owner allocates chunks, and whoever
// consumed a chunk frees it, from either process, through a lock-free free
// list kept in the segment itself. Every chunk has a state word (generation
// and holder) so a stale or doubled free is refused and the chunks of a dead
// peer can be found again.
//
// Nothing read from shared memory is trusted: indices, lengths and list links
// are checked before use, and every loop over shared state is bounded, so a
// peer that scribbles over the segment can at worst spoil its own data.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "canopy/transport/file_descriptor.h"
#include "canopy/transport/result.h"

namespace canopy::transport {

constexpr uint32_t kMinChunkSize = 4 * 1024;
constexpr uint32_t kMaxChunkSize = 1024 * 1024;
constexpr uint32_t kMaxChunksPerSegment = 64 * 1024;
constexpr size_t kMaxSegmentBytes = size_t{1} << 30;

struct SegmentGeometry {
    uint32_t chunk_size = 16 * 1024;  // a power of two in [kMinChunkSize, kMaxChunkSize]
    uint32_t chunk_count = 640;       // 10 MiB of chunks

    bool valid() const;
    // Bytes before the first chunk: header, chunk states and free-list links.
    size_t metadataSize() const;
    // Size of the memfd and of its mapping.
    size_t mappedSize() const;
};

// Who must free a chunk. 0 is free; a process holds a chunk as
// holderOf(party), where a party is the router (0) or a consumer (1 + its
// index); see channel.h.
using Holder = uint32_t;
constexpr Holder kHolderFree = 0;
constexpr Holder holderOf(uint32_t party) {
    return party + 1;
}

// A reference to bytes in a chunk; travels through shared memory, so a
// receiver validates it against its own view of the segment.
struct ChunkRef {
    uint32_t segment = 0;     // segment id within the owner's table
    uint32_t index = 0;       // chunk index within the segment
    uint32_t generation = 0;  // bumped on every allocation of the chunk
    uint32_t length = 0;      // bytes used, from the start of the chunk
};
static_assert(sizeof(ChunkRef) == 16);

class Segment {
  public:
    // Creates a sealed memfd of geometry.mappedSize() and initialises the
    // free list with every chunk. The caller becomes the owner.
    static Result<std::unique_ptr<Segment>> create(uint32_t id, const SegmentGeometry& geometry);
    // Maps a segment received from a peer. Takes ownership of `fd`. Refuses
    // a file whose size does not match `geometry` or that is not sealed
    // against shrinking (a shrunk file would raise SIGBUS in this process).
    static Result<std::unique_ptr<Segment>> attach(uint32_t id, FileDescriptor fd,
                                                   const SegmentGeometry& geometry);
    ~Segment();
    Segment(const Segment&) = delete;
    Segment& operator=(const Segment&) = delete;

    uint32_t id() const { return id_; }
    int fd() const { return fd_.get(); }
    const SegmentGeometry& geometry() const { return geometry_; }

    // Takes a free chunk for `holder` (the owner's). WouldBlock when none is
    // free; Corrupt when the shared free list is damaged. Thread-safe.
    Result<ChunkRef> allocate(Holder holder);
    // Frees the chunk `ref` names if it is still that allocation (same
    // generation) and held by anyone. Returns false for a stale, doubled or
    // out-of-range ref. Thread-safe, from any process.
    bool release(const ChunkRef& ref);
    // Like release(), only if `holder` holds the chunk.
    bool releaseIfHeld(const ChunkRef& ref, Holder holder);
    // Moves a chunk from one holder to another (a consumer taking what the
    // owner sent). False when the chunk is no longer `from`'s.
    bool transfer(const ChunkRef& ref, Holder from, Holder to);
    // Frees every chunk `holder` holds: the owner calls it for a dead peer.
    size_t reclaim(Holder holder);

    // The first ref.length bytes of the chunk; empty when ref is out of range
    // or too long (check validRef() to tell an empty chunk from a bad ref).
    std::span<std::byte> data(const ChunkRef& ref) const;
    // The whole chunk, for the writer filling it.
    std::span<std::byte> chunk(uint32_t index) const;
    bool validRef(const ChunkRef& ref) const;

    // Chunks not free, counted from the state words (for tests and /status).
    size_t usedChunks() const;

  private:
    Segment(uint32_t id, FileDescriptor fd, const SegmentGeometry& geometry, std::byte* base);
    void push(uint32_t index);

    uint32_t id_;
    FileDescriptor fd_;
    SegmentGeometry geometry_;
    std::byte* base_;
    uint64_t* free_head_;
    uint64_t* states_;
    uint32_t* links_;
    std::byte* chunks_;
};

// The segments of one owner as one process sees them, by id. Lookups are
// lock-free (the router's threads resolve refs concurrently); adding takes a
// lock. Segments stay mapped until the table is destroyed or remove() is
// called by a caller that knows no thread still reads them.
class SegmentTable {
  public:
    static constexpr uint32_t kMaxSegments = 1024;

    SegmentTable();
    ~SegmentTable();
    SegmentTable(const SegmentTable&) = delete;
    SegmentTable& operator=(const SegmentTable&) = delete;

    Result<void> add(std::unique_ptr<Segment> segment);
    Result<void> attach(uint32_t id, FileDescriptor fd, const SegmentGeometry& geometry);
    void remove(uint32_t id);

    Segment* find(uint32_t id) const;
    size_t size() const { return count_.load(std::memory_order_acquire); }

    // As the Segment methods, after finding ref.segment; a ref to an unknown
    // segment is invalid.
    std::span<std::byte> data(const ChunkRef& ref) const;
    bool validRef(const ChunkRef& ref) const;
    bool release(const ChunkRef& ref);
    bool releaseIfHeld(const ChunkRef& ref, Holder holder);
    bool transfer(const ChunkRef& ref, Holder from, Holder to);
    size_t reclaim(Holder holder);
    size_t usedChunks() const;

  private:
    std::unique_ptr<std::atomic<Segment*>[]> slots_;
    std::atomic<size_t> count_{0};
    std::mutex mutex_;
};

// The owner side: segments created on demand up to a byte budget (the app's
// `limits.shm`, 100 MiB by default). New segments must be announced to peers
// (their fds sent) before refs into them are published; segmentsCreated()
// tells the caller when to do so.
class SegmentPool {
  public:
    static constexpr size_t kDefaultBudget = size_t{100} << 20;

    SegmentPool(const SegmentGeometry& geometry, Holder holder,
                size_t budget_bytes = kDefaultBudget);

    // A free chunk for this pool's holder: from the first segment that has
    // one, which keeps the pages in use few; a new segment while the budget
    // allows. WouldBlock when the budget is spent and all chunks are taken:
    // wait for a wake-up (a peer freeing chunks rings the owner's doorbell).
    Result<ChunkRef> allocate();
    // Creates segments up front, e.g. before fork() in tests or to avoid the
    // first-request latency.
    Result<void> reserve(size_t segments);

    SegmentTable& table() { return table_; }
    const SegmentTable& table() const { return table_; }
    const SegmentGeometry& geometry() const { return geometry_; }
    Holder holder() const { return holder_; }
    size_t maxSegments() const { return max_segments_; }
    size_t segmentsCreated() const { return table_.size(); }

  private:
    Result<void> grow();

    SegmentGeometry geometry_;
    Holder holder_;
    size_t max_segments_;
    SegmentTable table_;
    std::mutex grow_mutex_;
};

}  // namespace canopy::transport
