#include "core/routing/address.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cstring>

namespace canopy::routing {

Address Address::unixSocket() {
    Address address;
    address.family_ = Family::Unix;
    return address;
}

Address Address::ipv4(const std::array<uint8_t, 4>& bytes, uint16_t port) {
    Address address;
    address.family_ = Family::IPv4;
    address.port_ = port;
    std::memcpy(address.bytes_.data(), bytes.data(), bytes.size());
    return address;
}

Address Address::ipv6(const std::array<uint8_t, 16>& bytes, uint16_t port) {
    Address address;
    address.family_ = Family::IPv6;
    address.port_ = port;
    address.bytes_ = bytes;
    return address;
}

std::optional<Address> Address::fromSockaddr(const sockaddr* address, socklen_t length) {
    if (address == nullptr || length < static_cast<socklen_t>(sizeof(sa_family_t))) {
        return std::nullopt;
    }
    switch (address->sa_family) {
        case AF_UNIX:
            return unixSocket();
        case AF_INET: {
            if (length < static_cast<socklen_t>(sizeof(sockaddr_in))) {
                return std::nullopt;
            }
            sockaddr_in in;
            std::memcpy(&in, address, sizeof(in));
            std::array<uint8_t, 4> bytes;
            std::memcpy(bytes.data(), &in.sin_addr, bytes.size());
            return ipv4(bytes, ntohs(in.sin_port));
        }
        case AF_INET6: {
            if (length < static_cast<socklen_t>(sizeof(sockaddr_in6))) {
                return std::nullopt;
            }
            sockaddr_in6 in6;
            std::memcpy(&in6, address, sizeof(in6));
            std::array<uint8_t, 16> bytes;
            std::memcpy(bytes.data(), &in6.sin6_addr, bytes.size());
            return ipv6(bytes, ntohs(in6.sin6_port));
        }
        default:
            return std::nullopt;
    }
}

std::optional<Address> Address::parseIp(std::string_view text) {
    if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
        text = text.substr(1, text.size() - 2);
    }
    if (text.empty() || text.size() >= INET6_ADDRSTRLEN) {
        return std::nullopt;
    }
    char buffer[INET6_ADDRSTRLEN];
    std::memcpy(buffer, text.data(), text.size());
    buffer[text.size()] = '\0';
    if (text.find(':') == std::string_view::npos) {
        std::array<uint8_t, 4> bytes;
        if (inet_pton(AF_INET, buffer, bytes.data()) != 1) {
            return std::nullopt;
        }
        return ipv4(bytes, 0);
    }
    std::array<uint8_t, 16> bytes;
    if (inet_pton(AF_INET6, buffer, bytes.data()) != 1) {
        return std::nullopt;
    }
    return ipv6(bytes, 0);
}

size_t Address::byteLength() const {
    switch (family_) {
        case Family::IPv4:
            return 4;
        case Family::IPv6:
            return 16;
        default:
            return 0;
    }
}

void Address::appendText(std::string& out) const {
    char buffer[INET6_ADDRSTRLEN];
    switch (family_) {
        case Family::None:
            return;
        case Family::Unix:
            out += "unix:";
            return;
        case Family::IPv4:
            if (inet_ntop(AF_INET, bytes_.data(), buffer, sizeof(buffer)) != nullptr) {
                out += buffer;
            }
            return;
        case Family::IPv6:
            if (inet_ntop(AF_INET6, bytes_.data(), buffer, sizeof(buffer)) != nullptr) {
                out += buffer;
            }
            return;
    }
}

std::string Address::text() const {
    std::string out;
    appendText(out);
    return out;
}

}  // namespace canopy::routing
