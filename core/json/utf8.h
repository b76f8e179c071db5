#pragma once

// UTF-8 checks shared by the parser (string contents, error columns). Internal
// to canopy_json; strict per RFC 3629: no overlong forms, no encoded
// surrogates, nothing above U+10FFFF.

#include <cstddef>
#include <optional>
#include <string_view>

namespace canopy::json {

// Length in bytes (1-4) of the well-formed UTF-8 sequence that starts at
// `offset` in `text`, or 0 when the bytes there are not one (including a
// sequence cut short by the end of `text`). Requires offset < text.size().
size_t utf8SequenceLength(std::string_view text, size_t offset);

// Number of characters in `text`, or nullopt when it is not valid UTF-8.
std::optional<size_t> utf8Length(std::string_view text);

}  // namespace canopy::json
