#include "core/routing/request_view.h"

#include <gtest/gtest.h>

#include <set>
#include <utility>

#include "tests/unit/routing/test_request.h"

namespace canopy::routing {
namespace {

using testing::TestRequest;

TEST(RequestViewTest, ArgumentsAreDecodedInOrderAndSkipEmptyNames) {
    TestRequest request("GET", "/?a=1&b=x+y&c=%41%42&&=v&d&a=2&e%20f=g");
    auto arguments = request.view().arguments();
    ASSERT_EQ(arguments.size(), 6u);
    EXPECT_EQ(arguments[0].name, "a");
    EXPECT_EQ(arguments[0].value, "1");
    EXPECT_EQ(arguments[1].value, "x y");
    EXPECT_EQ(arguments[2].value, "AB");
    EXPECT_EQ(arguments[3].name, "d");
    EXPECT_EQ(arguments[3].value, "");
    EXPECT_EQ(arguments[4].value, "2");
    EXPECT_EQ(arguments[5].name, "e f");
    // The same span on the second call: parsed once.
    EXPECT_EQ(request.view().arguments().data(), arguments.data());
}

TEST(RequestViewTest, NoQueryMeansNoArguments) {
    TestRequest request("GET", "/x");
    EXPECT_TRUE(request.view().arguments().empty());
    EXPECT_EQ(request.view().decodedQuery(), "");
}

TEST(RequestViewTest, DecodedQueryDecodesPercentAndPlus) {
    TestRequest request("GET", "/?a=%41+b&c=%zz");
    EXPECT_EQ(request.view().decodedQuery(), "a=A b&c=%zz");
}

TEST(RequestViewTest, CookiesComeFromEveryCookieHeader) {
    TestRequest request;
    request.header("Cookie", "a=1; b = two ;c=")
        .header("X-Other", "z=9")
        .header("cookie", "d=4;;=x");
    auto cookies = request.view().cookies();
    ASSERT_EQ(cookies.size(), 4u);
    EXPECT_EQ(cookies[0].name, "a");
    EXPECT_EQ(cookies[0].value, "1");
    EXPECT_EQ(cookies[1].name, "b");
    EXPECT_EQ(cookies[1].value, "two");
    EXPECT_EQ(cookies[2].name, "c");
    EXPECT_EQ(cookies[2].value, "");
    EXPECT_EQ(cookies[3].name, "d");
}

TEST(RequestViewTest, FindHeaderIsCaseInsensitiveAndTakesTheFirst) {
    TestRequest request;
    request.header("X-Thing", "one").header("x-thing", "two");
    ASSERT_NE(request.view().findHeader("X-THING"), nullptr);
    EXPECT_EQ(request.view().findHeader("x-thing")->value, "one");
    EXPECT_EQ(request.view().findHeader("X-None"), nullptr);
}

TEST(RequestViewTest, RequestIdIsStableHexAndDiffersBetweenRequests) {
    std::set<std::string> ids;
    for (int index = 0; index < 100; ++index) {
        TestRequest request;
        std::string id(request.view().requestId());
        EXPECT_EQ(id.size(), 32u);
        EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos);
        EXPECT_EQ(request.view().requestId(), id);
        ids.insert(id);
    }
    EXPECT_EQ(ids.size(), 100u);
}

TEST(RequestViewTest, MovingKeepsComputedParts) {
    TestRequest request("GET", "/?name=a%20b");
    auto value = request.view().arguments()[0].value;
    std::string id(request.view().requestId());
    RequestView moved = std::move(request.view());
    EXPECT_EQ(moved.arguments()[0].value, "a b");
    EXPECT_EQ(moved.arguments()[0].value.data(), value.data());
    EXPECT_EQ(moved.requestId(), id);
}

TEST(EqualsIgnoreCaseTest, ComparesAsciiOnly) {
    EXPECT_TRUE(equalsIgnoreCase("Content-Type", "content-TYPE"));
    EXPECT_FALSE(equalsIgnoreCase("a", "ab"));
    EXPECT_FALSE(equalsIgnoreCase("\xC3\xA9", "\xC3\x89"));
}

}  // namespace
}  // namespace canopy::routing
