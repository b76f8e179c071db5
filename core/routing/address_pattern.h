#pragma once

// Address patterns of `source`, `destination` and `forwarded.source`
// (config-schema §3.3), compiled once: "unix", IPv4 or IPv6 exact, range
// "a-b", CIDR "a/n", "*:PORT", each IP form with an optional ":PORT" or
// ":P1-P2" (IPv6 in brackets then), each optionally negated by '!'.
// Immutable once compiled; match from any thread.

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "core/base/result.h"
#include "core/json/value.h"
#include "core/routing/address.h"
#include "core/routing/pattern_list.h"

namespace canopy::routing {

class AddressPattern {
  public:
    static Result<AddressPattern> compile(std::string_view text);

    bool negative() const { return negative_; }
    // Whether the pattern, without its '!', matches. An IPv4 pattern never
    // matches an IPv6 address and the reverse (as in Unit, an IPv4-mapped
    // IPv6 address is IPv6); "*:PORT" matches either family; only "unix"
    // matches a Unix socket.
    bool bodyMatches(const Address& address) const;

  private:
    AddressPattern() = default;

    enum class Kind : uint8_t { Unix, AnyAddress, Range };

    bool negative_ = false;
    Kind kind_ = Kind::AnyAddress;
    Address::Family family_ = Address::Family::None;  // for Range
    // Inclusive bounds in network byte order; CIDR and exact addresses
    // become ranges too.
    std::array<uint8_t, 16> first_{};
    std::array<uint8_t, 16> last_{};
    uint16_t port_first_ = 0;
    uint16_t port_last_ = 65535;
};

// A string or an array of strings, with the array rule of §3.2.
class AddressPatternSet {
  public:
    static Result<AddressPatternSet> compile(const json::Value& value);

    bool matches(const Address& address) const { return list_.matches(address); }

  private:
    explicit AddressPatternSet(PatternList<AddressPattern> list) : list_(std::move(list)) {}

    PatternList<AddressPattern> list_;
};

}  // namespace canopy::routing
