#include "core/json/utf8.h"

namespace canopy::json {

namespace {

bool inRange(std::string_view text, size_t offset, unsigned char low, unsigned char high) {
    if (offset >= text.size()) {
        return false;
    }
    auto byte = static_cast<unsigned char>(text[offset]);
    return byte >= low && byte <= high;
}

}  // namespace

size_t utf8SequenceLength(std::string_view text, size_t offset) {
    auto lead = static_cast<unsigned char>(text[offset]);
    if (lead < 0x80) {
        return 1;
    }
    // The second byte's range depends on the lead byte: that is what rules out
    // overlong forms (E0, F0), UTF-16 surrogates (ED) and values past U+10FFFF
    // (F4); C0, C1 and F5-FF never start a sequence.
    if (lead >= 0xC2 && lead <= 0xDF) {
        return inRange(text, offset + 1, 0x80, 0xBF) ? 2 : 0;
    }
    if (lead >= 0xE0 && lead <= 0xEF) {
        unsigned char low = lead == 0xE0 ? 0xA0 : 0x80;
        unsigned char high = lead == 0xED ? 0x9F : 0xBF;
        return inRange(text, offset + 1, low, high) && inRange(text, offset + 2, 0x80, 0xBF) ? 3
                                                                                             : 0;
    }
    if (lead >= 0xF0 && lead <= 0xF4) {
        unsigned char low = lead == 0xF0 ? 0x90 : 0x80;
        unsigned char high = lead == 0xF4 ? 0x8F : 0xBF;
        return inRange(text, offset + 1, low, high) && inRange(text, offset + 2, 0x80, 0xBF) &&
                       inRange(text, offset + 3, 0x80, 0xBF)
                   ? 4
                   : 0;
    }
    return 0;
}

std::optional<size_t> utf8Length(std::string_view text) {
    size_t characters = 0;
    size_t offset = 0;
    while (offset < text.size()) {
        size_t length = utf8SequenceLength(text, offset);
        if (length == 0) {
            return std::nullopt;
        }
        offset += length;
        ++characters;
    }
    return characters;
}

}  // namespace canopy::json
