#include "core/tls/server_name.h"

namespace canopy::tls {
namespace {

char lower(char character) {
    return character >= 'A' && character <= 'Z' ? static_cast<char>(character - 'A' + 'a')
                                                : character;
}

bool equalsIgnoringCase(std::string_view left, std::string_view right) {
    if (left.size() != right.size()) {
        return false;
    }
    for (size_t index = 0; index < left.size(); ++index) {
        if (lower(left[index]) != lower(right[index])) {
            return false;
        }
    }
    return true;
}

std::string_view withoutTrailingDot(std::string_view name) {
    if (!name.empty() && name.back() == '.') {
        name.remove_suffix(1);
    }
    return name;
}

bool isWildcard(std::string_view pattern) {
    return pattern.size() > 2 && pattern.starts_with("*.");
}

}  // namespace

bool serverNameMatches(std::string_view pattern, std::string_view host) {
    pattern = withoutTrailingDot(pattern);
    host = withoutTrailingDot(host);
    if (pattern.empty() || host.empty()) {
        return false;
    }
    if (!isWildcard(pattern)) {
        return equalsIgnoringCase(pattern, host);
    }
    // "*.example.com": the host's first label is replaced by the '*'; the
    // label must not be empty, and the rest must be the pattern's rest.
    size_t dot = host.find('.');
    if (dot == std::string_view::npos || dot == 0) {
        return false;
    }
    return equalsIgnoringCase(pattern.substr(1), host.substr(dot));
}

std::optional<size_t> chooseCertificate(const std::vector<std::vector<std::string>>& names,
                                        std::string_view host) {
    if (host.empty()) {
        return std::nullopt;
    }
    for (bool wildcards : {false, true}) {
        for (size_t index = 0; index < names.size(); ++index) {
            for (const auto& pattern : names[index]) {
                if (isWildcard(pattern) == wildcards && serverNameMatches(pattern, host)) {
                    return index;
                }
            }
        }
    }
    return std::nullopt;
}

}  // namespace canopy::tls
