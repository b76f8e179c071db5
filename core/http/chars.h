#pragma once

// Byte classes of RFC 9110/9112 as 256-entry tables, internal to canopy_http:
// the parsers test every byte of a head, and one load and mask per byte is
// what keeps them competitive with nginx's hand-written state machines.

#include <array>
#include <cstdint>
#include <string_view>

namespace canopy::http::chars {

enum : uint8_t {
    kToken = 1 << 0,       // tchar (RFC 9110 §5.6.2): methods, field names, codings
    kTarget = 1 << 1,      // bytes allowed in a request-target (see README: lenient)
    kFieldValue = 1 << 2,  // field-vchar / SP / HTAB / obs-text
    kSafeName = 1 << 3,    // letters, digits and '-': what discard_unsafe_fields keeps
    kHex = 1 << 4,         // HEXDIG
    kHost = 1 << 5,        // bytes allowed in a Host value (reg-name, IP literal, port)
    kQuotedText = 1 << 6,  // qdtext of a quoted-string
};

constexpr std::array<uint8_t, 256> makeTable() {
    std::array<uint8_t, 256> table{};
    for (int c = 0; c < 256; ++c) {
        uint8_t bits = 0;
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        bool digit = c >= '0' && c <= '9';
        bool token_symbol = std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) !=
                            std::string_view::npos;
        if (alpha || digit || token_symbol) {
            bits |= kToken;
        }
        // Visible ASCII and raw UTF-8 bytes; never CTLs, SP or DEL.
        if ((c > 0x20 && c < 0x7f) || c >= 0x80) {
            bits |= kTarget;
            bits |= kFieldValue;
        }
        if (c == ' ' || c == '\t') {
            bits |= kFieldValue;
        }
        if (alpha || digit || c == '-') {
            bits |= kSafeName;
        }
        if (digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) {
            bits |= kHex;
        }
        bool host_symbol = std::string_view("-._~!$&'()*+,;=:[]%").find(static_cast<char>(c)) !=
                           std::string_view::npos;
        if (alpha || digit || host_symbol || c >= 0x80) {
            bits |= kHost;
        }
        if (c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) ||
            (c >= 0x5d && c <= 0x7e) || c >= 0x80) {
            bits |= kQuotedText;
        }
        table[static_cast<size_t>(c)] = bits;
    }
    return table;
}

inline constexpr std::array<uint8_t, 256> kTable = makeTable();

inline bool is(char c, uint8_t cls) {
    return (kTable[static_cast<unsigned char>(c)] & cls) != 0;
}

// Index of the first byte of `text` outside `cls`, or text.size().
inline size_t span(std::string_view text, uint8_t cls) {
    size_t i = 0;
    while (i < text.size() && is(text[i], cls)) {
        ++i;
    }
    return i;
}

inline char lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c;
}

// ASCII case-insensitive equality; `lower_literal` must be lower case.
inline bool equalsLower(std::string_view text, std::string_view lower_literal) {
    if (text.size() != lower_literal.size()) {
        return false;
    }
    for (size_t i = 0; i < text.size(); ++i) {
        if (lower(text[i]) != lower_literal[i]) {
            return false;
        }
    }
    return true;
}

inline std::string_view trimOws(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
        text.remove_prefix(1);
    }
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) {
        text.remove_suffix(1);
    }
    return text;
}

// Calls `visit(element)` for each non-empty, OWS-trimmed element of a
// comma-separated list (RFC 9110 §5.6.1: empty elements are ignored). Stops
// early when `visit` returns false; returns false then.
template <typename Visit>
bool forEachListElement(std::string_view list, Visit&& visit) {
    while (true) {
        size_t comma = list.find(',');
        std::string_view element = trimOws(list.substr(0, comma));
        if (!element.empty() && !visit(element)) {
            return false;
        }
        if (comma == std::string_view::npos) {
            return true;
        }
        list.remove_prefix(comma + 1);
    }
}

}  // namespace canopy::http::chars
