#pragma once

// Paths as a user types them ("listeners/*:8080", "routes/0/action") turned
// into the percent-encoded request targets of the control API
// ("/config/listeners/%2A%3A8080").
//
// A '/' separates segments; leading, trailing and repeated ones are ignored.
// A key that holds '/' is written with "\/" or inside double quotes:
// 'listeners/unix:\/run\/app.sock' or 'listeners/"unix:/run/app.sock"'.
// '\' makes the next character literal ("\\", "\""). Everything else,
// '%' included, is the key itself and is percent-encoded.

#include <string>
#include <string_view>
#include <vector>

#include "core/base/result.h"

namespace canopy::cli {

// The segments of a natural path; an error for an unterminated quote or a
// trailing lone backslash.
Result<std::vector<std::string>> splitNaturalPath(std::string_view path);

// Every byte but RFC 3986's unreserved ones (ALPHA DIGIT - . _ ~) as %XX.
std::string percentEncode(std::string_view segment);

// `root` ("/config") followed by each segment of `path`, encoded.
Result<std::string> requestTarget(std::string_view root, std::string_view path);

}  // namespace canopy::cli
