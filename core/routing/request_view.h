#pragma once

// Everything routes and variables read about one request. The HTTP engine
// fills the public fields (views into its own buffers) and keeps them valid
// while the view is used; the view computes the rest (query arguments,
// cookies, the request id) on first use and keeps it. A view belongs to the
// one thread that serves its request: it is not safe to share.

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/routing/address.h"

namespace canopy::routing {

struct Header {
    std::string_view name;
    std::string_view value;
};

// A query argument, name and value decoded (%XX and '+').
struct Argument {
    std::string_view name;
    std::string_view value;
};

// A "name=value" pair of a Cookie header, as sent (not decoded).
struct Cookie {
    std::string_view name;
    std::string_view value;
};

enum class Scheme : uint8_t { Http, Https };

// What variables read about the response ($status, $body_bytes_sent,
// $response_header_*, response_headers values). Filled by the engine before
// it evaluates them.
struct ResponseView {
    int status = 0;  // 0 until known: $status is then empty
    uint64_t body_bytes_sent = 0;
    // Headers as they go out, including the ones the engine adds itself
    // (Connection, Content-Length, Transfer-Encoding), which Unit exposes.
    std::span<const Header> headers;
};

class RequestView {
  public:
    RequestView() = default;
    // Moves keep the lazily computed parts valid (their storage is on the
    // heap); copies would alias them, so there are none.
    RequestView(RequestView&&) noexcept = default;
    RequestView& operator=(RequestView&&) noexcept = default;
    RequestView(const RequestView&) = delete;
    RequestView& operator=(const RequestView&) = delete;

    // ---- filled by the engine; views must outlive every use of this view ----
    std::string_view method;                             // as sent ("GET")
    std::string_view target;                             // request-target as received: $request_uri
    std::string_view query;                              // raw query without '?', "" when none
    std::string_view host;                               // normalizeHost() of Host, "" when absent
    std::string_view request_line;                       // first line without CRLF: $request_line
    std::span<const Header> headers;                     // in arrival order
    Scheme scheme = Scheme::Http;                        // after `forwarded.protocol`
    Address remote;                                      // client, after `forwarded.source`
    Address local;                                       // local end of the connection
    std::chrono::steady_clock::time_point start_time{};  // for $request_time
    // When set, $request_time ends here (the engine sets it when the response
    // is done, so that the access log states the real duration); else now.
    std::optional<std::chrono::steady_clock::time_point> end_time;
    // When set, $time_local shows this instant; else now.
    std::optional<std::chrono::system_clock::time_point> log_time;
    ResponseView response;

    // $uri: the decoded, normalized path (normalizePath()). The engine sets it
    // once; a `rewrite` replaces it.
    std::string_view path() const { return path_; }
    void setPath(std::string path) { path_ = std::move(path); }

    // Drops what was computed from `query` and `headers`; call after changing
    // either (a view reused for the next request on a connection starts with
    // reset()).
    void forgetComputed();
    // Back to a default view, keeping allocated capacity for the next request.
    void reset();

    // ---- computed on first use ----

    // First header named `name` (ASCII case-insensitive), or nullptr.
    const Header* findHeader(std::string_view name) const;
    // Query arguments in order; empty names ("&&", "=x") are skipped.
    std::span<const Argument> arguments() const;
    // Pairs of every Cookie header, in order.
    std::span<const Cookie> cookies() const;
    // The whole query with %XX and '+' decoded (the `query` match key).
    std::string_view decodedQuery() const;
    // 32 random lower-case hex digits, the same for every call: $request_id.
    std::string_view requestId() const;

  private:
    std::string path_ = "/";

    mutable bool arguments_parsed_ = false;
    mutable std::vector<Argument> arguments_;
    // Decoded names and values; sized to the query once (decoding never
    // grows text), so views into it stay valid.
    mutable std::unique_ptr<char[]> argument_storage_;

    mutable bool cookies_parsed_ = false;
    mutable std::vector<Cookie> cookies_;

    mutable std::optional<std::string> decoded_query_;
    mutable std::optional<std::array<char, 32>> request_id_;
};

// ASCII case-insensitive equality, as header names compare.
bool equalsIgnoreCase(std::string_view left, std::string_view right);

}  // namespace canopy::routing
