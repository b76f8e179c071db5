// Text rules of the Rack interface that need no Ruby: env keys from request
// header names, response header values split into fields, statuses. Kept
// apart so that unit tests can check them without an interpreter.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace canopy::ruby {

// "X-Forwarded-For" -> "HTTP_X_FORWARDED_FOR" (CGI style: upper case, '-'
// becomes '_'). Writes name.size() + 5 bytes to `out`, allocates nothing (it
// runs inside Ruby calls, where no C++ object may live).
void writeEnvKeyOfHeader(std::string_view name, char* out);
std::string envKeyOfHeader(std::string_view name);

// Content-Type and Content-Length are CONTENT_TYPE/CONTENT_LENGTH in a Rack
// env; the Rack SPEC forbids their HTTP_ forms.
bool isContentHeader(std::string_view name);

// The fields of one Rack 2 header value: "a\nb" is two fields, "a" and "b".
// Empty pieces (a trailing newline, "\n\n") are dropped, so "" gives none.
// nextHeaderField takes the next field off `rest` (false when none is left)
// without allocating; splitHeaderValue returns them all.
bool nextHeaderField(std::string_view& rest, std::string_view& field);
std::vector<std::string_view> splitHeaderValue(std::string_view value);

// A status given as text ("200", "404 Not Found"): its leading three-digit
// code, when it is 100...999.
std::optional<uint16_t> statusFromText(std::string_view text);

// A Content-Length value the application set: a decimal without sign.
std::optional<uint64_t> contentLengthFromText(std::string_view text);

bool equalsIgnoringCase(std::string_view left, std::string_view right);

}  // namespace canopy::ruby
