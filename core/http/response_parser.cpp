#include "core/http/response_parser.h"

#include <cstring>
#include <limits>

#include "core/http/chars.h"
#include "core/http/field_line.h"

namespace canopy::http {
namespace {

constexpr uint64_t kMaxContentLength = std::numeric_limits<int64_t>::max();

bool parseContentLength(std::string_view text, uint64_t& value) {
    if (text.empty() || text.size() > 19) {
        return false;
    }
    uint64_t result = 0;
    for (char c : text) {
        if (c < '0' || c > '9') {
            return false;
        }
        result = result * 10 + static_cast<uint64_t>(c - '0');
    }
    if (result > kMaxContentLength) {
        return false;
    }
    value = result;
    return true;
}

// "HTTP/1.x NNN reason": the version's minor and the status, or false.
bool parseStatusLine(std::string_view line, UpstreamResponseHead& head) {
    if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || line[7] < '0' || line[7] > '9' ||
        line[8] != ' ') {
        return false;
    }
    if (line.size() > 12 && line[12] != ' ') {
        return false;
    }
    int status = 0;
    for (size_t index = 9; index < 12; ++index) {
        if (line[index] < '0' || line[index] > '9') {
            return false;
        }
        status = status * 10 + (line[index] - '0');
    }
    if (status < 100) {
        return false;
    }
    head.version_minor = static_cast<uint8_t>(line[7] - '0');
    head.status = status;
    return true;
}

}  // namespace

const HeaderField* UpstreamResponseHead::find(std::string_view name) const {
    for (const auto& field : fields) {
        if (field.name.size() == name.size()) {
            bool same = true;
            for (size_t index = 0; index < name.size() && same; ++index) {
                same = chars::lower(field.name[index]) == chars::lower(name[index]);
            }
            if (same) {
                return &field;
            }
        }
    }
    return nullptr;
}

void ResponseParser::reset() {
    head_.fields.clear();
    head_.connection_tokens.clear();
    head_.status = 0;
    head_.version_minor = 1;
    head_.framing = ResponseBodyFraming::UntilClose;
    head_.content_length = 0;
    head_.keep_alive = true;
    scanned_ = 0;
}

ResponseParseResult ResponseParser::fail(const char* reason) {
    ResponseParseResult result;
    result.status = ResponseParseStatus::Error;
    result.reason = reason;
    return result;
}

ResponseParseResult ResponseParser::parse(std::string_view buffer, bool head_request) {
    // The head ends at an empty line: "\n\n" or "\n\r\n" (a bare LF is
    // accepted as a line ending, as nginx does with upstreams).
    size_t from = scanned_ > 2 ? scanned_ - 2 : 0;
    size_t limit = std::min(buffer.size(), options_.max_head_size);
    for (size_t index = from; index < limit; ++index) {
        const void* found = std::memchr(buffer.data() + index, '\n', limit - index);
        if (found == nullptr) {
            break;
        }
        index = static_cast<size_t>(static_cast<const char*>(found) - buffer.data());
        size_t next = index + 1;
        if (next < buffer.size() && buffer[next] == '\n') {
            return finish(buffer.substr(0, next + 1), next + 1, head_request);
        }
        if (next + 1 < buffer.size() && buffer[next] == '\r' && buffer[next + 1] == '\n') {
            return finish(buffer.substr(0, next + 2), next + 2, head_request);
        }
    }
    scanned_ = limit;
    if (buffer.size() >= options_.max_head_size) {
        return fail("the upstream's response head is too large");
    }
    return {};
}

ResponseParseResult ResponseParser::finish(std::string_view text, size_t consumed,
                                           bool head_request) {
    head_.fields.clear();
    head_.connection_tokens.clear();
    bool first = true;
    bool content_length_seen = false;
    bool transfer_encoding_seen = false;
    bool chunked = false;
    bool connection_close = false;
    bool connection_keep_alive = false;
    while (!text.empty()) {
        size_t end = text.find('\n');
        std::string_view line = text.substr(0, end);
        text.remove_prefix(end + 1);
        if (!line.empty() && line.back() == '\r') {
            line.remove_suffix(1);
        }
        if (line.empty()) {
            if (first) {
                continue;  // empty lines before the status line are skipped
            }
            break;
        }
        if (first) {
            if (!parseStatusLine(line, head_)) {
                return fail("the upstream sent an invalid status line");
            }
            first = false;
            continue;
        }
        FieldLine field;
        if (parseFieldLine(line, field) != FieldLineError::None) {
            return fail("the upstream sent an invalid header field");
        }
        if (head_.fields.size() >= options_.max_field_count) {
            return fail("the upstream sent too many header fields");
        }
        head_.fields.push_back({field.name, field.value});
        if (chars::equalsLower(field.name, "content-length")) {
            uint64_t length = 0;
            if (!parseContentLength(field.value, length) ||
                (content_length_seen && length != head_.content_length)) {
                return fail("the upstream sent an invalid Content-Length");
            }
            content_length_seen = true;
            head_.content_length = length;
        } else if (chars::equalsLower(field.name, "transfer-encoding")) {
            // Only "chunked" alone can be decoded here; another transfer
            // coding leaves the body's length unknown to the client.
            bool valid = chars::forEachListElement(field.value, [&](std::string_view coding) {
                if (!chars::equalsLower(coding, "chunked") || chunked) {
                    return false;
                }
                chunked = true;
                return true;
            });
            if (!valid) {
                return fail("the upstream sent a Transfer-Encoding other than chunked");
            }
            transfer_encoding_seen = true;
        } else if (chars::equalsLower(field.name, "connection")) {
            (void)chars::forEachListElement(field.value, [&](std::string_view token) {
                head_.connection_tokens.push_back(token);
                connection_close = connection_close || chars::equalsLower(token, "close");
                connection_keep_alive =
                    connection_keep_alive || chars::equalsLower(token, "keep-alive");
                return true;
            });
        }
    }
    if (first) {
        return fail("the upstream sent no status line");
    }
    if (transfer_encoding_seen && !chunked) {
        return fail("the upstream sent an empty Transfer-Encoding");
    }
    if (transfer_encoding_seen && content_length_seen) {
        return fail("the upstream sent both Transfer-Encoding and Content-Length");
    }
    head_.keep_alive =
        head_.version_minor >= 1 ? !connection_close : connection_keep_alive && !connection_close;
    if (head_request || head_.interim() || head_.status == 204 || head_.status == 304) {
        head_.framing = ResponseBodyFraming::None;
    } else if (chunked) {
        head_.framing = ResponseBodyFraming::Chunked;
    } else if (content_length_seen) {
        head_.framing = ResponseBodyFraming::ContentLength;
    } else {
        head_.framing = ResponseBodyFraming::UntilClose;
        head_.keep_alive = false;
    }
    ResponseParseResult result;
    result.status = ResponseParseStatus::Done;
    result.consumed = consumed;
    return result;
}

}  // namespace canopy::http
