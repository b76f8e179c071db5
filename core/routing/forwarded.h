#pragma once

// A listener's `forwarded` object (config-schema §2.2), or its legacy
// `client_ip` form, compiled once: when the peer is a trusted proxy, the
// client address comes from a header such as X-Forwarded-For and the scheme
// from one such as X-Forwarded-Proto. Immutable once compiled; apply from
// any thread, each call with its own request.

#include <span>
#include <string>
#include <vector>

#include "core/base/result.h"
#include "core/json/value.h"
#include "core/routing/address_pattern.h"
#include "core/routing/request_view.h"

namespace canopy::routing {

class ForwardedRule {
  public:
    // `value` is `{"client_ip": H, "protocol": H, "source": P, "recursive":
    // b}` or, with `legacy_client_ip`, `{"header": H, "source": P,
    // "recursive": b}`.
    static Result<ForwardedRule> compile(const json::Value& value, bool legacy_client_ip = false);

    // When `request.remote` (the peer) matches `source`: sets `remote` from
    // the client-ip header and `scheme` from the protocol header. Addresses
    // are read right to left over every instance of the header, split at
    // commas and spaces; unparsable and unspecified ones are skipped. Without
    // `recursive` the first valid one wins; with it the walk goes on while the
    // address found also matches `source`. The new address has port 0.
    // Protocol: the last instance of the header; "http" means plain, "https"
    // or "on" TLS (case-insensitive); anything else changes nothing. Call
    // once per request, before routing; then forgetComputed() is not needed.
    void apply(RequestView& request) const;

    // For a proxied request's X-Forwarded-For: the addresses of the
    // client-ip header this rule vouches for when `peer` is trusted — the one
    // apply() takes and, with `recursive`, the trusted proxies right of it —
    // in header order (left to right). Empty when `peer` does not match
    // `source` or there is no client-ip header: then nothing the client sent
    // is believed.
    std::vector<Address> vouchedChain(std::span<const Header> headers, const Address& peer) const;

  private:
    // Walks the client-ip header's addresses right to left, from the last
    // header, calling `visit(address)` for each valid one until it returns
    // false.
    template <typename Visit>
    void walkClientIps(std::span<const Header> headers, Visit&& visit) const;

    explicit ForwardedRule(AddressPatternSet source) : source_(std::move(source)) {}

    AddressPatternSet source_;
    std::string client_ip_header_;  // "" when absent
    std::string protocol_header_;   // "" when absent
    bool recursive_ = false;
};

}  // namespace canopy::routing
