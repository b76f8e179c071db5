#pragma once

// PCRE2 behind two calls, so that only regex.cpp sees its C API. Patterns
// are compiled as UTF-8, case-sensitive and unanchored, as Unit's router
// uses them.

#include <optional>
#include <string>
#include <string_view>

namespace canopy::config {

// Why `pattern` does not compile ("missing closing parenthesis at offset
// 3"), or std::nullopt when it does.
std::optional<std::string> regexCompileError(std::string_view pattern);

// True when `pattern` matches somewhere in `subject`; false also when the
// pattern does not compile (callers check regexCompileError first).
bool regexSearch(std::string_view pattern, std::string_view subject);

}  // namespace canopy::config
