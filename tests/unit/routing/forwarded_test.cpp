#include "core/routing/forwarded.h"

#include <gtest/gtest.h>

#include <string>
#include <variant>

#include "tests/unit/routing/test_request.h"

namespace canopy::routing {
namespace {

using testing::address;
using testing::TestRequest;

ForwardedRule rule(std::string_view text, bool legacy = false) {
    auto parsed = json::parse(text);
    auto compiled = ForwardedRule::compile(std::get<json::Value>(parsed), legacy);
    EXPECT_TRUE(compiled.ok()) << text << ": " << (compiled.ok() ? "" : compiled.error().message);
    return std::move(compiled.value());
}

TEST(ForwardedRuleTest, NonRecursiveTakesTheRightMostValidAddress) {
    ForwardedRule forwarded = rule(R"({"client_ip": "X-Forwarded-For", "source": "10.0.0.0/8"})");
    TestRequest request;
    request.header("X-Forwarded-For", "203.0.113.1, 198.51.100.2")
        .header("x-forwarded-for", "192.0.2.3 bogus 0.0.0.0")
        .remote(address("10.0.0.1:5000"));
    forwarded.apply(request.view());
    EXPECT_EQ(request.view().remote.text(), "192.0.2.3");
    EXPECT_EQ(request.view().remote.port(), 0);
}

TEST(ForwardedRuleTest, RecursiveWalksLeftWhileTrusted) {
    ForwardedRule forwarded = rule(
        R"({"client_ip": "X-Forwarded-For", "source": ["10.0.0.0/8", "2001:db8::/32"], "recursive": true})");
    TestRequest request;
    request.header("X-Forwarded-For", "203.0.113.1, 198.51.100.2, 10.0.0.7, [2001:db8::9]")
        .remote(address("10.0.0.1:5000"));
    forwarded.apply(request.view());
    EXPECT_EQ(request.view().remote.text(), "198.51.100.2");

    TestRequest all_trusted;
    all_trusted.header("X-Forwarded-For", "10.0.0.8, 10.0.0.7").remote(address("10.0.0.1:1"));
    forwarded.apply(all_trusted.view());
    EXPECT_EQ(all_trusted.view().remote.text(), "10.0.0.8");  // the left-most
}

TEST(ForwardedRuleTest, UntrustedPeersAndMissingHeadersChangeNothing) {
    ForwardedRule forwarded = rule(
        R"({"client_ip": "X-Forwarded-For", "protocol": "X-Forwarded-Proto", "source": "10.0.0.0/8"})");
    TestRequest untrusted;
    untrusted.header("X-Forwarded-For", "203.0.113.1")
        .header("X-Forwarded-Proto", "https")
        .remote(address("192.0.2.50:1"));
    forwarded.apply(untrusted.view());
    EXPECT_EQ(untrusted.view().remote.text(), "192.0.2.50");
    EXPECT_EQ(untrusted.view().scheme, Scheme::Http);

    TestRequest no_header;
    no_header.remote(address("10.0.0.1:1"));
    forwarded.apply(no_header.view());
    EXPECT_EQ(no_header.view().remote.text(), "10.0.0.1");

    TestRequest garbage;
    garbage.header("X-Forwarded-For", "unknown, ,").remote(address("10.0.0.1:1"));
    forwarded.apply(garbage.view());
    EXPECT_EQ(garbage.view().remote.text(), "10.0.0.1");
}

TEST(ForwardedRuleTest, VouchedChainIsWhatTheRuleTrusts) {
    auto texts = [](const std::vector<Address>& chain) {
        std::vector<std::string> out;
        for (const auto& entry : chain) {
            out.push_back(entry.text());
        }
        return out;
    };
    TestRequest request;
    request.header("X-Forwarded-For", "203.0.113.1, 198.51.100.2, 10.0.0.7");
    ForwardedRule recursive =
        rule(R"({"client_ip": "X-Forwarded-For", "source": "10.0.0.0/8", "recursive": true})");
    EXPECT_EQ(texts(recursive.vouchedChain(request.view().headers, *Address::parseIp("10.0.0.1"))),
              (std::vector<std::string>{"198.51.100.2", "10.0.0.7"}));
    ForwardedRule single = rule(R"({"client_ip": "X-Forwarded-For", "source": "10.0.0.0/8"})");
    EXPECT_EQ(texts(single.vouchedChain(request.view().headers, *Address::parseIp("10.0.0.1"))),
              (std::vector<std::string>{"10.0.0.7"}));
    // An untrusted peer: nothing it says is kept.
    EXPECT_TRUE(
        single.vouchedChain(request.view().headers, *Address::parseIp("192.0.2.1")).empty());
    ForwardedRule protocol_only =
        rule(R"({"protocol": "X-Forwarded-Proto", "source": "10.0.0.0/8"})");
    EXPECT_TRUE(
        protocol_only.vouchedChain(request.view().headers, *Address::parseIp("10.0.0.1")).empty());
}

TEST(ForwardedRuleTest, Protocol) {
    ForwardedRule forwarded = rule(R"({"protocol": "X-Forwarded-Proto", "source": "unix"})");
    auto scheme = [&](std::string_view value, Scheme initial) {
        TestRequest request;
        request.header("X-Forwarded-Proto", value).remote(address("unix"));
        request.view().scheme = initial;
        forwarded.apply(request.view());
        return request.view().scheme;
    };
    EXPECT_EQ(scheme("https", Scheme::Http), Scheme::Https);
    EXPECT_EQ(scheme("ON", Scheme::Http), Scheme::Https);
    EXPECT_EQ(scheme("HTTP", Scheme::Https), Scheme::Http);
    EXPECT_EQ(scheme("ftp", Scheme::Https), Scheme::Https);
}

TEST(ForwardedRuleTest, LegacyClientIp) {
    ForwardedRule forwarded = rule(R"({"header": "X-Real-IP", "source": "*:1-65535"})", true);
    TestRequest request;
    request.header("X-Real-IP", "2001:db8::5").remote(address("192.0.2.1:80"));
    forwarded.apply(request.view());
    EXPECT_EQ(request.view().remote.text(), "2001:db8::5");
}

TEST(ForwardedRuleTest, BadObjectsAreErrors) {
    for (std::string_view bad :
         {R"([])", R"({})", R"({"client_ip": "X"})", R"({"source": "unix"})",
          R"({"client_ip": "", "source": "unix"})", R"({"client_ip": "X", "source": "*"})",
          R"({"client_ip": "X", "source": 5})",
          R"({"client_ip": "X", "source": "unix", "recursive": 1})",
          R"({"client_ip": "X", "source": "unix", "header": "Y"})"}) {
        auto compiled = ForwardedRule::compile(std::get<json::Value>(json::parse(bad)));
        EXPECT_FALSE(compiled.ok()) << bad;
    }
    EXPECT_FALSE(
        ForwardedRule::compile(std::get<json::Value>(json::parse(R"({"source": "unix"})")), true)
            .ok());
}

}  // namespace
}  // namespace canopy::routing
