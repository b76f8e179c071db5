#pragma once

// Response heads as bytes: the status line, Server, Date, the framing header
// and Connection, then the action's fields; plus chunk framing for streamed
// bodies and the small HTML page of generated errors (config-schema §8).
// Everything appends to a caller-owned std::string so a worker reuses one
// output buffer per connection.

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <span>
#include <string>
#include <string_view>

#include "core/http/header_field.h"

namespace canopy::http {

// The interim answer to "Expect: 100-continue".
inline constexpr std::string_view kContinueResponse = "HTTP/1.1 100 Continue\r\n\r\n";
// The last chunk of a chunked body with no trailers.
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

// The reason phrase of `status` ("Not Found"), or "" for a code without one
// (the status line then ends "NNN \r\n", which RFC 9112 §4 allows).
std::string_view reasonPhrase(int status);

// The Server field value: "Canopy/<version>" or, with server_version false,
// "Canopy" (settings.http.server_version).
std::string serverHeaderValue(bool server_version);

// `time` as an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT", 29 bytes).
std::string formatHttpDate(std::time_t time);

// The current time as an IMF-fixdate, formatted at most once per second per
// thread (the cache is thread_local, so no lock). The view stays valid on
// this thread until the next call.
std::string_view currentHttpDate();

enum class ResponseFraming : uint8_t {
    ContentLength,   // Content-Length: content_length
    Chunked,         // Transfer-Encoding: chunked (HTTP/1.1 clients only)
    CloseDelimited,  // no framing field; the body ends when the connection closes
    NoBody,          // 1xx, 204, 304, or a framing the caller writes itself
};

struct ResponseHead {
    int status = 200;
    ResponseFraming framing = ResponseFraming::ContentLength;
    uint64_t content_length = 0;
    // Whether the engine wants to keep the connection; the answer of
    // appendResponseHead() is what it must do.
    bool keep_alive = true;
    // The request was HTTP/1.0: keep-alive is then announced explicitly, and
    // chunked (which 1.0 does not know) becomes close-delimited.
    bool http10_client = false;
    // "Canopy/1.35.0", "Canopy", or empty for no Server field.
    std::string_view server;
    // Written after the generated fields, as given: the engine keeps
    // Content-Length, Transfer-Encoding, Connection, Date and Server out of it.
    std::span<const HeaderField> fields;
};

// Appends the head, blank line included, to `out`. Returns whether the
// connection stays open after this response (false when the framing needs
// the close or keep_alive was false).
bool appendResponseHead(std::string& out, const ResponseHead& head);

// The built-in page of an error status:
// "<!DOCTYPE html><title>Error 404</title><p>Error 404.\r\n" (Unit's page).
std::string errorPage(int status);

// A whole generated error answer (head and page; the page is left out for
// HEAD requests but still counted in Content-Length). Returns what
// appendResponseHead() returns.
bool appendErrorResponse(std::string& out, int status, std::string_view server, bool keep_alive,
                         bool http10_client, bool head_request);

// A chunk-size line ("1a2b\r\n") in a small buffer, for gathering writes
// around a body piece the engine does not copy.
struct ChunkHeader {
    char bytes[20];
    uint8_t size = 0;
    std::string_view view() const { return std::string_view(bytes, size); }
};
ChunkHeader chunkHeader(size_t data_size);

// Appends `data` as one chunk ("size CRLF data CRLF"); empty data appends
// nothing (an empty chunk would end the body).
void appendChunk(std::string& out, std::string_view data);

}  // namespace canopy::http
