#include "core/tls/server_name.h"

#include <gtest/gtest.h>

namespace canopy::tls {
namespace {

TEST(ServerNameTest, ExactNamesIgnoreCaseAndATrailingDot) {
    EXPECT_TRUE(serverNameMatches("one.example", "one.example"));
    EXPECT_TRUE(serverNameMatches("One.Example", "oNE.example."));
    EXPECT_TRUE(serverNameMatches("one.example.", "one.example"));
    EXPECT_FALSE(serverNameMatches("one.example", "www.one.example"));
    EXPECT_FALSE(serverNameMatches("one.example", "one.example.org"));
    EXPECT_FALSE(serverNameMatches("", ""));
    EXPECT_FALSE(serverNameMatches("one.example", ""));
}

TEST(ServerNameTest, AWildcardCoversExactlyOneLabel) {
    EXPECT_TRUE(serverNameMatches("*.two.example", "a.two.example"));
    EXPECT_TRUE(serverNameMatches("*.two.example", "WWW.Two.Example"));
    EXPECT_FALSE(serverNameMatches("*.two.example", "two.example"));
    EXPECT_FALSE(serverNameMatches("*.two.example", "a.b.two.example"));
    EXPECT_FALSE(serverNameMatches("*.two.example", ".two.example"));
    EXPECT_FALSE(serverNameMatches("*.two.example", "a.three.example"));
    // A '*' elsewhere is no wildcard.
    EXPECT_FALSE(serverNameMatches("a*.two.example", "ab.two.example"));
    EXPECT_TRUE(serverNameMatches("a*.two.example", "a*.two.example"));
    EXPECT_FALSE(serverNameMatches("*", "anything"));
}

TEST(ServerNameTest, ExactMatchesWinOverWildcardsThenTheOrderDecides) {
    std::vector<std::vector<std::string>> names = {
        {"one.example"},
        {"*.shop.example", "two.example"},
        {"www.shop.example"},
        {"two.example"},
    };
    EXPECT_EQ(chooseCertificate(names, "one.example"), 0U);
    EXPECT_EQ(chooseCertificate(names, "two.example"), 1U);       // the first that has it
    EXPECT_EQ(chooseCertificate(names, "www.shop.example"), 2U);  // exact, though 1 is earlier
    EXPECT_EQ(chooseCertificate(names, "cart.shop.example"), 1U);
    EXPECT_EQ(chooseCertificate(names, "other.example"), std::nullopt);
    EXPECT_EQ(chooseCertificate(names, ""), std::nullopt);
    EXPECT_EQ(chooseCertificate({}, "one.example"), std::nullopt);
}

}  // namespace
}  // namespace canopy::tls
