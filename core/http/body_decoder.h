#pragma once

// One way to read any request body: the engine starts a BodyDecoder with the
// head's framing and feeds it whatever follows the head, whether the body is
// sized by Content-Length, chunked, or absent.

#include <cstdint>
#include <string_view>

#include "core/http/chunked_decoder.h"
#include "core/http/request_parser.h"

namespace canopy::http {

class BodyDecoder {
  public:
    explicit BodyDecoder(ChunkedDecoderOptions options = {});

    // Starts the body of `head` (forgetting any previous one).
    void start(const RequestHead& head);
    void start(BodyFraming framing, uint64_t content_length);

    // True when a Content-Length body is larger than max_body_size: the
    // engine answers 413 at once (before any 100 Continue). decode() then
    // returns that error too.
    bool tooLarge() const;

    // As ChunkedDecoder::decode(): NeedMore, Data (a view into `input`),
    // Done (the rest of the input is the next request) or Error. Valid with
    // empty input: a body without bytes is Done at once.
    BodyEvent decode(std::string_view input);

    uint64_t bodySize() const;
    // Trailers of a chunked body (see ChunkedDecoderOptions::keep_trailers).
    const std::vector<HeaderField>& trailers() const { return chunked_.trailers(); }

  private:
    ChunkedDecoderOptions options_;
    BodyFraming framing_ = BodyFraming::None;
    uint64_t remaining_ = 0;
    uint64_t received_ = 0;
    bool too_large_ = false;
    ChunkedDecoder chunked_;
};

}  // namespace canopy::http
