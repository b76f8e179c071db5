#include "core/http/chunked_decoder.h"

#include <algorithm>

#include "core/http/chars.h"
#include "core/http/field_line.h"

namespace canopy::http {
namespace {

bool isWhitespace(char c) {
    return c == ' ' || c == '\t';
}

// quoted-pair: "\" followed by HTAB, SP, VCHAR or obs-text.
bool isQuotable(char c) {
    auto byte = static_cast<unsigned char>(c);
    return c == '\t' || (byte >= 0x20 && byte != 0x7f);
}

}  // namespace

ChunkedDecoder::ChunkedDecoder(ChunkedDecoderOptions options) : options_(options) {}

void ChunkedDecoder::reset() {
    state_ = State::Size;
    final_ = BodyEvent{};
    chunk_size_ = 0;
    size_digits_ = 0;
    remaining_ = 0;
    body_size_ = 0;
    extension_size_ = 0;
    trailer_bytes_.clear();
    trailer_line_begin_ = 0;
    trailers_.clear();
    pending_status_ = 0;
    pending_reason_ = "";
}

BodyEvent ChunkedDecoder::fail(int status, const char* reason) {
    state_ = State::Error;
    final_ = BodyEvent{BodyStatus::Error, 0, {}, status, true, reason};
    return final_;
}

BodyEvent ChunkedDecoder::decode(std::string_view input) {
    if (state_ == State::Done || state_ == State::Error) {
        return final_;
    }
    size_t position = 0;
    while (true) {
        if (state_ == State::Data) {
            size_t available = input.size() - position;
            if (available == 0) {
                return BodyEvent{BodyStatus::NeedMore, input.size()};
            }
            size_t piece = static_cast<size_t>(std::min<uint64_t>(remaining_, available));
            remaining_ -= piece;
            body_size_ += piece;
            if (remaining_ == 0) {
                state_ = State::DataCarriageReturn;
            }
            return BodyEvent{BodyStatus::Data, position + piece, input.substr(position, piece)};
        }
        if (position == input.size()) {
            return BodyEvent{BodyStatus::NeedMore, input.size()};
        }
        if (!step(input[position++])) {
            return fail(pending_status_, pending_reason_);
        }
        if (state_ == State::Done) {
            final_ = BodyEvent{BodyStatus::Done, 0};
            return BodyEvent{BodyStatus::Done, position};
        }
    }
}

bool ChunkedDecoder::step(char c) {
    auto error = [this](int status, const char* reason) {
        pending_status_ = status;
        pending_reason_ = reason;
        return false;
    };
    // Extension bytes (from the first ';' or whitespace after the size up
    // to the CR) are counted so a client cannot keep a size line going
    // forever between reads.
    if (state_ >= State::SizeWhitespace && state_ <= State::ExtensionAfterValue && c != '\r' &&
        ++extension_size_ > options_.max_extension_size) {
        return error(400, "chunk extension too long");
    }
    switch (state_) {
        case State::Size:
            if (chars::is(c, chars::kHex)) {
                // Four bits per digit: refuse before the value passes 2^63 - 1
                // (leading zeros cost nothing, so they are allowed).
                if ((chunk_size_ >> 59) != 0) {
                    return error(400, "chunk size too large");
                }
                int digit = c <= '9' ? c - '0' : chars::lower(c) - 'a' + 10;
                chunk_size_ = (chunk_size_ << 4) | static_cast<uint64_t>(digit);
                ++size_digits_;
                return true;
            }
            if (size_digits_ == 0) {
                return error(400, "invalid chunk size");
            }
            if (c == '\r') {
                state_ = State::SizeLineFeed;
            } else if (c == ';') {
                extension_size_ = 1;
                state_ = State::ExtensionNameStart;
            } else if (isWhitespace(c)) {
                extension_size_ = 1;
                state_ = State::SizeWhitespace;
            } else {
                return error(400, "invalid chunk size");
            }
            return true;
        case State::SizeWhitespace:
            if (c == ';') {
                state_ = State::ExtensionNameStart;
            } else if (!isWhitespace(c)) {
                return error(400, "invalid chunk size line");
            }
            return true;
        case State::ExtensionNameStart:
            if (chars::is(c, chars::kToken)) {
                state_ = State::ExtensionName;
            } else if (!isWhitespace(c)) {
                return error(400, "invalid chunk extension");
            }
            return true;
        case State::ExtensionName:
            if (chars::is(c, chars::kToken)) {
                return true;
            }
            [[fallthrough]];
        case State::ExtensionAfterName:
            if (c == '\r') {
                state_ = State::SizeLineFeed;
            } else if (c == ';') {
                state_ = State::ExtensionNameStart;
            } else if (c == '=') {
                state_ = State::ExtensionValueStart;
            } else if (isWhitespace(c)) {
                state_ = State::ExtensionAfterName;
            } else {
                return error(400, "invalid chunk extension");
            }
            return true;
        case State::ExtensionValueStart:
            if (c == '"') {
                state_ = State::ExtensionQuoted;
            } else if (chars::is(c, chars::kToken)) {
                state_ = State::ExtensionToken;
            } else if (!isWhitespace(c)) {
                return error(400, "invalid chunk extension value");
            }
            return true;
        case State::ExtensionToken:
            if (chars::is(c, chars::kToken)) {
                return true;
            }
            if (c == '\r') {
                state_ = State::SizeLineFeed;
            } else if (c == ';') {
                state_ = State::ExtensionNameStart;
            } else if (isWhitespace(c)) {
                state_ = State::ExtensionAfterValue;
            } else {
                return error(400, "invalid chunk extension value");
            }
            return true;
        case State::ExtensionQuoted:
            if (c == '"') {
                state_ = State::ExtensionAfterValue;
            } else if (c == '\\') {
                state_ = State::ExtensionQuotedPair;
            } else if (!chars::is(c, chars::kQuotedText)) {
                return error(400, "invalid chunk extension value");
            }
            return true;
        case State::ExtensionQuotedPair:
            if (!isQuotable(c)) {
                return error(400, "invalid chunk extension value");
            }
            state_ = State::ExtensionQuoted;
            return true;
        case State::ExtensionAfterValue:
            if (c == '\r') {
                state_ = State::SizeLineFeed;
            } else if (c == ';') {
                state_ = State::ExtensionNameStart;
            } else if (!isWhitespace(c)) {
                return error(400, "invalid chunk extension");
            }
            return true;
        case State::SizeLineFeed:
            // CRLF is required in chunk framing: lenient line endings there
            // are how front ends and back ends come to disagree on a body.
            if (c != '\n') {
                return error(400, "bare CR in a chunk size line");
            }
            extension_size_ = 0;
            if (chunk_size_ == 0) {
                state_ = State::Trailer;
                return true;
            }
            if (chunk_size_ > options_.max_body_size - body_size_) {
                return error(413, "request body too large");
            }
            remaining_ = chunk_size_;
            chunk_size_ = 0;
            size_digits_ = 0;
            state_ = State::Data;
            return true;
        case State::DataCarriageReturn:
            if (c != '\r') {
                return error(400, "no CRLF after chunk data");
            }
            state_ = State::DataLineFeed;
            return true;
        case State::DataLineFeed:
            if (c != '\n') {
                return error(400, "no CRLF after chunk data");
            }
            state_ = State::Size;
            return true;
        case State::Trailer:
            return stepTrailer(c);
        case State::Data:
        case State::Done:
        case State::Error:
            break;
    }
    return error(400, "chunked decoder misuse");
}

bool ChunkedDecoder::stepTrailer(char c) {
    auto error = [this](int status, const char* reason) {
        pending_status_ = status;
        pending_reason_ = reason;
        return false;
    };
    if (trailer_bytes_.size() >= options_.max_trailer_size) {
        return error(431, "trailer section too large");
    }
    trailer_bytes_.push_back(c);
    if (c != '\n') {
        return true;
    }
    size_t end = trailer_bytes_.size() - 1;
    if (end == trailer_line_begin_ || trailer_bytes_[end - 1] != '\r') {
        return error(400, "bare LF in the trailer section");
    }
    std::string_view line(trailer_bytes_.data() + trailer_line_begin_,
                          end - 1 - trailer_line_begin_);
    trailer_line_begin_ = trailer_bytes_.size();
    if (!line.empty()) {
        FieldLine field;
        FieldLineError field_error = parseFieldLine(line, field);
        if (field_error != FieldLineError::None) {
            return error(400, describe(field_error));
        }
        return true;
    }
    state_ = State::Done;
    if (options_.keep_trailers) {
        // The lines were checked on arrival; now that the bytes no longer
        // move, hand out views of them.
        std::string_view rest(trailer_bytes_);
        while (true) {
            size_t line_end = rest.find("\r\n");
            if (line_end == 0) {
                break;
            }
            FieldLine field;
            (void)parseFieldLine(rest.substr(0, line_end), field);
            trailers_.push_back(HeaderField{field.name, field.value});
            rest.remove_prefix(line_end + 2);
        }
    }
    return true;
}

}  // namespace canopy::http
