#include "core/gateway/exchange.h"

#include <algorithm>
#include <cstring>

#include "core/gateway/channel_state.h"
#include "core/gateway/port_message.h"

namespace canopy::gateway {

using transport::EntryKind;
using transport::StreamEntry;

const char* failureName(Failure failure) {
    switch (failure) {
        case Failure::None:
            return "none";
        case Failure::AppAborted:
            return "app-aborted";
        case Failure::WorkerDied:
            return "worker-died";
        case Failure::ProtocolError:
            return "protocol-error";
        case Failure::Unavailable:
            return "unavailable";
        case Failure::Cancelled:
            return "cancelled";
    }
    return "unknown";
}

Exchange::Exchange(ApplicationChannel::State& channel, uint64_t id, std::function<void()> on_ready)
    : channel_(&channel), id_(id), on_ready_(std::move(on_ready)) {}

Exchange::~Exchange() {
    if (!ended_) {
        abort();
    }
    held_files_.clear();
    closeStreams();
    channel_->exchanges.erase(id_);
}

bool Exchange::claimed() const {
    return stage_ == Stage::Queued &&
           channel_->channel->streamWriter(response_stream_) != transport::kNoParty;
}

std::optional<WorkerId> Exchange::worker() const {
    if (worker_ != nullptr) {
        return worker_->id;
    }
    // Claimed but not read from yet (a worker that took the request and
    // wrote nothing): the stream's writer names it.
    if (stage_ != Stage::Queued || streams_closed_) {
        return std::nullopt;
    }
    transport::Party writer = channel_->channel->streamWriter(response_stream_);
    if (writer == transport::kNoParty) {
        return std::nullopt;
    }
    auto owner = channel_->ownerOf(writer);
    if (owner == nullptr) {
        return std::nullopt;
    }
    return owner->id;
}

void Exchange::notify() {
    if (on_ready_) {
        on_ready_();
    }
}

// --- Submission ----------------------------------------------------------------

Result<void> Exchange::trySubmit() {
    auto& channel = *channel_->channel;
    if (stage_ == Stage::Waiting) {
        if (!streams_open_) {
            if (needs_request_stream_) {
                auto opened = channel.openStream(transport::kRouterParty, transport::kNoParty);
                if (!opened) {
                    return Error{Errc::WouldBlock, 0, "stream slots spent"};
                }
                request_stream_ = *opened;
            }
            auto opened = channel.openStream(transport::kNoParty, transport::kRouterParty);
            if (!opened) {
                if (needs_request_stream_) {
                    channel.closeStream(request_stream_);
                    request_stream_ = {};
                }
                return Error{Errc::WouldBlock, 0, "stream slots spent"};
            }
            response_stream_ = *opened;
            streams_open_ = true;
            channel_->bindSlot(request_stream_.slot, this);
            channel_->bindSlot(response_stream_.slot, this);
        }
        descriptor_.request_id = id_;
        descriptor_.request_stream =
            needs_request_stream_ ? request_stream_.slot : transport::kNoStream;
        descriptor_.request_stream_generation = request_stream_.generation;
        descriptor_.response_stream = response_stream_.slot;
        descriptor_.response_stream_generation = response_stream_.generation;
        auto preread = std::as_bytes(std::span(pending_.data(), descriptor_.preread_length));
        auto stored = transport::storeHead(*channel_->pool, head_, preread, descriptor_);
        if (!stored) {
            return stored.code() == Errc::WouldBlock || stored.code() == Errc::Exhausted
                       ? Error{Errc::WouldBlock, 0, "router memory spent"}
                       : stored.error();
        }
        channel_->announceSegments();
        pending_offset_ = descriptor_.preread_length;
        if (needs_request_stream_) {
            body_writer_.emplace(channel, request_stream_, transport::kRouterParty,
                                 channel_->pool->table());
        }
        stage_ = Stage::Stored;
    }
    if (stage_ == Stage::Stored) {
        auto pushed = channel.queue().push(descriptor_);
        if (!pushed) {
            return pushed;  // WouldBlock: retried on the queue bit
        }
        stage_ = Stage::Queued;
    }
    return {};
}

// --- Request body ----------------------------------------------------------------

Result<size_t> Exchange::writeChunks(std::span<const std::byte> bytes) {
    auto& pool = *channel_->pool;
    size_t written = 0;
    while (written < bytes.size()) {
        auto credit = body_writer_->credit();
        if (!credit) {
            body_aborted_ = true;
            return credit.error();
        }
        if (*credit == 0) {
            break;
        }
        auto chunk = pool.allocate();
        if (!chunk) {
            break;  // retried when a release rings the router
        }
        channel_->announceSegments();
        auto room = pool.table().find(chunk->segment)->chunk(chunk->index);
        size_t length = std::min(room.size(), bytes.size() - written);
        std::memcpy(room.data(), bytes.data() + written, length);
        chunk->length = static_cast<uint32_t>(length);
        auto sent = body_writer_->writeChunk(*chunk);
        if (!sent) {
            pool.table().release(*chunk);
            if (sent.code() != Errc::WouldBlock) {
                body_aborted_ = true;
                return sent.error();
            }
            break;
        }
        written += length;
    }
    if (written == 0 && !bytes.empty()) {
        return Error{Errc::WouldBlock, 0, "request stream has no credit or memory"};
    }
    return written;
}

bool Exchange::flushPending() {
    if (stage_ == Stage::Waiting || streams_closed_) {
        return pending_offset_ >= pending_.size();
    }
    if (!body_writer_) {
        pending_.clear();
        pending_offset_ = 0;
        return true;
    }
    if (pending_offset_ < pending_.size()) {
        auto rest = std::as_bytes(std::span(pending_)).subspan(pending_offset_);
        auto written = writeChunks(rest);
        if (!written) {
            if (written.code() != Errc::WouldBlock) {
                pending_.clear();
                pending_offset_ = 0;
            }
            return false;
        }
        pending_offset_ += *written;
        if (pending_offset_ < pending_.size()) {
            return false;
        }
    }
    pending_.clear();
    pending_offset_ = 0;
    if (finish_requested_ && !body_finished_ && !body_aborted_) {
        (void)body_writer_->finish();
        body_finished_ = true;
    }
    return true;
}

Result<size_t> Exchange::writeBody(std::span<const std::byte> bytes) {
    if (!needs_request_stream_ || body_finished_ || finish_requested_) {
        return Error{Errc::Invalid, 0, "no request body expected"};
    }
    if (failure_ != Failure::None || body_aborted_ || worker_gone_ || streams_closed_) {
        return Error{Errc::Aborted, 0, "the app stopped reading the body"};
    }
    if (!flushPending()) {
        if (body_aborted_) {
            return Error{Errc::Aborted, 0, "the app stopped reading the body"};
        }
        return Error{Errc::WouldBlock, 0, "earlier body bytes still pending"};
    }
    return writeChunks(bytes);
}

Result<void> Exchange::finishBody() {
    if (!needs_request_stream_) {
        return {};
    }
    finish_requested_ = true;
    (void)flushPending();
    return {};
}

// --- Response ----------------------------------------------------------------

Result<void> Exchange::ensureReader() {
    if (reader_) {
        return {};
    }
    if (failure_ != Failure::None) {
        return Error{Errc::Aborted, 0, failureName(failure_)};
    }
    if (stage_ != Stage::Queued) {
        return Error{Errc::WouldBlock, 0, "not taken by a worker yet"};
    }
    transport::Party writer = channel_->channel->streamWriter(response_stream_);
    if (writer == transport::kNoParty) {
        return Error{Errc::WouldBlock, 0, "not taken by a worker yet"};
    }
    if (!worker_) {
        worker_ = channel_->ownerOf(writer);
    }
    if (!worker_) {
        // A consumer party no live worker has: only a lying app does that.
        ++channel_->counters.protocol_errors;
        fail(Failure::ProtocolError);
        return Error{Errc::Corrupt, 0, "response claimed by an unknown party"};
    }
    reader_.emplace(*channel_->channel, response_stream_, transport::kRouterParty,
                    *worker_->segments);
    return {};
}

Result<StreamEntry> Exchange::nextEntry() {
    if (auto ready = ensureReader(); !ready) {
        return ready.error();
    }
    auto entry = reader_->next();
    if (entry.code() == Errc::Corrupt && worker_->alive) {
        // A chunk of a segment the worker announced after our last look.
        channel_->drainWorker(worker_);
        entry = reader_->next();
    }
    if (entry) {
        return entry;
    }
    switch (entry.code()) {
        case Errc::WouldBlock:
            if (worker_gone_ || !worker_->alive) {
                fail(Failure::WorkerDied);
                return Error{Errc::Aborted, 0, "the worker died"};
            }
            break;
        case Errc::Closed:
            break;
        case Errc::Aborted:
            fail(failure_ != Failure::None ? failure_ : Failure::AppAborted);
            break;
        default:
            ++channel_->counters.protocol_errors;
            fail(Failure::ProtocolError);
            break;
    }
    return entry;
}

Result<const ResponseHead*> Exchange::readHead() {
    if (response_head_) {
        return &*response_head_;
    }
    const ResponseLimits& limits = channel_->options.response;
    for (;;) {
        if (failure_ != Failure::None) {
            return Error{Errc::Aborted, 0, failureName(failure_)};
        }
        auto entry = nextEntry();
        if (!entry) {
            if (entry.code() == Errc::Closed) {
                ++channel_->counters.protocol_errors;
                fail(Failure::ProtocolError);  // ended without a head
                return Error{Errc::Corrupt, 0, "response ended without a head"};
            }
            return entry.error();
        }
        if (entry->kind != EntryKind::Chunk) {
            (void)reader_->release();
            ++channel_->counters.protocol_errors;
            fail(Failure::ProtocolError);
            return Error{Errc::Corrupt, 0, "file entry before the response head"};
        }
        auto data = reader_->data(*entry);
        size_t used = 0;
        size_t total = 0;
        while (used < data.size() && !response_head_) {
            auto known = std::as_bytes(std::span(head_bytes_));
            size_t want = 8 - std::min<size_t>(8, head_bytes_.size());
            if (head_bytes_.size() >= 8) {
                auto length = responseHeadLength(known, limits);
                total = length ? *length : 0;
                want = total - head_bytes_.size();
            }
            size_t take = std::min(want, data.size() - used);
            head_bytes_.append(reinterpret_cast<const char*>(data.data() + used), take);
            used += take;
            known = std::as_bytes(std::span(head_bytes_));
            if (head_bytes_.size() < 8) {
                continue;
            }
            auto length = responseHeadLength(known, limits);
            if (!length) {
                (void)reader_->release();
                ++channel_->counters.protocol_errors;
                fail(Failure::ProtocolError);
                return length.error();
            }
            if (head_bytes_.size() == *length) {
                auto parsed = parseResponseHead(known, limits);
                if (!parsed || (parsed->upgrade && !websocket_)) {
                    (void)reader_->release();
                    ++channel_->counters.protocol_errors;
                    fail(Failure::ProtocolError);
                    return Error{Errc::Corrupt, 0, "response head refused"};
                }
                response_head_ = std::move(*parsed);
            }
        }
        if (!response_head_) {
            (void)reader_->release();
            continue;
        }
        head_bytes_.clear();
        head_bytes_.shrink_to_fit();
        if (used < data.size()) {
            if (response_head_->upgrade) {
                frame_bytes_.append(reinterpret_cast<const char*>(data.data() + used),
                                    data.size() - used);
                (void)reader_->release();
            } else {
                leftover_ = true;  // stays held: the first body piece
                leftover_entry_ = *entry;
                leftover_offset_ = used;
            }
        } else {
            (void)reader_->release();
        }
        return &*response_head_;
    }
}

Result<BodyPiece> Exchange::nextPiece() {
    if (!response_head_ || response_head_->upgrade) {
        return Error{Errc::Invalid, 0, "no response body to read"};
    }
    if (failure_ != Failure::None) {
        return Error{Errc::Aborted, 0, failureName(failure_)};
    }
    if (complete_) {
        return Error{Errc::Closed, 0, "response complete"};
    }
    BodyPiece piece;
    if (leftover_) {
        leftover_ = false;
        piece.data = reader_->data(leftover_entry_).subspan(leftover_offset_);
        held_files_.emplace_back();
        return piece;
    }
    auto entry = nextEntry();
    if (!entry) {
        if (entry.code() == Errc::Closed) {
            complete_ = true;
            ended_ = true;
            if (held_files_.empty()) {
                closeStreams();
            }
        }
        return entry.error();
    }
    if (entry->kind == EntryKind::Chunk) {
        piece.data = reader_->data(*entry);
        held_files_.emplace_back();
        return piece;
    }
    auto& files = worker_->files;
    auto found = files.find(entry->file_token);
    if (found == files.end() && worker_->alive) {
        channel_->drainWorker(worker_);
        found = files.find(entry->file_token);
    }
    uint64_t end = entry->file_offset + entry->file_length;
    if (found == files.end() || end < entry->file_offset ||
        entry->file_offset > static_cast<uint64_t>(INT64_MAX) ||
        end > static_cast<uint64_t>(INT64_MAX)) {
        (void)reader_->release();
        ++channel_->counters.protocol_errors;
        fail(Failure::ProtocolError);
        return Error{Errc::Corrupt, 0, "file entry without a valid file"};
    }
    held_files_.push_back(std::move(found->second));
    files.erase(found);
    piece.file_fd = held_files_.back().get();
    piece.file_offset = entry->file_offset;
    piece.file_length = entry->file_length;
    return piece;
}

Result<void> Exchange::releasePiece() {
    if (held_files_.empty() || !reader_) {
        return Error{Errc::Invalid, 0, "no piece held"};
    }
    held_files_.pop_front();
    auto released = reader_->release();
    if (held_files_.empty() && ended_) {
        closeStreams();
    }
    return released;
}

uint32_t Exchange::heldPieces() const {
    return static_cast<uint32_t>(held_files_.size());
}

// --- WebSocket ---------------------------------------------------------------

Result<void> Exchange::sendFrame(uint8_t first, std::span<const std::byte> payload) {
    if (!websocket_ || !response_head_ || !response_head_->upgrade || finish_requested_) {
        return Error{Errc::Invalid, 0, "not an accepted WebSocket"};
    }
    if (failure_ != Failure::None || body_aborted_ || streams_closed_) {
        return Error{Errc::Aborted, 0, "WebSocket closed"};
    }
    if (payload.size() > channel_->options.max_websocket_frame) {
        return Error{Errc::TooLarge, 0, "WebSocket frame too large"};
    }
    if (!flushPending()) {
        return Error{Errc::WouldBlock, 0, "previous frame still going out"};
    }
    std::byte header[kFrameHeaderSize];
    encodeFrameHeader({first, static_cast<uint32_t>(payload.size())}, header);
    pending_.assign(reinterpret_cast<const char*>(header), sizeof header);
    pending_.append(reinterpret_cast<const char*>(payload.data()), payload.size());
    pending_offset_ = 0;
    (void)flushPending();
    return {};
}

Result<WebSocketFrame> Exchange::nextFrame() {
    if (!response_head_ || !response_head_->upgrade) {
        return Error{Errc::Invalid, 0, "not an accepted WebSocket"};
    }
    for (;;) {
        if (frame_bytes_.size() >= kFrameHeaderSize) {
            auto header = parseFrameHeader(std::as_bytes(std::span(frame_bytes_)),
                                           channel_->options.max_websocket_frame);
            if (!header) {
                ++channel_->counters.protocol_errors;
                fail(Failure::ProtocolError);
                return header.error();
            }
            if (frame_bytes_.size() - kFrameHeaderSize >= header->length) {
                WebSocketFrame frame;
                frame.first = header->first;
                frame.payload = frame_bytes_.substr(kFrameHeaderSize, header->length);
                frame_bytes_.erase(0, kFrameHeaderSize + header->length);
                return frame;
            }
        }
        if (failure_ != Failure::None) {
            return Error{Errc::Aborted, 0, failureName(failure_)};
        }
        if (complete_) {
            return Error{Errc::Closed, 0, "WebSocket ended"};
        }
        auto entry = nextEntry();
        if (!entry) {
            if (entry.code() == Errc::Closed) {
                complete_ = true;
                ended_ = true;
                closeStreams();
            }
            return entry.error();
        }
        if (entry->kind != EntryKind::Chunk) {
            (void)reader_->release();
            ++channel_->counters.protocol_errors;
            fail(Failure::ProtocolError);
            return Error{Errc::Corrupt, 0, "file entry in a WebSocket stream"};
        }
        auto data = reader_->data(*entry);
        frame_bytes_.append(reinterpret_cast<const char*>(data.data()), data.size());
        (void)reader_->release();
    }
}

// --- Ending --------------------------------------------------------------------

void Exchange::fail(Failure failure) {
    if (ended_) {
        return;
    }
    failure_ = failure;
    ended_ = true;
    // Pieces the engine still holds stay valid until it releases them.
    if (held_files_.empty()) {
        closeStreams();
    }
}

void Exchange::abort() {
    if (!ended_) {
        failure_ = Failure::Cancelled;
        ended_ = true;
    }
    held_files_.clear();
    leftover_ = false;
    closeStreams();
}

void Exchange::closeStreams() {
    if (streams_closed_) {
        return;
    }
    streams_closed_ = true;
    auto& channel = *channel_->channel;
    auto& table = channel_->pool->table();
    // Not taken yet: freeing the head chunks makes the taker drop it.
    for (uint32_t index = 0; index < descriptor_.head_chunk_count; ++index) {
        table.releaseIfHeld(descriptor_.head_chunks[index],
                            transport::holderOf(transport::kRouterParty));
    }
    if (reader_) {
        reader_->abort();
    }
    if (body_writer_) {
        body_writer_->abort();
    }
    channel_->unbind(this);
    if (streams_open_) {
        if (needs_request_stream_) {
            channel.closeStream(request_stream_);
        }
        channel.closeStream(response_stream_);
    }
    // After the close a worker cannot take them any more.
    if (body_writer_) {
        body_writer_->reclaimUnread();
    }
    pending_.clear();
    pending_offset_ = 0;
}

int Exchange::errorStatus() const {
    switch (failure_) {
        case Failure::AppAborted:
        case Failure::Unavailable:
            return 503;
        default:
            return 502;
    }
}

}  // namespace canopy::gateway
