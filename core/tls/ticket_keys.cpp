#include "core/tls/ticket_keys.h"

#include <fmt/format.h>

#include <algorithm>
#include <optional>

namespace canopy::tls {
namespace {

int sextet(char character) {
    if (character >= 'A' && character <= 'Z') {
        return character - 'A';
    }
    if (character >= 'a' && character <= 'z') {
        return character - 'a' + 26;
    }
    if (character >= '0' && character <= '9') {
        return character - '0' + 52;
    }
    if (character == '+') {
        return 62;
    }
    if (character == '/') {
        return 63;
    }
    return -1;
}

// Standard base64 with padding, nothing else (no line breaks, no spaces).
std::optional<std::vector<unsigned char>> decodeBase64(std::string_view text) {
    if (text.empty() || text.size() % 4 != 0) {
        return std::nullopt;
    }
    size_t padding = 0;
    if (text.ends_with("==")) {
        padding = 2;
    } else if (text.ends_with('=')) {
        padding = 1;
    }
    std::vector<unsigned char> bytes;
    bytes.reserve(text.size() / 4 * 3);
    for (size_t group = 0; group < text.size(); group += 4) {
        uint32_t bits = 0;
        for (size_t offset = 0; offset < 4; ++offset) {
            char character = text[group + offset];
            bool padded = group + 4 == text.size() && offset >= 4 - padding;
            int value = padded ? (character == '=' ? 0 : -1) : sextet(character);
            if (value < 0) {
                return std::nullopt;
            }
            bits = (bits << 6) | static_cast<uint32_t>(value);
        }
        bytes.push_back(static_cast<unsigned char>(bits >> 16));
        bytes.push_back(static_cast<unsigned char>(bits >> 8));
        bytes.push_back(static_cast<unsigned char>(bits));
    }
    bytes.resize(bytes.size() - padding);
    return bytes;
}

}  // namespace

Result<TicketKey> decodeTicketKey(std::string_view base64) {
    auto bytes = decodeBase64(base64);
    if (!bytes) {
        return Error{"a session ticket key is not valid base64"};
    }
    if (bytes->size() != 48 && bytes->size() != 80) {
        return Error{
            fmt::format("a session ticket key must be 48 or 80 bytes, not {}", bytes->size())};
    }
    TicketKey key;
    auto at = [&bytes](size_t offset) { return bytes->begin() + static_cast<ptrdiff_t>(offset); };
    std::copy(at(0), at(16), key.name.begin());
    if (bytes->size() == 48) {
        key.aes_key.assign(at(16), at(32));
        key.hmac_secret.assign(at(32), at(48));
    } else {
        key.hmac_secret.assign(at(16), at(48));
        key.aes_key.assign(at(48), at(80));
    }
    return key;
}

Result<std::vector<TicketKey>> parseTicketKeys(const json::Value& tickets) {
    std::vector<TicketKey> keys;
    if (tickets.isString()) {
        auto key = decodeTicketKey(tickets.asString());
        if (!key) {
            return key.error();
        }
        keys.push_back(std::move(*key));
        return keys;
    }
    if (!tickets.isArray() || tickets.asArray().empty()) {
        return Error{"session tickets must be a key or a non-empty array of keys"};
    }
    const auto& items = tickets.asArray();
    for (auto item = items.rbegin(); item != items.rend(); ++item) {
        if (!item->isString()) {
            return Error{"a session ticket key must be a string"};
        }
        auto key = decodeTicketKey(item->asString());
        if (!key) {
            return key.error();
        }
        keys.push_back(std::move(*key));
    }
    return keys;
}

}  // namespace canopy::tls
