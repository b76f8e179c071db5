#pragma once

namespace canopy {

// The value of one hexadecimal digit, or -1: for percent-decoding and
// \uXXXX escapes alike.
constexpr int hexDigitValue(char character) {
    if (character >= '0' && character <= '9') {
        return character - '0';
    }
    if (character >= 'a' && character <= 'f') {
        return character - 'a' + 10;
    }
    if (character >= 'A' && character <= 'F') {
        return character - 'A' + 10;
    }
    return -1;
}

}  // namespace canopy
