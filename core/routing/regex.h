#pragma once

// A PCRE2 regular expression compiled once and searched from any thread.
// Only regex.cpp sees PCRE2's C API. Patterns are UTF-8, case-sensitive and
// unanchored, as Unit's router uses them; subjects need not be valid UTF-8
// (request bytes are whatever the client sent).

#include <memory>
#include <string_view>

#include "core/base/result.h"

namespace canopy::routing {

class Regex {
  public:
    // Compiles (and JIT-compiles when the library can); the error names the
    // offset, like validation does.
    static Result<Regex> compile(std::string_view pattern);

    // True when the expression matches somewhere in `subject`. Thread-safe:
    // the compiled code is immutable and match data is per thread.
    bool search(std::string_view subject) const;

  private:
    struct Code;
    explicit Regex(std::shared_ptr<const Code> code) : code_(std::move(code)) {}
    // Shared so that copies of a compiled route table stay cheap.
    std::shared_ptr<const Code> code_;
};

}  // namespace canopy::routing
