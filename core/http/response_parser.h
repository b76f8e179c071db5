#pragma once

// The head of a response from an upstream HTTP/1.x server, for the router's
// proxy: status line, fields, and how the body is delimited (RFC 9112 §6.3).
// The proxy feeds it the bytes read from the upstream since the response
// began; the parser answers NeedMore, Done (a ResponseHead of views into
// that buffer) or Error (the upstream is broken: the client gets 502).
// Pure code, like the request parser: no I/O, no allocation per byte.

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "core/http/header_field.h"

namespace canopy::http {

enum class ResponseBodyFraming : uint8_t {
    None,           // no body: HEAD, 1xx, 204, 304
    ContentLength,  // exactly content_length bytes
    Chunked,        // Transfer-Encoding: chunked
    UntilClose,     // neither field: the body ends when the upstream closes
};

struct UpstreamResponseHead {
    int status = 0;
    uint8_t version_minor = 1;
    std::vector<HeaderField> fields;  // in arrival order, views into the buffer
    ResponseBodyFraming framing = ResponseBodyFraming::UntilClose;
    uint64_t content_length = 0;
    // The upstream keeps the connection open after this response (HTTP/1.1
    // without "Connection: close", HTTP/1.0 with "keep-alive").
    bool keep_alive = true;
    // The Connection field's tokens (lower case not guaranteed): fields named
    // there are hop-by-hop too (RFC 9110 §7.6.1).
    std::vector<std::string_view> connection_tokens;

    bool interim() const { return status >= 100 && status < 200; }
    // The first field named `name` (ASCII case-insensitive), or nullptr.
    const HeaderField* find(std::string_view name) const;
};

struct ResponseParserOptions {
    size_t max_head_size = 64 * 1024;  // → Error
    size_t max_field_count = 256;      // → Error
};

enum class ResponseParseStatus : uint8_t { NeedMore, Done, Error };

struct [[nodiscard]] ResponseParseResult {
    ResponseParseStatus status = ResponseParseStatus::NeedMore;
    size_t consumed = 0;      // Done: bytes of the head; the body starts there
    const char* reason = "";  // Error: for the log
};

class ResponseParser {
  public:
    explicit ResponseParser(ResponseParserOptions options = {}) : options_(options) {}

    // Parses the head at the start of `buffer` (call again with the same
    // bytes plus more after NeedMore; the buffer may move). `head_request`:
    // the request was HEAD, so the response has no body whatever it says.
    ResponseParseResult parse(std::string_view buffer, bool head_request);
    const UpstreamResponseHead& head() const { return head_; }
    // Forgets the response (after an interim 1xx, the next head follows).
    void reset();

  private:
    ResponseParseResult fail(const char* reason);
    ResponseParseResult finish(std::string_view head, size_t consumed, bool head_request);

    ResponseParserOptions options_;
    UpstreamResponseHead head_;
    size_t scanned_ = 0;  // bytes already searched for the blank line
};

}  // namespace canopy::http
