#include "core/routing/request_target.h"

#include "core/base/hex.h"

namespace canopy::routing {
namespace {

char lowerAscii(char character) {
    return character >= 'A' && character <= 'Z' ? static_cast<char>(character - 'A' + 'a')
                                                : character;
}

bool needsEscapeInLocation(unsigned char character) {
    if (character <= 0x20 || character >= 0x7f) {
        return true;
    }
    switch (character) {
        case '"':
        case '<':
        case '>':
        case '\\':
        case '^':
        case '`':
        case '{':
        case '|':
        case '}':
            return true;
        default:
            return false;
    }
}

bool startsEscape(std::string_view text, size_t index) {
    return index + 2 < text.size() && hexDigitValue(text[index + 1]) >= 0 &&
           hexDigitValue(text[index + 2]) >= 0;
}

}  // namespace

void percentDecodeLenient(std::string_view text, bool plus_as_space, std::string& out) {
    for (size_t index = 0; index < text.size(); ++index) {
        char character = text[index];
        if (character == '%' && startsEscape(text, index)) {
            out += static_cast<char>(hexDigitValue(text[index + 1]) * 16 +
                                     hexDigitValue(text[index + 2]));
            index += 2;
        } else if (character == '+' && plus_as_space) {
            out += ' ';
        } else {
            out += character;
        }
    }
}

std::optional<std::string> percentDecode(std::string_view text, bool plus_as_space) {
    std::string out;
    out.reserve(text.size());
    for (size_t index = 0; index < text.size(); ++index) {
        char character = text[index];
        if (character == '%') {
            if (!startsEscape(text, index)) {
                return std::nullopt;
            }
            out += static_cast<char>(hexDigitValue(text[index + 1]) * 16 +
                                     hexDigitValue(text[index + 2]));
            index += 2;
        } else if (character == '+' && plus_as_space) {
            out += ' ';
        } else {
            out += character;
        }
    }
    return out;
}

TargetParts splitTarget(std::string_view target) {
    if (size_t hash = target.find('#'); hash != std::string_view::npos) {
        target = target.substr(0, hash);
    }
    TargetParts parts;
    size_t question = target.find('?');
    if (question == std::string_view::npos) {
        parts.path = target;
        return parts;
    }
    parts.path = target.substr(0, question);
    parts.query = target.substr(question + 1);
    parts.has_query = true;
    return parts;
}

std::string_view pathErrorText(PathError error) {
    switch (error) {
        case PathError::NotAbsolute:
            return "the path does not start with \"/\"";
        case PathError::BadEscape:
            return "invalid percent-encoding in the path";
        case PathError::NulByte:
            return "a NUL byte in the path";
        case PathError::AboveRoot:
            return "\"..\" above the root in the path";
    }
    return "invalid path";
}

std::variant<std::string, PathError> normalizePath(std::string_view raw_path) {
    if (!raw_path.starts_with('/')) {
        return PathError::NotAbsolute;
    }
    // Decode first, then normalize the decoded text: Unit's parser feeds a
    // decoded byte back into its state machine, so "%2F" separates and
    // "%2E%2E" climbs just like their plain forms.
    std::string decoded;
    decoded.reserve(raw_path.size());
    for (size_t index = 0; index < raw_path.size(); ++index) {
        char character = raw_path[index];
        if (character == '%') {
            if (!startsEscape(raw_path, index)) {
                return PathError::BadEscape;
            }
            character = static_cast<char>(hexDigitValue(raw_path[index + 1]) * 16 +
                                          hexDigitValue(raw_path[index + 2]));
            index += 2;
        }
        if (character == '\0') {
            return PathError::NulByte;
        }
        decoded += character;
    }

    // Segment by segment; `out` always starts with '/' and never ends with
    // one except when the input's last segment was a directory marker.
    std::string out;
    out.reserve(decoded.size());
    size_t index = 0;
    while (index < decoded.size()) {
        // decoded[index] == '/'; skip the run of slashes.
        while (index < decoded.size() && decoded[index] == '/') {
            ++index;
        }
        if (index == decoded.size()) {
            out += '/';  // a trailing slash names a directory; keep it
            break;
        }
        size_t end = decoded.find('/', index);
        if (end == std::string::npos) {
            end = decoded.size();
        }
        std::string_view segment(decoded.data() + index, end - index);
        bool last = end == decoded.size();
        if (segment == ".") {
            if (last) {
                out += '/';
            }
        } else if (segment == "..") {
            if (out.empty()) {
                return PathError::AboveRoot;
            }
            out.resize(out.rfind('/'));
            if (last) {
                out += '/';
            }
        } else if (!segment.empty() || last) {
            out += '/';
            out += segment;
        }
        index = end;
    }
    if (out.empty()) {
        out.push_back('/');
    }
    return out;
}

std::optional<std::string> normalizeHost(std::string_view host) {
    std::string_view name = host;
    if (host.starts_with('[')) {
        size_t close = host.find(']');
        if (close == std::string_view::npos) {
            return std::nullopt;
        }
        name = host.substr(0, close + 1);
        std::string_view rest = host.substr(close + 1);
        if (!rest.empty() && rest.front() != ':') {
            return std::nullopt;
        }
    } else if (size_t colon = host.find(':'); colon != std::string_view::npos) {
        name = host.substr(0, colon);
    }
    std::string out;
    out.reserve(name.size());
    char previous = '\0';
    for (char character : name) {
        auto byte = static_cast<unsigned char>(character);
        if (byte < 0x20 || byte == 0x7f || character == '/' || character == '\\') {
            return std::nullopt;
        }
        if (character == '.' && previous == '.') {
            return std::nullopt;
        }
        out += lowerAscii(character);
        previous = character;
    }
    if (out.ends_with('.')) {
        out.pop_back();
    }
    return out;
}

std::string encodeLocation(std::string_view location) {
    bool encoded = true;
    for (size_t index = 0; index < location.size() && encoded; ++index) {
        auto character = static_cast<unsigned char>(location[index]);
        if (character == '%') {
            encoded = startsEscape(location, index);
        } else if (needsEscapeInLocation(character)) {
            encoded = false;
        }
    }
    if (encoded) {
        return std::string(location);
    }
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(location.size() + 16);
    for (size_t index = 0; index < location.size(); ++index) {
        auto character = static_cast<unsigned char>(location[index]);
        bool escape =
            character == '%' ? !startsEscape(location, index) : needsEscapeInLocation(character);
        if (escape) {
            out += '%';
            out += kHex[character >> 4];
            out += kHex[character & 0xf];
        } else {
            out += static_cast<char>(character);
        }
    }
    return out;
}

}  // namespace canopy::routing
