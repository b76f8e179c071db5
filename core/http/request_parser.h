#pragma once

// An incremental HTTP/1.1 and HTTP/1.0 request-head parser. The router's
// event loop reads bytes into a connection buffer and calls parse() with
// everything received since the request began; the parser answers NeedMore,
// Done (with a RequestHead of views into that buffer and the body framing),
// or an Error carrying the status to answer. It does no I/O and allocates
// only when a head has more fields than any head before it on this parser.
//
// The rules (and the choices where RFC 9112 leaves room) are in
// core/http/README.md; every refusal closes the connection.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/http/header_field.h"

namespace canopy::http {

enum class Method : uint8_t { Get, Head, Post, Put, Delete, Options, Patch, Connect, Trace, Other };

// How the request body is delimited (RFC 9112 §6.3).
enum class BodyFraming : uint8_t {
    None,           // no body
    ContentLength,  // exactly content_length bytes (may be 0)
    Chunked,        // Transfer-Encoding: chunked; decode with ChunkedDecoder
};

// A parsed request head. Every view points into the buffer given to
// RequestParser::parse() (or, for a synthesized target, into the parser) and
// stays valid while that buffer is neither modified nor moved and the parser
// is neither reset nor fed again.
struct RequestHead {
    std::string_view request_line;  // without its line ending ($request_line)
    std::string_view method_text;
    Method method = Method::Other;
    // Origin-form "path?query" ($request_uri), "*" for OPTIONS, or, for an
    // absolute-form target, its path and query ("/" when the path is empty).
    std::string_view target;
    std::string_view path;   // target up to '?', still percent-encoded
    std::string_view query;  // after the first '?', without it; empty when none
    bool has_query = false;
    bool absolute_form = false;  // the target was "http://authority/..."
    uint8_t version_minor = 1;   // 0: HTTP/1.0 rules; 1 and above: HTTP/1.1 rules

    // Fields in arrival order, minus those dropped by discard_unsafe_fields.
    std::vector<HeaderField> fields;

    // The authority: the absolute-form target's when there is one, else the
    // Host field's (validated, not normalized: case and port kept).
    std::string_view host;
    bool has_host = false;

    BodyFraming framing = BodyFraming::None;
    uint64_t content_length = 0;      // with BodyFraming::ContentLength
    bool keep_alive = true;           // per version and Connection
    bool expect_continue = false;     // "Expect: 100-continue" on HTTP/1.1
    bool connection_upgrade = false;  // Connection lists "upgrade"
    std::string_view upgrade;         // the Upgrade field's value, when sent
    bool websocket = false;           // GET, HTTP/1.1, Connection: upgrade, Upgrade lists websocket

    bool http10() const { return version_minor == 0; }
    bool hasBody() const { return framing != BodyFraming::None; }
    // The first field named `name` (ASCII case-insensitive), or nullptr.
    const HeaderField* find(std::string_view name) const;
};

struct RequestParserOptions {
    // Longest line of the head, line ending included (the request line → 414,
    // a field line → 431): settings.http.large_header_buffer_size.
    size_t max_line_size = 8192;
    // Longest head, every line and the blank line included → 431:
    // large_header_buffer_size × large_header_buffers.
    size_t max_head_size = 8192 * 4;
    // Most field lines in a head → 431 (not a Unit setting: bounds the work
    // per request against heads made of tiny fields).
    size_t max_field_count = 256;
    // settings.http.discard_unsafe_fields: drop fields whose names hold
    // anything but letters, digits and '-'.
    bool discard_unsafe_fields = true;
    // Accept a bare LF as a line ending in the head (RFC 9112 §2.2 MAY).
    bool accept_bare_lf = true;

    // The options from Unit's settings.http keys.
    static RequestParserOptions fromSettings(size_t large_header_buffer_size,
                                             size_t large_header_buffers,
                                             bool discard_unsafe_fields);
};

enum class ParseStatus : uint8_t { NeedMore, Done, Error };

struct [[nodiscard]] ParseResult {
    ParseStatus status = ParseStatus::NeedMore;
    // Done: bytes of the head (empty lines before the request line included);
    // the body or the next request starts there. Otherwise 0.
    size_t consumed = 0;
    // Error: the status to answer (400, 414, 431, 501, 505), whether to close
    // afterwards (always true today: the parser stops at the first refusal,
    // so where the next request would start is unknown), and a static reason
    // for the log.
    int error_status = 0;
    bool close = false;
    const char* reason = "";
};

class RequestParser {
  public:
    explicit RequestParser(RequestParserOptions options = {});

    // Parses the head at the start of `buffer`. Call again with the same
    // bytes plus more after NeedMore: the buffer may move between calls
    // (the parser keeps offsets), but its first bytes must not change. Scans
    // each byte once across calls. After Done or Error the result repeats
    // until reset().
    ParseResult parse(std::string_view buffer);

    // The head of the last Done.
    const RequestHead& head() const { return head_; }

    // Forgets the request (keeping allocated capacity) so the next parse()
    // starts a new head, e.g. at buffer + consumed + body size.
    void reset();

    const RequestParserOptions& options() const { return options_; }

  private:
    enum class State : uint8_t { RequestLine, Fields, Done, Error };

    struct FieldOffsets {
        uint32_t name_begin;
        uint32_t name_size;
        uint32_t value_begin;
        uint32_t value_size;
    };

    ParseResult fail(int status, const char* reason);
    ParseResult parseRequestLine(std::string_view buffer, size_t begin, size_t end);
    ParseResult parseTarget(std::string_view buffer, size_t begin, size_t end);
    ParseResult parseField(std::string_view buffer, size_t begin, size_t end);
    ParseResult finish(std::string_view buffer, size_t consumed);

    // Per-request progress; reset() assigns a fresh one. Offsets point into
    // the caller's buffer and become views in finish().
    struct Progress {
        State state = State::RequestLine;
        ParseResult final_result;
        size_t line_begin = 0;  // first byte of the line being read
        size_t scanned = 0;     // bytes already searched for '\n'
        uint32_t request_line_begin = 0, request_line_size = 0;
        uint32_t method_size = 0;
        uint32_t target_begin = 0, target_size = 0;
        uint32_t host_begin = 0, host_size = 0;        // from the Host field
        uint32_t upgrade_begin = 0, upgrade_size = 0;  // from the first Upgrade field
        // Absolute form: where the authority and the origin part are.
        uint32_t authority_begin = 0, authority_size = 0;
        uint32_t origin_begin = 0, origin_size = 0;
        bool synthesized_target = false;  // the target is synthesized_target_
        size_t field_count = 0;
        bool host_seen = false;
        bool content_length_seen = false;
        uint64_t content_length = 0;
        bool transfer_encoding_seen = false;
        bool te_invalid = false;
        bool te_unknown_coding = false;
        bool te_last_chunked = false;
        unsigned te_chunked_count = 0;
        bool connection_close = false;
        bool connection_keep_alive = false;
        bool connection_upgrade = false;
        bool upgrade_seen = false;
        bool upgrade_websocket = false;
        bool expect_continue = false;
    };

    RequestParserOptions options_;
    Progress progress_;
    // Kept across requests for their capacity.
    std::vector<FieldOffsets> field_offsets_;
    std::string synthesized_target_;  // "/?query" for "http://host?query"
    RequestHead head_;
};

}  // namespace canopy::http
