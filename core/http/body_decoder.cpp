#include "core/http/body_decoder.h"

#include <algorithm>

namespace canopy::http {

BodyDecoder::BodyDecoder(ChunkedDecoderOptions options) : options_(options), chunked_(options) {}

void BodyDecoder::start(const RequestHead& head) {
    start(head.framing, head.content_length);
}

void BodyDecoder::start(BodyFraming framing, uint64_t content_length) {
    framing_ = framing;
    remaining_ = framing == BodyFraming::ContentLength ? content_length : 0;
    received_ = 0;
    too_large_ = framing == BodyFraming::ContentLength && content_length > options_.max_body_size;
    chunked_.reset();
}

bool BodyDecoder::tooLarge() const {
    return too_large_;
}

BodyEvent BodyDecoder::decode(std::string_view input) {
    switch (framing_) {
        case BodyFraming::None:
            return BodyEvent{BodyStatus::Done, 0};
        case BodyFraming::ContentLength: {
            if (too_large_) {
                return BodyEvent{BodyStatus::Error, 0, {}, 413, true, "request body too large"};
            }
            if (remaining_ == 0) {
                return BodyEvent{BodyStatus::Done, 0};
            }
            if (input.empty()) {
                return BodyEvent{BodyStatus::NeedMore, 0};
            }
            size_t piece = static_cast<size_t>(std::min<uint64_t>(remaining_, input.size()));
            remaining_ -= piece;
            received_ += piece;
            return BodyEvent{BodyStatus::Data, piece, input.substr(0, piece)};
        }
        case BodyFraming::Chunked:
            return chunked_.decode(input);
    }
    return BodyEvent{BodyStatus::Error, 0, {}, 400, true, "unknown body framing"};
}

uint64_t BodyDecoder::bodySize() const {
    return framing_ == BodyFraming::Chunked ? chunked_.bodySize() : received_;
}

}  // namespace canopy::http
