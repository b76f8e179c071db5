#include "core/routing/forwarded.h"

#include <algorithm>
#include <optional>

namespace canopy::routing {
namespace {

bool isUnspecified(const Address& address) {
    return std::all_of(address.bytes(), address.bytes() + address.byteLength(),
                       [](uint8_t byte) { return byte == 0; });
}

Result<std::string> headerName(const json::Value& value, std::string_view key) {
    if (!value.isString() || value.asString().empty()) {
        return Error{"forwarded: \"" + std::string(key) + "\" must be a non-empty string"};
    }
    return value.asString();
}

}  // namespace

Result<ForwardedRule> ForwardedRule::compile(const json::Value& value, bool legacy_client_ip) {
    if (!value.isObject()) {
        return Error{"forwarded: expected an object, got " + std::string(value.typeName())};
    }
    const json::Value* source = value.find("source");
    if (source == nullptr) {
        return Error{"forwarded: \"source\" is required"};
    }
    if (!source->isString() && !source->isArray()) {
        return Error{"forwarded: \"source\" must be a string or an array of strings"};
    }
    auto patterns = AddressPatternSet::compile(*source);
    if (!patterns) {
        return Error{"forwarded/source: " + patterns.error().message};
    }
    ForwardedRule rule(std::move(patterns.value()));
    for (const json::Member& member : value.asObject()) {
        const std::string& key = member.key;
        if (key == "source") {
            continue;
        }
        if (key == "recursive") {
            if (!member.value.isBool()) {
                return Error{"forwarded: \"recursive\" must be a boolean"};
            }
            rule.recursive_ = member.value.asBool();
        } else if (key == (legacy_client_ip ? "header" : "client_ip")) {
            auto name = headerName(member.value, key);
            if (!name) {
                return name.error();
            }
            rule.client_ip_header_ = std::move(name.value());
        } else if (key == "protocol" && !legacy_client_ip) {
            auto name = headerName(member.value, key);
            if (!name) {
                return name.error();
            }
            rule.protocol_header_ = std::move(name.value());
        } else {
            return Error{"forwarded: unknown option \"" + key + "\""};
        }
    }
    if (rule.client_ip_header_.empty() && rule.protocol_header_.empty()) {
        return Error{legacy_client_ip ? "client_ip: \"header\" is required"
                                      : "forwarded: \"client_ip\" or \"protocol\" is required"};
    }
    return rule;
}

void ForwardedRule::apply(RequestView& request) const {
    if (!source_.matches(request.remote)) {
        return;
    }
    if (!protocol_header_.empty()) {
        const Header* last = nullptr;
        for (const Header& header : request.headers) {
            if (equalsIgnoreCase(header.name, protocol_header_)) {
                last = &header;
            }
        }
        if (last != nullptr) {
            if (equalsIgnoreCase(last->value, "http")) {
                request.scheme = Scheme::Http;
            } else if (equalsIgnoreCase(last->value, "https") ||
                       equalsIgnoreCase(last->value, "on")) {
                request.scheme = Scheme::Https;
            }
        }
    }
    if (client_ip_header_.empty()) {
        return;
    }
    walkClientIps(request.headers, [&](const Address& address) {
        request.remote = address;
        return recursive_ && source_.matches(address);
    });
}

template <typename Visit>
void ForwardedRule::walkClientIps(std::span<const Header> headers, Visit&& visit) const {
    // Right to left: the last header first, each header's last token first.
    for (size_t index = headers.size(); index-- > 0;) {
        const Header& header = headers[index];
        if (!equalsIgnoreCase(header.name, client_ip_header_)) {
            continue;
        }
        std::string_view rest = header.value;
        while (!rest.empty()) {
            size_t separator = rest.find_last_of(", \t");
            std::string_view token =
                separator == std::string_view::npos ? rest : rest.substr(separator + 1);
            rest = separator == std::string_view::npos ? std::string_view()
                                                       : rest.substr(0, separator);
            if (token.empty()) {
                continue;
            }
            std::optional<Address> address = Address::parseIp(token);
            if (!address || isUnspecified(*address)) {
                continue;
            }
            if (!visit(*address)) {
                return;
            }
        }
    }
}

std::vector<Address> ForwardedRule::vouchedChain(std::span<const Header> headers,
                                                 const Address& peer) const {
    std::vector<Address> chain;
    if (client_ip_header_.empty() || !source_.matches(peer)) {
        return chain;
    }
    walkClientIps(headers, [&](const Address& address) {
        chain.push_back(address);
        return recursive_ && source_.matches(address);
    });
    std::reverse(chain.begin(), chain.end());
    return chain;
}

}  // namespace canopy::routing
