#include "core/cli/config_path.h"

#include <fmt/format.h>

namespace canopy::cli {

Result<std::vector<std::string>> splitNaturalPath(std::string_view path) {
    std::vector<std::string> segments;
    std::string current;
    // A quoted "" is an (empty) key of its own, so "typed something" is kept
    // apart from "current is empty".
    bool started = false;
    bool quoted = false;
    for (size_t i = 0; i < path.size(); ++i) {
        char c = path[i];
        if (c == '\\') {
            if (i + 1 == path.size()) {
                return Error{fmt::format("the path \"{}\" ends with a lone '\\'", path)};
            }
            current += path[++i];
            started = true;
        } else if (c == '"') {
            quoted = !quoted;
            started = true;
        } else if (c == '/' && !quoted) {
            if (started) {
                segments.push_back(std::move(current));
                current.clear();
                started = false;
            }
        } else {
            current += c;
            started = true;
        }
    }
    if (quoted) {
        return Error{fmt::format("the path \"{}\" has an unterminated quote", path)};
    }
    if (started) {
        segments.push_back(std::move(current));
    }
    return segments;
}

std::string percentEncode(std::string_view segment) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string encoded;
    encoded.reserve(segment.size());
    for (char c : segment) {
        auto byte = static_cast<unsigned char>(c);
        bool unreserved = (byte >= 'A' && byte <= 'Z') || (byte >= 'a' && byte <= 'z') ||
                          (byte >= '0' && byte <= '9') || byte == '-' || byte == '.' ||
                          byte == '_' || byte == '~';
        if (unreserved) {
            encoded += c;
        } else {
            encoded += '%';
            encoded += kHex[byte >> 4];
            encoded += kHex[byte & 0xF];
        }
    }
    return encoded;
}

Result<std::string> requestTarget(std::string_view root, std::string_view path) {
    auto segments = splitNaturalPath(path);
    if (!segments) {
        return segments.error();
    }
    std::string target(root);
    for (const std::string& segment : *segments) {
        target += '/';
        target += percentEncode(segment);
    }
    return target;
}

}  // namespace canopy::cli
