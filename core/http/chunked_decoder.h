#pragma once

// An incremental decoder of the chunked transfer coding (RFC 9112 §7.1) for
// request bodies. It streams: each call hands back a view of body bytes
// inside the input it was given, never a copy, so a body of any size costs
// the decoder a few dozen bytes of state. The caller enforces nothing itself:
// sizes, extensions, line endings and trailers are checked here, and the
// running total is compared to max_body_size before a chunk's data arrives.

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "core/http/header_field.h"

namespace canopy::http {

enum class BodyStatus : uint8_t {
    NeedMore,  // all input used; call again with more
    Data,      // `data` is the next piece of the body
    Done,      // the body (and its trailers) ended; the rest of the input is the next request
    Error,     // answer `error_status` and close
};

struct [[nodiscard]] BodyEvent {
    BodyStatus status = BodyStatus::NeedMore;
    // Bytes of the input this call used: drop them before the next call.
    size_t consumed = 0;
    std::string_view data;  // Data: a view into the input
    int error_status = 0;   // Error: 400, 413 or 431
    bool close = false;     // Error: always true (the framing is lost)
    const char* reason = "";
};

struct ChunkedDecoderOptions {
    // settings.http.max_body_size: a chunk whose size would take the body
    // beyond it → 413, before its data is read.
    uint64_t max_body_size = std::numeric_limits<uint64_t>::max();
    // Bytes of extensions (";name=value"...) on one chunk-size line → 400.
    size_t max_extension_size = 4096;
    // Bytes of the trailer section, its blank line included → 431.
    size_t max_trailer_size = 8192;
    // Keep the trailer fields for trailers(); else they are checked and dropped.
    bool keep_trailers = false;
};

class ChunkedDecoder {
  public:
    explicit ChunkedDecoder(ChunkedDecoderOptions options = {});

    // Decodes from the start of `input`, which continues where the previous
    // call's `consumed` ended. Returns at most one Data piece per call; call
    // again with the rest of the input. After Done or Error, the same status
    // comes back with consumed 0 until reset().
    BodyEvent decode(std::string_view input);

    // Body bytes handed out so far.
    uint64_t bodySize() const { return body_size_; }
    bool done() const { return state_ == State::Done; }

    // The trailer fields, after Done and with keep_trailers; views into the
    // decoder, valid until reset().
    const std::vector<HeaderField>& trailers() const { return trailers_; }

    // Starts a new body, keeping the options and allocated capacity.
    void reset();

  private:
    // step() relies on this order: SizeWhitespace to ExtensionAfterValue
    // are the states of a size line's extensions.
    enum class State : uint8_t {
        Size,
        SizeWhitespace,  // BWS after the size: only ';' may follow
        ExtensionNameStart,
        ExtensionName,
        ExtensionAfterName,
        ExtensionValueStart,
        ExtensionToken,
        ExtensionQuoted,
        ExtensionQuotedPair,
        ExtensionAfterValue,
        SizeLineFeed,
        Data,
        DataCarriageReturn,
        DataLineFeed,
        Trailer,
        Done,
        Error,
    };

    BodyEvent fail(int status, const char* reason);
    // Handles one byte of a framing state; returns false on error.
    bool step(char c);
    bool stepTrailer(char c);

    ChunkedDecoderOptions options_;
    State state_ = State::Size;
    BodyEvent final_;
    uint64_t chunk_size_ = 0;
    size_t size_digits_ = 0;
    uint64_t remaining_ = 0;  // data bytes left in the current chunk
    uint64_t body_size_ = 0;
    size_t extension_size_ = 0;
    std::string trailer_bytes_;
    size_t trailer_line_begin_ = 0;
    std::vector<HeaderField> trailers_;
    int pending_status_ = 0;  // set by step() on failure
    const char* pending_reason_ = "";
};

}  // namespace canopy::http
