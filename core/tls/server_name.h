#pragma once

// Choosing a listener's certificate by the server name a client asks for
// (SNI): the names a certificate answers to, and the match rules.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace canopy::tls {

// Whether `pattern`, a DNS name from a certificate, covers `host`. Both are
// compared without regard to ASCII case and a trailing dot. A pattern
// "*.example.com" covers exactly one more label ("a.example.com", not
// "example.com" nor "a.b.example.com"); a '*' anywhere else is literal.
bool serverNameMatches(std::string_view pattern, std::string_view host);

// The certificate for `host` among `names` (for each certificate, the names
// it answers to, in the listener's order): the first with an exact match,
// else the first with a wildcard match, else none (the caller then uses the
// first certificate, the default).
std::optional<size_t> chooseCertificate(const std::vector<std::vector<std::string>>& names,
                                        std::string_view host);

}  // namespace canopy::tls
