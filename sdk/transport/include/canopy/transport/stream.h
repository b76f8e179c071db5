#pragma once

// A stream carries one body, request or response, from a writer to a reader
// as a sequence of entries: chunks of the writer's segments, or a file the
// writer hands over by fd (sent on the Unix socket, see port_message.h).
//
// Back-pressure: the writer may have at most `stream_credit` entries that
// the reader has not yet released. A reader releases an entry after it has
// used the bytes (the router: after the client's socket took them), which
// frees the chunk and returns the credit, so a slow client holds the app to
// credit x chunk size bytes per response and never more.
//
// Wake-ups: a write rings the reader's doorbell and a release rings the
// writer's, both with the stream's slot as the bit. End of stream is a flag
// of the writer; abort is a flag each side may raise.

#include <cstdint>
#include <span>

#include "canopy/transport/channel.h"
#include "canopy/transport/result.h"
#include "canopy/transport/segment.h"

namespace canopy::transport {

enum class EntryKind : uint32_t {
    Chunk = 1,  // bytes in `chunk`
    File = 2,   // file_length bytes at file_offset of the fd sent with file_token
};

struct StreamEntry {
    EntryKind kind = EntryKind::Chunk;
    uint32_t file_token = 0;
    uint64_t file_offset = 0;
    uint64_t file_length = 0;
    ChunkRef chunk{};
};
static_assert(sizeof(StreamEntry) == 40);

class StreamWriter {
  public:
    // `own_segments` is the table the written chunks come from (the writer's
    // own pool).
    StreamWriter(Channel& channel, StreamId id, Party self, SegmentTable& own_segments);

    // Entries that may be written now. Aborted, Corrupt or Invalid as write().
    Result<uint32_t> credit();
    // Publishes an entry and rings the reader. WouldBlock without credit:
    // wait for this party's doorbell (bit = slot) and retry. Aborted when the
    // reader aborted or the stream was closed. On failure the chunk is still
    // the caller's to free.
    Result<void> write(const StreamEntry& entry);
    Result<void> writeChunk(const ChunkRef& chunk);
    Result<void> writeFile(uint32_t token, uint64_t offset, uint64_t length);
    // Marks the end of the stream once everything is written. complete
    // false cuts it short instead: the reader still gets every entry written
    // so far, then Aborted (bytes already handed over reach the client
    // before the connection is cut), and they stay the reader's to release,
    // unlike after abort().
    Result<void> finish(bool complete = true);
    // Tells the reader to give up; idempotent.
    void abort();
    bool readerAborted() const;

    // Frees chunks written but not yet taken by the reader (still this
    // party's): for tearing down a stream after an abort or a dead reader.
    size_t reclaimUnread();

    StreamId id() const { return id_; }
    uint64_t written() const { return written_; }

  private:
    Result<uint64_t> readReleased();
    void ringReader() const;

    Channel* channel_;
    StreamId id_;
    Party self_;
    SegmentTable* segments_;
    uint32_t capacity_;
    uint64_t written_ = 0;
    uint64_t released_ = 0;
    StreamEntry sent_[kMaxStreamCredit] = {};  // our copy: shared memory can change
};

class StreamReader {
  public:
    // `writer_segments` is the table the writer's chunks resolve in.
    StreamReader(Channel& channel, StreamId id, Party self, SegmentTable& writer_segments);

    // The next entry, validated. WouldBlock when none yet (wait for this
    // party's doorbell), Closed after the last one, Aborted when the writer
    // aborted, cut the stream short (after its last entry) or the stream was
    // closed, Corrupt when the writer broke the
    // protocol. At most `stream_credit` entries may be held unreleased.
    Result<StreamEntry> next();
    // The bytes of a chunk entry (empty for a file entry). Valid until the
    // entry is released.
    std::span<const std::byte> data(const StreamEntry& entry) const;
    // Releases the oldest entry taken: frees its chunk, returns the credit
    // and rings the writer.
    Result<void> release();
    // Releases everything held and tells the writer to stop; idempotent.
    void abort();
    bool writerAborted() const;

    uint32_t held() const { return static_cast<uint32_t>(taken_ - released_); }
    StreamId id() const { return id_; }

  private:
    void ringWriter() const;

    Channel* channel_;
    StreamId id_;
    Party self_;
    SegmentTable* segments_;
    uint32_t capacity_;
    uint64_t taken_ = 0;
    uint64_t released_ = 0;
    bool aborted_ = false;
    StreamEntry held_[kMaxStreamCredit] = {};
};

}  // namespace canopy::transport
