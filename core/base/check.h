#pragma once

// Invariants that cannot fail after start-up are checked, and a broken one
// ends the process with a message rather than corrupting state.

#include <string_view>

namespace canopy {

[[noreturn]] void checkFailed(const char* file, int line, const char* condition,
                              std::string_view message);

}  // namespace canopy

#define CANOPY_CHECK(condition, message)                                      \
    do {                                                                      \
        if (!(condition)) [[unlikely]] {                                      \
            ::canopy::checkFailed(__FILE__, __LINE__, #condition, (message)); \
        }                                                                     \
    } while (false)
