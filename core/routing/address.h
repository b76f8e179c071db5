#pragma once

// One end of a connection as routing sees it: a Unix socket or an IP
// address with its port. Small and trivially copyable, so a RequestView can
// hold two of them without allocating.

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace canopy::routing {

class Address {
  public:
    enum class Family : uint8_t { None, Unix, IPv4, IPv6 };

    Address() = default;  // Family::None: matches no address pattern

    static Address unixSocket();
    static Address ipv4(const std::array<uint8_t, 4>& bytes, uint16_t port);
    static Address ipv6(const std::array<uint8_t, 16>& bytes, uint16_t port);

    // From what accept(2)/getsockname(2) filled in; nullopt for another
    // family or a truncated length. AF_UNIX gives unixSocket().
    static std::optional<Address> fromSockaddr(const sockaddr* address, socklen_t length);

    // An IP literal without port: "192.0.2.1", "2001:db8::1" or
    // "[2001:db8::1]", as found in X-Forwarded-For. Port 0.
    static std::optional<Address> parseIp(std::string_view text);

    Family family() const { return family_; }
    bool isIp() const { return family_ == Family::IPv4 || family_ == Family::IPv6; }
    // 4 bytes for IPv4, 16 for IPv6 (network order); empty otherwise.
    const uint8_t* bytes() const { return bytes_.data(); }
    size_t byteLength() const;
    uint16_t port() const { return port_; }

    // Text without the port, as $remote_addr shows it: "192.0.2.1",
    // "2001:db8::1", "unix:" for a Unix socket, "" for None.
    void appendText(std::string& out) const;
    std::string text() const;

    bool operator==(const Address& other) const = default;

  private:
    Family family_ = Family::None;
    uint16_t port_ = 0;
    std::array<uint8_t, 16> bytes_{};
};

}  // namespace canopy::routing
