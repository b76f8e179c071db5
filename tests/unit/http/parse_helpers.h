#pragma once

// Feeding helpers shared by the HTTP parser tests: every way of cutting a
// request into reads must give the same outcome, so the tests compare
// outcomes copied out of the parser rather than views into a buffer.

#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/http/request_parser.h"

namespace canopy::http::testing {

struct Outcome {
    ParseStatus status = ParseStatus::NeedMore;
    size_t consumed = 0;
    int error_status = 0;
    bool close = false;
    std::string method;
    Method method_kind = Method::Other;
    std::string target, path, query, host, request_line, upgrade;
    bool has_host = false, has_query = false, absolute_form = false;
    unsigned version_minor = 0;
    BodyFraming framing = BodyFraming::None;
    uint64_t content_length = 0;
    bool keep_alive = false, expect_continue = false, connection_upgrade = false, websocket = false;
    std::vector<std::pair<std::string, std::string>> fields;

    bool operator==(const Outcome&) const = default;
};

inline void PrintTo(const Outcome& outcome, std::ostream* out) {
    *out << "{status " << static_cast<int>(outcome.status) << ", consumed " << outcome.consumed
         << ", error " << outcome.error_status << ", target \"" << outcome.target << "\", host \""
         << outcome.host << "\", fields " << outcome.fields.size() << "}";
}

inline Outcome capture(const ParseResult& result, const RequestParser& parser) {
    Outcome outcome;
    outcome.status = result.status;
    outcome.consumed = result.consumed;
    outcome.error_status = result.error_status;
    outcome.close = result.close;
    if (result.status != ParseStatus::Done) {
        return outcome;
    }
    const RequestHead& head = parser.head();
    outcome.method = head.method_text;
    outcome.method_kind = head.method;
    outcome.target = head.target;
    outcome.path = head.path;
    outcome.query = head.query;
    outcome.host = head.host;
    outcome.request_line = head.request_line;
    outcome.upgrade = head.upgrade;
    outcome.has_host = head.has_host;
    outcome.has_query = head.has_query;
    outcome.absolute_form = head.absolute_form;
    outcome.version_minor = head.version_minor;
    outcome.framing = head.framing;
    outcome.content_length = head.content_length;
    outcome.keep_alive = head.keep_alive;
    outcome.expect_continue = head.expect_continue;
    outcome.connection_upgrade = head.connection_upgrade;
    outcome.websocket = head.websocket;
    for (const HeaderField& field : head.fields) {
        outcome.fields.emplace_back(field.name, field.value);
    }
    return outcome;
}

inline Outcome parseOnce(std::string_view text, RequestParserOptions options = {}) {
    RequestParser parser(options);
    ParseResult result = parser.parse(text);
    return capture(result, parser);
}

// One byte more per call, each time in a freshly allocated copy: proves the
// parser keeps offsets, not pointers, across calls.
inline Outcome parseByteAtATime(std::string_view text, RequestParserOptions options = {}) {
    RequestParser parser(options);
    ParseResult result;
    for (size_t size = 0; size <= text.size(); ++size) {
        std::string copy(text.substr(0, size));
        result = parser.parse(copy);
        if (result.status != ParseStatus::NeedMore) {
            return capture(result, parser);  // views die with `copy`; capture copies
        }
    }
    return capture(result, parser);
}

// Two reads: the first `split` bytes, then everything.
inline Outcome parseSplit(std::string_view text, size_t split, RequestParserOptions options = {}) {
    RequestParser parser(options);
    ParseResult first = parser.parse(text.substr(0, split));
    if (first.status != ParseStatus::NeedMore) {
        return capture(first, parser);
    }
    return capture(parser.parse(text), parser);
}

}  // namespace canopy::http::testing
