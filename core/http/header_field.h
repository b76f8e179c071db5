#pragma once

// A header or trailer field as the parsers hand it out and the response
// serializer takes it: two views, no ownership.

#include <string_view>

namespace canopy::http {

struct HeaderField {
    std::string_view name;   // as sent (case preserved); compare case-insensitively
    std::string_view value;  // without leading and trailing whitespace
};

}  // namespace canopy::http
