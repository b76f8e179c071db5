#include "core/routing/address_pattern.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cstring>

#include "tests/unit/routing/test_request.h"

namespace canopy::routing {
namespace {

using testing::address;

bool matches(std::string_view pattern, std::string_view subject) {
    auto compiled = AddressPattern::compile(pattern);
    EXPECT_TRUE(compiled.ok()) << pattern << ": "
                               << (compiled.ok() ? "" : compiled.error().message);
    return compiled.ok() && compiled->bodyMatches(address(subject)) != compiled->negative();
}

TEST(AddressTest, FromSockaddrAndText) {
    sockaddr_in in{};
    in.sin_family = AF_INET;
    in.sin_port = htons(8080);
    in.sin_addr.s_addr = htonl(0xC0000201);
    auto v4 = Address::fromSockaddr(reinterpret_cast<sockaddr*>(&in), sizeof(in));
    ASSERT_TRUE(v4.has_value());
    EXPECT_EQ(v4->family(), Address::Family::IPv4);
    EXPECT_EQ(v4->port(), 8080);
    EXPECT_EQ(v4->text(), "192.0.2.1");

    sockaddr_in6 in6{};
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(443);
    in6.sin6_addr = in6addr_loopback;
    auto v6 = Address::fromSockaddr(reinterpret_cast<sockaddr*>(&in6), sizeof(in6));
    ASSERT_TRUE(v6.has_value());
    EXPECT_EQ(v6->text(), "::1");
    EXPECT_EQ(v6->port(), 443);

    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    auto local = Address::fromSockaddr(reinterpret_cast<sockaddr*>(&un), sizeof(sa_family_t));
    ASSERT_TRUE(local.has_value());
    EXPECT_EQ(local->family(), Address::Family::Unix);
    EXPECT_EQ(local->text(), "unix:");

    EXPECT_FALSE(Address::fromSockaddr(reinterpret_cast<sockaddr*>(&in), 4).has_value());
    EXPECT_FALSE(Address::fromSockaddr(nullptr, 0).has_value());
    EXPECT_EQ(Address().text(), "");
}

TEST(AddressTest, ParseIp) {
    EXPECT_EQ(Address::parseIp("10.0.0.1")->text(), "10.0.0.1");
    EXPECT_EQ(Address::parseIp("[2001:db8::1]")->text(), "2001:db8::1");
    EXPECT_EQ(Address::parseIp("2001:DB8::1")->text(), "2001:db8::1");
    EXPECT_FALSE(Address::parseIp("10.0.0.256").has_value());
    EXPECT_FALSE(Address::parseIp("").has_value());
    EXPECT_FALSE(Address::parseIp("example.com").has_value());
    EXPECT_FALSE(Address::parseIp(std::string(100, '1')).has_value());
}

TEST(AddressPatternTest, Ipv4Forms) {
    EXPECT_TRUE(matches("192.0.2.1", "192.0.2.1:80"));
    EXPECT_FALSE(matches("192.0.2.1", "192.0.2.2:80"));
    EXPECT_TRUE(matches("192.0.2.0/24", "192.0.2.200:1"));
    EXPECT_FALSE(matches("192.0.2.0/24", "192.0.3.1:1"));
    EXPECT_TRUE(matches("192.0.2.77/24", "192.0.2.1:1"));  // host bits ignored
    EXPECT_TRUE(matches("10.0.0.0/8", "10.255.255.255:1"));
    EXPECT_TRUE(matches("0.0.0.0/0", "203.0.113.9:1"));
    EXPECT_TRUE(matches("10.0.0.0/31", "10.0.0.1:1"));
    EXPECT_FALSE(matches("10.0.0.0/31", "10.0.0.2:1"));
    EXPECT_TRUE(matches("10.0.0.5-10.0.1.5", "10.0.0.200:1"));
    EXPECT_TRUE(matches("10.0.0.5-10.0.1.5", "10.0.1.5:1"));
    EXPECT_FALSE(matches("10.0.0.5-10.0.1.5", "10.0.1.6:1"));
    EXPECT_FALSE(matches("10.0.0.5-10.0.1.5", "10.0.0.4:1"));
}

TEST(AddressPatternTest, Ports) {
    EXPECT_TRUE(matches("192.0.2.1:80", "192.0.2.1:80"));
    EXPECT_FALSE(matches("192.0.2.1:80", "192.0.2.1:81"));
    EXPECT_TRUE(matches("192.0.2.0/24:8000-8080", "192.0.2.9:8080"));
    EXPECT_FALSE(matches("192.0.2.0/24:8000-8080", "192.0.2.9:8081"));
    EXPECT_TRUE(matches("*:443", "198.51.100.1:443"));
    EXPECT_TRUE(matches("*:443", "[2001:db8::1]:443"));
    EXPECT_FALSE(matches("*:443", "198.51.100.1:80"));
    EXPECT_TRUE(matches("*:1000-2000", "198.51.100.1:1500"));
    EXPECT_FALSE(matches("*:443", "unix"));
}

TEST(AddressPatternTest, Ipv6Forms) {
    EXPECT_TRUE(matches("2001:db8::1", "[2001:db8::1]:1"));
    EXPECT_TRUE(matches("[2001:db8::1]", "[2001:db8::1]:1"));
    EXPECT_TRUE(matches("2001:db8::/32", "[2001:db8:ffff::1]:1"));
    EXPECT_FALSE(matches("2001:db8::/32", "[2001:db9::1]:1"));
    EXPECT_TRUE(matches("[2001:db8::/32]:80", "[2001:db8::5]:80"));
    EXPECT_FALSE(matches("[2001:db8::/32]:80", "[2001:db8::5]:81"));
    EXPECT_TRUE(matches("::1-::5", "[::3]:1"));
    EXPECT_FALSE(matches("::1-::5", "[::6]:1"));
    // Families never cross.
    EXPECT_FALSE(matches("0.0.0.0/0", "[::1]:1"));
    EXPECT_FALSE(matches("::/0", "127.0.0.1:1"));
    EXPECT_FALSE(matches("127.0.0.1", "[::ffff:127.0.0.1]:1"));
}

TEST(AddressPatternTest, UnixAndNegation) {
    EXPECT_TRUE(matches("unix", "unix"));
    EXPECT_FALSE(matches("unix", "127.0.0.1:1"));
    EXPECT_FALSE(matches("0.0.0.0/0", "unix"));
    EXPECT_TRUE(matches("!unix", "127.0.0.1:1"));
    EXPECT_FALSE(matches("!10.0.0.0/8", "10.1.1.1:1"));
    EXPECT_TRUE(matches("!10.0.0.0/8", "11.1.1.1:1"));
    // An address that is not set matches nothing.
    auto compiled = AddressPattern::compile("*:1-65535");
    ASSERT_TRUE(compiled.ok());
    EXPECT_FALSE(compiled->bodyMatches(Address()));
}

TEST(AddressPatternTest, InvalidPatternsAreErrors) {
    for (std::string_view bad : {"",
                                 "*",
                                 "!",
                                 "!*",
                                 "10.0.0.1/33",
                                 "10.0.0.2-10.0.0.1",
                                 "10.0.0.1:",
                                 "10.0.0.1:x",
                                 "10.0.0.1:70000",
                                 "10.0.0.1:90-80",
                                 "[::1",
                                 "[::1]x",
                                 "[::1]:",
                                 "::1/129",
                                 "*:",
                                 "example.com",
                                 "10.0.0.1-::1",
                                 "[10.0.0.1]",
                                 "1.2.3.4/",
                                 "1.2.3.4/-1"}) {
        EXPECT_FALSE(AddressPattern::compile(bad).ok()) << bad;
    }
}

TEST(AddressPatternSetTest, ArrayRule) {
    auto set = AddressPatternSet::compile(json::Array{"10.0.0.0/8", "!10.0.0.1", "unix"});
    ASSERT_TRUE(set.ok());
    EXPECT_TRUE(set->matches(address("10.2.3.4:1")));
    EXPECT_FALSE(set->matches(address("10.0.0.1:1")));
    EXPECT_TRUE(set->matches(address("unix")));
    EXPECT_FALSE(set->matches(address("11.0.0.1:1")));

    auto negatives = AddressPatternSet::compile(json::Array{"!10.0.0.0/8", "!unix"});
    ASSERT_TRUE(negatives.ok());
    EXPECT_TRUE(negatives->matches(address("11.0.0.1:1")));
    EXPECT_FALSE(negatives->matches(address("unix")));

    EXPECT_FALSE(AddressPatternSet::compile(json::Value(5)).ok());
    EXPECT_FALSE(AddressPatternSet::compile(json::Array{"10.0.0.1", json::Value()}).ok());
}

}  // namespace
}  // namespace canopy::routing
