#pragma once

// The PEM bundle a client uploads with PUT /certificates/<name>: one private
// key and its certificate chain. Inspecting a bundle checks it the way the
// control API needs and describes it as the info object GET answers.

#include <string_view>

#include "core/base/result.h"
#include "core/json/value.h"

namespace canopy::tls {

// Checks `pem` and returns its info object:
//   {"key": "RSA (2048 bits)" | "DH (N bits)" | "ECDH" | "unknown",
//    "chain": [{"subject": {...}, "issuer": {...},
//               "validity": {"since": "...", "until": "..."}}, ...]}
// Subject and issuer hold the present ones of common_name, alt_names (DNS
// names of the subject/issuer alternative-name extension, when it exists),
// country, state_or_province, locality, organization, department, in that
// order. Dates are in OpenSSL's "Mon DD HH:MM:SS YYYY GMT" form.
//
// The bundle must hold exactly one unencrypted private key and one or more
// certificates, leaf first, then each issuer (the issuer name of each
// certificate equals the subject name of the next); the key must match the
// leaf's public key. "EC PARAMETERS" blocks are ignored; any other PEM block
// is refused. On failure, Error::message is one sentence saying why, fit for
// the "detail" of a 400 `Invalid certificate.` answer.
//
// Thread-safe. Clears the calling thread's OpenSSL error queue on entry and
// on return.
Result<json::Value> inspectCertificateBundle(std::string_view pem);

}  // namespace canopy::tls
