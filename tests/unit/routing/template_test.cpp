#include "core/routing/template.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <regex>

#include "tests/unit/routing/test_request.h"

namespace canopy::routing {
namespace {

using testing::TestRequest;

std::string evaluate(std::string_view text, const RequestView& request) {
    auto compiled = Template::compile(text);
    EXPECT_TRUE(compiled.ok()) << text << ": " << (compiled.ok() ? "" : compiled.error().message);
    return compiled.ok() ? compiled->evaluate(request) : "<error>";
}

TEST(TemplateTest, LiteralTextAndDollar) {
    TestRequest request;
    EXPECT_EQ(evaluate("", request), "");
    EXPECT_EQ(evaluate("plain text", request), "plain text");
    EXPECT_EQ(evaluate("cost: ${dollar}5 $dollar", request), "cost: $5 $");
    auto compiled = Template::compile("plain");
    ASSERT_TRUE(compiled.ok());
    EXPECT_TRUE(compiled->isConstant());
    EXPECT_EQ(compiled->text(), "plain");
    auto literal = Template::literal("$uri stays");
    EXPECT_TRUE(literal.isConstant());
    EXPECT_EQ(literal.evaluate(request), "$uri stays");
}

TEST(TemplateTest, BracesDelimitNames) {
    TestRequest request("GET", "/p?v=1&v2=9");
    EXPECT_EQ(evaluate("${uri}x", request), "/px");
    EXPECT_FALSE(Template::compile("$urix").ok());
    // Digits end a name: $arg_v2 is $arg_v followed by "2".
    EXPECT_EQ(evaluate("$arg_v2", request), "12");
    EXPECT_EQ(evaluate("[$method]", request), "[GET]");
    EXPECT_EQ(evaluate("$method$uri", request), "GET/p");
}

TEST(TemplateTest, SyntaxErrors) {
    for (std::string_view bad :
         {"$", "a$", "$1", "${", "${}", "${uri", "${arg_v2}", "${ uri}", "$-", "$unknown", "${Uri}",
          "$header_", "$arg_", "$cookie_", "$response_header_"}) {
        auto compiled = Template::compile(bad);
        EXPECT_FALSE(compiled.ok()) << bad;
    }
    auto unknown = Template::compile("/x/$nope");
    ASSERT_FALSE(unknown.ok());
    EXPECT_NE(unknown.error().message.find("Unknown variable \"nope\""), std::string::npos);
}

TEST(TemplateTest, RequestVariables) {
    TestRequest request("POST", "/a/%2e/b%20c?x=1");
    request.header("Host", "Example.com:8080");
    request.view().remote = *Address::parseIp("2001:db8::7");
    EXPECT_EQ(evaluate("$method", request), "POST");
    EXPECT_EQ(evaluate("$request_uri", request), "/a/%2e/b%20c?x=1");
    EXPECT_EQ(evaluate("$uri", request), "/a/b c");
    EXPECT_EQ(evaluate("$host", request), "example.com");
    EXPECT_EQ(evaluate("$remote_addr", request), "2001:db8::7");
    EXPECT_EQ(evaluate("$request_line", request), "POST /a/%2e/b%20c?x=1 HTTP/1.1");
}

TEST(TemplateTest, HeaderVariables) {
    TestRequest request;
    request.header("User-Agent", "curl/8")
        .header("Referer", "http://r/")
        .header("X-Forwarded-For", "1.1.1.1")
        .header("x-forwarded-for", "2.2.2.2");
    EXPECT_EQ(evaluate("$header_user_agent", request), "curl/8");
    EXPECT_EQ(evaluate("$header_referer", request), "http://r/");
    EXPECT_EQ(evaluate("$header_X_FORWARDED_FOR", request), "1.1.1.1");  // first one
    EXPECT_EQ(evaluate("<$header_missing>", request), "<>");
}

TEST(TemplateTest, ArgumentAndCookieVariables) {
    TestRequest request("GET", "/?a=1&b=x+y%21&a=2&Name=N");
    request.header("Cookie", "session=abc; theme=dark").header("Cookie", "theme=light");
    EXPECT_EQ(evaluate("$arg_a", request), "2");  // the last one
    EXPECT_EQ(evaluate("$arg_b", request), "x y!");
    EXPECT_EQ(evaluate("$arg_Name|$arg_name", request), "N|");  // case-sensitive
    EXPECT_EQ(evaluate("$arg_none", request), "");
    EXPECT_EQ(evaluate("$cookie_session", request), "abc");
    EXPECT_EQ(evaluate("$cookie_theme", request), "light");
    EXPECT_EQ(evaluate("$cookie_none", request), "");
}

TEST(TemplateTest, ResponseVariables) {
    TestRequest request;
    EXPECT_EQ(evaluate("[$status]", request), "[]");
    request.view().response.status = 200;
    request.view().response.body_bytes_sent = 1234;
    request.responseHeader("Content-Type", "text/html").responseHeader("Content-Length", "1234");
    EXPECT_EQ(evaluate("$status $body_bytes_sent", request), "200 1234");
    EXPECT_EQ(evaluate("$response_header_content_type", request), "text/html");
    EXPECT_EQ(evaluate("$response_header_Content_Length", request), "1234");
    EXPECT_EQ(evaluate("[$response_header_etag]", request), "[]");
    request.view().response.status = 7;
    EXPECT_EQ(evaluate("$status", request), "007");
}

TEST(TemplateTest, RequestIdIsStablePerRequest) {
    TestRequest request;
    std::string first = evaluate("$request_id", request);
    EXPECT_EQ(first.size(), 32u);
    EXPECT_EQ(evaluate("$request_id", request), first);
    TestRequest other;
    EXPECT_NE(evaluate("$request_id", other), first);
}

TEST(TemplateTest, RequestTime) {
    TestRequest request;
    auto start = std::chrono::steady_clock::now();
    request.view().start_time = start;
    request.view().end_time = start + std::chrono::milliseconds(2345);
    EXPECT_EQ(evaluate("$request_time", request), "2.345");
    request.view().end_time = start + std::chrono::milliseconds(7);
    EXPECT_EQ(evaluate("$request_time", request), "0.007");
    request.view().end_time = start - std::chrono::seconds(1);
    EXPECT_EQ(evaluate("$request_time", request), "0.000");
    request.view().end_time.reset();
    std::string now = evaluate("$request_time", request);
    EXPECT_TRUE(std::regex_match(now, std::regex("[0-9]+\\.[0-9]{3}"))) << now;
}

TEST(TemplateTest, TimeLocal) {
    TestRequest request;
    // 2024-03-05 06:07:08 UTC.
    request.view().log_time = std::chrono::system_clock::from_time_t(1709618828);
    std::string text = evaluate("$time_local", request);
    EXPECT_TRUE(std::regex_match(
        text,
        std::regex("[0-9]{2}/[A-Z][a-z]{2}/[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4}")))
        << text;
    // Whatever the zone, local time minus the offset is the instant.
    time_t instant = 1709618828;
    tm local{};
    localtime_r(&instant, &local);
    char expected[64];
    strftime(expected, sizeof(expected), "%d/%b/%Y:%H:%M:%S %z", &local);
    EXPECT_EQ(text, expected);
    request.view().log_time.reset();
    EXPECT_EQ(evaluate("$time_local", request).size(), text.size());
}

TEST(TemplateTest, EmptyValuesCanBeShownAsDash) {
    TestRequest request;
    auto compiled = Template::compile(
        "$remote_addr - - \"$request_line\" $status \"$header_referer\" x$dollar");
    ASSERT_TRUE(compiled.ok());
    std::string out;
    compiled->appendTo(request, out, "-");
    EXPECT_EQ(out, "192.0.2.10 - - \"GET / HTTP/1.1\" - \"-\" x$");
}

TEST(TemplateTest, UsesListsTheVariables) {
    auto compiled = Template::compile("$status $uri $header_x");
    ASSERT_TRUE(compiled.ok());
    EXPECT_TRUE(compiled->uses(Variable::Status));
    EXPECT_TRUE(compiled->uses(Variable::Uri));
    EXPECT_TRUE(compiled->uses(Variable::Header));
    EXPECT_FALSE(compiled->uses(Variable::ResponseHeader));
    EXPECT_FALSE(compiled->isConstant());
}

TEST(ConditionTest, FalsyValuesAndNegation) {
    TestRequest request("GET", "/?v=");
    auto holds = [&](std::string_view condition, std::string_view target) {
        request.setTarget(target);
        auto compiled = Condition::compile(condition);
        EXPECT_TRUE(compiled.ok()) << condition;
        return compiled.ok() && compiled->holds(request);
    };
    for (std::string_view falsy : {"", "0", "false", "null", "undefined"}) {
        EXPECT_FALSE(holds("$arg_v", "/?v=" + std::string(falsy))) << falsy;
        EXPECT_TRUE(holds("!$arg_v", "/?v=" + std::string(falsy))) << falsy;
    }
    for (std::string_view truthy : {"1", "true", "False", "00", " ", "no"}) {
        EXPECT_TRUE(holds("$arg_v", "/?v=" + std::string(truthy))) << truthy;
    }
    EXPECT_TRUE(holds("constant", "/"));
    EXPECT_FALSE(holds("", "/"));
    EXPECT_TRUE(holds("!", "/"));
    EXPECT_FALSE(Condition::compile("!$nope").ok());
    EXPECT_TRUE(isTruthy("yes"));
    EXPECT_FALSE(isTruthy("undefined"));
}

}  // namespace
}  // namespace canopy::routing
