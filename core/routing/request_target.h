#pragma once

// What the HTTP engine does to a request-target and a Host header before
// routing sees them, done the way NGINX Unit's parser does it so that routes
// written for Unit match the same requests. Pure functions; any thread.

#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "core/base/hex.h"

namespace canopy::routing {

// Appends `text` with %XX decoded to `out`; with `plus_as_space` (query
// strings) '+' becomes ' '. A '%' not followed by two hex digits is kept as
// written: query arguments are matched as best we can rather than refused.
void percentDecodeLenient(std::string_view text, bool plus_as_space, std::string& out);

// `text` with %XX decoded, or nullopt when a '%' is not followed by two hex
// digits. Used for patterns and pass segments, which validation has checked.
std::optional<std::string> percentDecode(std::string_view text, bool plus_as_space = false);

// A request-target split at the first '?'; a '#fragment' is dropped.
struct TargetParts {
    std::string_view path;   // raw, still encoded
    std::string_view query;  // raw, without the '?'
    bool has_query = false;  // "/x?" has an empty query
};
TargetParts splitTarget(std::string_view target);

// Why a path cannot be routed. The engine answers 400 to each.
enum class PathError {
    NotAbsolute,  // does not start with '/'
    BadEscape,    // '%' without two hex digits
    NulByte,      // %00 (or a raw NUL)
    AboveRoot,    // ".." past "/"
};
std::string_view pathErrorText(PathError error);

// The decoded, normalized path ($uri) of a raw path (no query): every %XX
// is decoded and the result normalized, so an encoded "/" or "." acts like
// the plain one as in Unit; runs of '/' become one; "." segments vanish;
// ".." removes the previous segment. "/a/./b/../c" -> "/a/c",
// "/a/%2e%2e/b" -> "/b", "/a/.." -> "/".
std::variant<std::string, PathError> normalizePath(std::string_view raw_path);

// A Host header value as routes see it: port removed ("h:8080" -> "h",
// "[::1]:80" -> "[::1]"), one trailing dot removed, ASCII lower-cased.
// nullopt for a value Unit refuses with 400: '/', '\\', control
// characters, "..", an unclosed '['.
std::optional<std::string> normalizeHost(std::string_view host);

// A `location` value as sent in the Location header: returned unchanged
// when it already looks encoded (every '%' starts a valid escape and no
// character needs escaping), else characters unsafe in a URI (controls,
// space, '"', '<', '>', '\\', '^', '`', '{', '|', '}', bytes >= 0x7f and a
// '%' that starts no escape) are percent-encoded.
std::string encodeLocation(std::string_view location);

}  // namespace canopy::routing
