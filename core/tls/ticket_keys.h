#pragma once

// Session ticket keys given in a listener's tls.session.tickets: each a
// base64 string of 48 or 80 bytes, laid out as nginx and Unit read them
// (so a cluster can share keys with them):
//   48 bytes: name (16) | AES-128-CBC key (16) | HMAC-SHA256 secret (16)
//   80 bytes: name (16) | HMAC-SHA256 secret (32) | AES-256-CBC key (32)

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "core/base/result.h"
#include "core/json/value.h"

namespace canopy::tls {

struct TicketKey {
    std::array<unsigned char, 16> name{};
    std::vector<unsigned char> aes_key;      // 16 or 32 bytes
    std::vector<unsigned char> hmac_secret;  // 16 or 32 bytes
};

// Decodes one key; Error::message says why it is not one.
Result<TicketKey> decodeTicketKey(std::string_view base64);

// The keys of a `tickets` value that is a string or an array of strings,
// the key that issues new tickets first. Unit's rule: in an array the last
// key issues, and every key decrypts (so a key being retired stays at the
// front of the array until its tickets expire).
Result<std::vector<TicketKey>> parseTicketKeys(const json::Value& tickets);

}  // namespace canopy::tls
