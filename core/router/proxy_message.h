#pragma once

// What the proxy changes in the messages it passes on, as pure functions:
// the request head sent to an upstream and the response fields passed back.
// Following Unit (and nginx where Unit says nothing): the request line keeps
// the client's target (the rewritten path when `rewrite` changed it), Host
// and the end-to-end fields pass unchanged, hop-by-hop fields (RFC 9110
// §7.6.1, and every field the Connection field names) are dropped, and the
// framing is the proxy's own. The upstream's Date and Server are replaced
// by the router's (nginx's default), its hop-by-hop fields dropped.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/http/header_field.h"
#include "core/routing/address.h"

namespace canopy {

enum class UpstreamBodyFraming : uint8_t { None, ContentLength, Chunked };

struct UpstreamRequest {
    std::string_view method;
    std::string_view target;                    // origin-form, as it goes on the request line
    std::span<const http::HeaderField> fields;  // the client's, in order
    std::string_view host_fallback;             // Host to send when the client sent none
    // The X-Forwarded-For addresses vouched for (left to right), then the
    // peer: the client's own X-Forwarded-For fields are replaced by these.
    std::span<const routing::Address> forwarded_for;
    UpstreamBodyFraming framing = UpstreamBodyFraming::None;
    uint64_t content_length = 0;
    bool websocket = false;  // keep Upgrade and ask for it in Connection
};

// Appends the head (request line to blank line) to `out`.
void appendUpstreamRequestHead(std::string& out, const UpstreamRequest& request);

// Whether a response field stays out of what the client gets: hop-by-hop,
// framing (the router frames the answer), Date and Server (the router's),
// or named by the response's Connection field.
bool droppedResponseField(std::string_view name, std::span<const std::string_view> connection);

// The target for a rewritten path: `path` percent-encoded where a path may
// not hold the byte, then "?" and the query when there is one.
std::string rewrittenTarget(std::string_view path, std::string_view query, bool has_query);

}  // namespace canopy
