#pragma once

// One field line ("Name: value") of a head or a trailer section, internal to
// canopy_http so the request parser and the chunked decoder apply the same
// rules.

#include <cstddef>
#include <string_view>

namespace canopy::http {

enum class FieldLineError {
    None,
    ObsFold,           // the line starts with SP or HTAB (RFC 9112 §5.2)
    EmptyName,         // ":value"
    InvalidName,       // a byte outside tchar in the name
    SpaceBeforeColon,  // "Name : value" (RFC 9112 §5.1: must be refused)
    InvalidValue,      // NUL, CR or another control character in the value
};

struct FieldLine {
    std::string_view name;
    std::string_view value;  // without leading and trailing OWS
};

// Parses `line` (without its line terminator, never empty). On success fills
// `out` with views into `line`.
FieldLineError parseFieldLine(std::string_view line, FieldLine& out);

// The log reason of an error, a static string.
const char* describe(FieldLineError error);

}  // namespace canopy::http
