#include "core/routing/address_pattern.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>

namespace canopy::routing {
namespace {

std::optional<uint32_t> parseNumber(std::string_view text, uint32_t max) {
    if (text.empty() || text.size() > 5) {
        return std::nullopt;
    }
    uint32_t value = 0;
    for (char character : text) {
        if (character < '0' || character > '9') {
            return std::nullopt;
        }
        value = value * 10 + static_cast<uint32_t>(character - '0');
    }
    if (value > max) {
        return std::nullopt;
    }
    return value;
}

Result<std::pair<uint16_t, uint16_t>> parsePorts(std::string_view text) {
    size_t dash = text.find('-');
    auto first = parseNumber(text.substr(0, dash), 65535);
    auto last = dash == std::string_view::npos ? first : parseNumber(text.substr(dash + 1), 65535);
    if (!first || !last || *last < *first) {
        return Error{"invalid port or port range \"" + std::string(text) + "\""};
    }
    return std::pair<uint16_t, uint16_t>(static_cast<uint16_t>(*first),
                                         static_cast<uint16_t>(*last));
}

struct IpBounds {
    Address::Family family;
    std::array<uint8_t, 16> first{};
    std::array<uint8_t, 16> last{};
};

std::optional<Address> parseFamily(std::string_view text, Address::Family family) {
    auto address = Address::parseIp(text);
    if (!address || address->family() != family) {
        return std::nullopt;
    }
    return address;
}

// "a", "a-b" or "a/n" of one family.
Result<IpBounds> parseIpPart(std::string_view text, Address::Family family) {
    auto invalid = [&] { return Error{"invalid address \"" + std::string(text) + "\""}; };
    IpBounds bounds{family};
    size_t length = family == Address::Family::IPv4 ? 4 : 16;
    if (size_t slash = text.find('/'); slash != std::string_view::npos) {
        auto base = parseFamily(text.substr(0, slash), family);
        auto prefix = parseNumber(text.substr(slash + 1), static_cast<uint32_t>(length * 8));
        if (!base || !prefix) {
            return invalid();
        }
        for (size_t index = 0; index < length; ++index) {
            // Bits of this byte inside the prefix.
            uint32_t kept = std::clamp<int64_t>(
                static_cast<int64_t>(*prefix) - static_cast<int64_t>(index * 8), 0, 8);
            auto mask = static_cast<uint8_t>(kept == 0 ? 0 : 0xff << (8 - kept));
            bounds.first[index] = base->bytes()[index] & mask;
            bounds.last[index] = static_cast<uint8_t>(base->bytes()[index] | ~mask);
        }
        return bounds;
    }
    if (size_t dash = text.find('-'); dash != std::string_view::npos) {
        auto first = parseFamily(text.substr(0, dash), family);
        auto last = parseFamily(text.substr(dash + 1), family);
        if (!first || !last || std::memcmp(first->bytes(), last->bytes(), length) > 0) {
            return invalid();
        }
        std::memcpy(bounds.first.data(), first->bytes(), length);
        std::memcpy(bounds.last.data(), last->bytes(), length);
        return bounds;
    }
    auto address = parseFamily(text, family);
    if (!address) {
        return invalid();
    }
    std::memcpy(bounds.first.data(), address->bytes(), length);
    bounds.last = bounds.first;
    return bounds;
}

}  // namespace

Result<AddressPattern> AddressPattern::compile(std::string_view text) {
    AddressPattern pattern;
    std::string_view original = text;
    if (text.starts_with('!')) {
        pattern.negative_ = true;
        text.remove_prefix(1);
    }
    if (text == "unix") {
        pattern.kind_ = Kind::Unix;
        return pattern;
    }
    if (text.empty() || text == "*") {
        return Error{"invalid address pattern \"" + std::string(original) + "\""};
    }
    std::string_view ip;
    std::string_view ports;
    Address::Family family = Address::Family::IPv4;
    bool any_address = text.starts_with("*:");
    if (any_address) {
        ports = text.substr(2);
    } else if (text.starts_with('[')) {
        size_t close = text.find(']');
        if (close == std::string_view::npos) {
            return Error{"invalid address pattern \"" + std::string(original) + "\""};
        }
        ip = text.substr(1, close - 1);
        std::string_view rest = text.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') {
                return Error{"invalid address pattern \"" + std::string(original) + "\""};
            }
            ports = rest.substr(1);
            if (ports.empty()) {
                return Error{"invalid address pattern \"" + std::string(original) + "\""};
            }
        }
        family = Address::Family::IPv6;
    } else {
        size_t colons = static_cast<size_t>(std::count(text.begin(), text.end(), ':'));
        if (colons > 1) {
            ip = text;
            family = Address::Family::IPv6;
        } else if (colons == 1) {
            size_t colon = text.find(':');
            ip = text.substr(0, colon);
            ports = text.substr(colon + 1);
            if (ports.empty()) {
                return Error{"invalid address pattern \"" + std::string(original) + "\""};
            }
        } else {
            ip = text;
        }
    }
    if (!ports.empty() || any_address) {
        auto range = parsePorts(ports);
        if (!range) {
            return range.error();
        }
        pattern.port_first_ = range->first;
        pattern.port_last_ = range->second;
    }
    if (any_address) {
        pattern.kind_ = Kind::AnyAddress;
        return pattern;
    }
    auto bounds = parseIpPart(ip, family);
    if (!bounds) {
        return bounds.error();
    }
    pattern.kind_ = Kind::Range;
    pattern.family_ = bounds->family;
    pattern.first_ = bounds->first;
    pattern.last_ = bounds->last;
    return pattern;
}

bool AddressPattern::bodyMatches(const Address& address) const {
    switch (kind_) {
        case Kind::Unix:
            return address.family() == Address::Family::Unix;
        case Kind::AnyAddress:
            return address.isIp() && address.port() >= port_first_ && address.port() <= port_last_;
        case Kind::Range: {
            if (address.family() != family_) {
                return false;
            }
            size_t length = address.byteLength();
            return std::memcmp(address.bytes(), first_.data(), length) >= 0 &&
                   std::memcmp(address.bytes(), last_.data(), length) <= 0 &&
                   address.port() >= port_first_ && address.port() <= port_last_;
        }
    }
    return false;
}

Result<AddressPatternSet> AddressPatternSet::compile(const json::Value& value) {
    auto list = PatternList<AddressPattern>::compile(
        value, "an address pattern",
        [](std::string_view text) { return AddressPattern::compile(text); });
    if (!list) {
        return list.error();
    }
    return AddressPatternSet(std::move(*list));
}

}  // namespace canopy::routing
