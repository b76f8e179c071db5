#pragma once

// One HTTP request handed to an application, from the router's side: the
// request head and body going to whichever worker takes it, the response
// coming back. Pull-based: the engine calls the methods below when the
// exchange's on_ready callback ran (from ApplicationChannel::process()) and
// whenever its client socket can take more; nothing blocks. Every
// WouldBlock means "on_ready will run when that may have changed".
//
//   submit -> [writeBody... finishBody]         request body, with credit
//          -> readHead                          status + fields, validated
//          -> nextPiece / releasePiece ...      body: bytes or a file (sendfile)
//          -> nextPiece says Closed             complete
//   after an upgrade head: sendFrame / nextFrame instead of the body calls.
//   abort()                                     the client left
//
// Failures (any call returns Aborted or Corrupt; failure() says why and
// errorStatus() what to answer while no head was sent): the app aborted its
// response (503, as Unit), its worker died (502), it broke the protocol
// (502), the application went away (503).

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "canopy/transport/channel.h"
#include "canopy/transport/file_descriptor.h"
#include "canopy/transport/request_head.h"
#include "canopy/transport/result.h"
#include "canopy/transport/stream.h"
#include "core/gateway/application_channel.h"
#include "core/gateway/response_head.h"

namespace canopy::gateway {

struct WorkerRecord;

enum class Failure {
    None,
    AppAborted,     // the app aborted before or while answering
    WorkerDied,     // the worker holding the request exited
    ProtocolError,  // the app's bytes broke the wire format
    Unavailable,    // the application was shut down before answering
    Cancelled,      // abort(): the client left
};
const char* failureName(Failure failure);

// A piece of response body. `data` (bytes in shared memory) or a file the
// app handed over: send `file_length` bytes at `file_offset` of `file_fd`
// (owned by the exchange; the file may be shorter than announced: treat a
// short sendfile as a failed response). Valid until releasePiece().
struct BodyPiece {
    std::span<const std::byte> data;
    int file_fd = -1;
    uint64_t file_offset = 0;
    uint64_t file_length = 0;

    bool isFile() const { return file_fd >= 0; }
};

struct WebSocketFrame {
    uint8_t first = 0;  // FIN | RSV1-3 | opcode
    std::string payload;

    bool fin() const { return (first & 0x80) != 0; }
    uint8_t opcode() const { return first & 0x0F; }
};

class Exchange {
  public:
    // Aborts the exchange when it did not end (the app sees CLOSED).
    ~Exchange();
    Exchange(const Exchange&) = delete;
    Exchange& operator=(const Exchange&) = delete;

    uint64_t id() const { return id_; }
    // Whether a worker took the request (for timeouts: queued vs running).
    bool claimed() const;
    // The worker that claimed it, once one did.
    std::optional<WorkerId> worker() const;

    // --- Request body ------------------------------------------------------

    // Copies what credit and memory allow into the request stream; returns
    // the bytes taken (at least one), or WouldBlock (none: wait for
    // on_ready), Aborted (the app stopped reading, e.g. it answered without
    // the body: discard the rest), Invalid (no request stream or finished).
    Result<size_t> writeBody(std::span<const std::byte> bytes);
    // Ends the request body once everything written reached the stream.
    Result<void> finishBody();

    // --- Response ----------------------------------------------------------

    // The validated head once whole. WouldBlock, or a failure.
    Result<const ResponseHead*> readHead();
    // The next body piece (after readHead succeeded and without upgrade).
    // Closed at the end of a complete response; WouldBlock; a failure. At
    // most the stream credit pieces may be held unreleased.
    Result<BodyPiece> nextPiece();
    // Releases the oldest piece: the app gets its credit back.
    Result<void> releasePiece();
    uint32_t heldPieces() const;

    // --- WebSocket (after a head with upgrade) -------------------------------

    // Queues one frame for the app; WouldBlock while the previous one is
    // still going out. TooLarge beyond max_websocket_frame.
    Result<void> sendFrame(uint8_t first, std::span<const std::byte> payload);
    // The next frame the app sent, whole. Closed when the app ended its
    // stream (after a close frame), WouldBlock, or a failure.
    Result<WebSocketFrame> nextFrame();

    // --- Ending ------------------------------------------------------------

    // The client is gone: the app sees CLOSED on its reads and writes, the
    // request leaves the queue if no worker took it. Idempotent.
    void abort();
    Failure failure() const { return failure_; }
    // What to answer when the head was not sent yet: 502 or 503.
    int errorStatus() const;
    // The response ended, completely or not.
    bool ended() const { return ended_; }

  private:
    friend class ApplicationChannel;
    friend struct ApplicationChannel::State;

    Exchange(ApplicationChannel::State& channel, uint64_t id, std::function<void()> on_ready);

    // Submission: streams, head chunks, queue. WouldBlock keeps it waiting.
    Result<void> trySubmit();
    // Moves pending_ into the request stream; true when nothing is left.
    bool flushPending();
    Result<size_t> writeChunks(std::span<const std::byte> bytes);
    void fail(Failure failure);
    void closeStreams();
    Result<void> ensureReader();
    Result<transport::StreamEntry> nextEntry();
    void notify();

    // Waiting: held by the router; Stored: streams open and head in chunks;
    // Queued: in the shared queue or taken by a worker.
    enum class Stage { Waiting, Stored, Queued };

    ApplicationChannel::State* channel_;
    uint64_t id_;
    std::function<void()> on_ready_;
    Stage stage_ = Stage::Waiting;

    // The head, owned while the router holds the request.
    std::string head_storage_;
    transport::RequestHead head_;
    bool websocket_ = false;
    bool needs_request_stream_ = false;
    transport::RequestDescriptor descriptor_{};
    transport::StreamId request_stream_;
    transport::StreamId response_stream_;
    std::optional<transport::StreamWriter> body_writer_;
    std::string pending_;  // bytes accepted, not yet in the stream (preread tail, a frame)
    size_t pending_offset_ = 0;
    bool finish_requested_ = false;
    bool body_finished_ = false;

    std::shared_ptr<WorkerRecord> worker_;  // the worker that claimed it (keeps its segments)
    bool worker_gone_ = false;
    std::optional<transport::StreamReader> reader_;
    std::string head_bytes_;
    std::optional<ResponseHead> response_head_;
    // Body bytes after the head in the chunk that completed it.
    bool leftover_ = false;
    transport::StreamEntry leftover_entry_{};
    size_t leftover_offset_ = 0;
    std::deque<transport::FileDescriptor> held_files_;  // parallel to held pieces
    std::string frame_bytes_;
    bool streams_open_ = false;
    bool streams_closed_ = false;
    bool body_aborted_ = false;
    bool complete_ = false;  // the app ended its response normally
    bool ended_ = false;
    Failure failure_ = Failure::None;
};

}  // namespace canopy::gateway
