#include "rack_text.h"

#include <gtest/gtest.h>

namespace canopy::ruby {
namespace {

TEST(RackText, HeaderNamesBecomeCgiKeys) {
    EXPECT_EQ(envKeyOfHeader("X-Forwarded-For"), "HTTP_X_FORWARDED_FOR");
    EXPECT_EQ(envKeyOfHeader("accept"), "HTTP_ACCEPT");
    EXPECT_EQ(envKeyOfHeader("x_under-score9"), "HTTP_X_UNDER_SCORE9");
}

TEST(RackText, ContentHeadersAreRecognisedInAnyCase) {
    EXPECT_TRUE(isContentHeader("Content-Type"));
    EXPECT_TRUE(isContentHeader("content-length"));
    EXPECT_FALSE(isContentHeader("Content-Encoding"));
    EXPECT_FALSE(isContentHeader("Content-Typ"));
}

TEST(RackText, NewlineJoinedValuesAreSeveralFields) {
    using Fields = std::vector<std::string_view>;
    EXPECT_EQ(splitHeaderValue("a=1\nb=2"), (Fields{"a=1", "b=2"}));
    EXPECT_EQ(splitHeaderValue("alone"), (Fields{"alone"}));
    EXPECT_EQ(splitHeaderValue("trailing\n"), (Fields{"trailing"}));
    EXPECT_EQ(splitHeaderValue("\n\nmiddle\n\nend"), (Fields{"middle", "end"}));
    EXPECT_EQ(splitHeaderValue(""), Fields{});
    EXPECT_EQ(splitHeaderValue("\n"), Fields{});
    // A carriage return is left in the field: the SDK refuses it as a value.
    EXPECT_EQ(splitHeaderValue("x\r\ny"), (Fields{"x\r", "y"}));
}

TEST(RackText, StatusesFromText) {
    EXPECT_EQ(statusFromText("200"), 200);
    EXPECT_EQ(statusFromText("404 Not Found"), 404);
    EXPECT_EQ(statusFromText("999"), 999);
    EXPECT_FALSE(statusFromText("99"));
    EXPECT_FALSE(statusFromText("099"));
    EXPECT_FALSE(statusFromText("2000"));
    EXPECT_FALSE(statusFromText("abc"));
    EXPECT_FALSE(statusFromText("20x"));
    EXPECT_FALSE(statusFromText(""));
}

TEST(RackText, ContentLengths) {
    EXPECT_EQ(contentLengthFromText("0"), 0U);
    EXPECT_EQ(contentLengthFromText("12345"), 12345U);
    EXPECT_FALSE(contentLengthFromText(""));
    EXPECT_FALSE(contentLengthFromText("-1"));
    EXPECT_FALSE(contentLengthFromText("+1"));
    EXPECT_FALSE(contentLengthFromText("12 "));
    EXPECT_FALSE(contentLengthFromText("99999999999999999999999"));
}

}  // namespace
}  // namespace canopy::ruby
