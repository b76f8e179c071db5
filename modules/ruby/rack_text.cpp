#include "rack_text.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>

namespace canopy::ruby {

void writeEnvKeyOfHeader(std::string_view name, char* out) {
    std::memcpy(out, "HTTP_", 5);
    out += 5;
    for (char c : name) {
        *out++ = c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
}

std::string envKeyOfHeader(std::string_view name) {
    std::string key(name.size() + 5, '\0');
    writeEnvKeyOfHeader(name, key.data());
    return key;
}

bool equalsIgnoringCase(std::string_view left, std::string_view right) {
    return left.size() == right.size() &&
           std::equal(left.begin(), left.end(), right.begin(), [](char a, char b) {
               return std::tolower(static_cast<unsigned char>(a)) ==
                      std::tolower(static_cast<unsigned char>(b));
           });
}

bool isContentHeader(std::string_view name) {
    return equalsIgnoringCase(name, "Content-Type") || equalsIgnoringCase(name, "Content-Length");
}

bool nextHeaderField(std::string_view& rest, std::string_view& field) {
    while (!rest.empty()) {
        size_t newline = rest.find('\n');
        field = rest.substr(0, newline);
        rest.remove_prefix(newline == std::string_view::npos ? rest.size() : newline + 1);
        if (!field.empty()) {
            return true;
        }
    }
    return false;
}

std::vector<std::string_view> splitHeaderValue(std::string_view value) {
    std::vector<std::string_view> fields;
    std::string_view field;
    while (nextHeaderField(value, field)) {
        fields.push_back(field);
    }
    return fields;
}

std::optional<uint16_t> statusFromText(std::string_view text) {
    if (text.size() < 3 || (text.size() > 3 && text[3] != ' ')) {
        return std::nullopt;
    }
    unsigned code = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + 3, code);
    if (error != std::errc() || end != text.data() + 3 || code < 100 || code > 999) {
        return std::nullopt;
    }
    return static_cast<uint16_t>(code);
}

std::optional<uint64_t> contentLengthFromText(std::string_view text) {
    uint64_t length = 0;
    if (text.empty() || text.front() < '0' || text.front() > '9') {
        return std::nullopt;
    }
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), length);
    if (error != std::errc() || end != text.data() + text.size()) {
        return std::nullopt;
    }
    return length;
}

}  // namespace canopy::ruby
