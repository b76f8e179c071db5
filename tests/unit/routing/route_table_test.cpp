#include "core/routing/route_table.h"

#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "core/config/validator.h"
#include "tests/unit/routing/test_request.h"

namespace canopy::routing {
namespace {

using testing::address;
using testing::TestRequest;

json::Value parseJson(std::string_view text) {
    auto parsed = json::parse(text);
    if (auto* error = std::get_if<json::ParseError>(&parsed)) {
        ADD_FAILURE() << "bad test JSON: " << error->detail << " in " << text;
        return json::Value();
    }
    return std::get<json::Value>(std::move(parsed));
}

RouteTable compileOk(std::string_view configuration) {
    auto table = RouteTable::compile(parseJson(configuration));
    EXPECT_TRUE(table.ok()) << (table.ok() ? "" : table.error().message);
    return table.ok() ? std::move(table.value()) : RouteTable();
}

// ---- the match table ----

struct RequestSpec {
    std::string method = "GET";
    std::string target = "/";
    std::vector<std::pair<std::string, std::string>> headers;
    bool https = false;
    std::string remote = "192.0.2.10:40000";
    std::string local = "192.0.2.1:80";
};

struct MatchCase {
    const char* match;
    RequestSpec request;
    bool expected;
};

RequestSpec get(std::string target) {
    RequestSpec spec;
    spec.target = std::move(target);
    return spec;
}

RequestSpec method(std::string name) {
    RequestSpec spec;
    spec.method = std::move(name);
    return spec;
}

RequestSpec withHeaders(std::vector<std::pair<std::string, std::string>> headers,
                        std::string target = "/") {
    RequestSpec spec;
    spec.target = std::move(target);
    spec.headers = std::move(headers);
    return spec;
}

RequestSpec from(std::string remote) {
    RequestSpec spec;
    spec.remote = std::move(remote);
    return spec;
}

RequestSpec to(std::string local) {
    RequestSpec spec;
    spec.local = std::move(local);
    return spec;
}

RequestSpec secure(std::string target = "/") {
    RequestSpec spec;
    spec.target = std::move(target);
    spec.https = true;
    return spec;
}

const std::vector<MatchCase>& matchCases() {
    static const std::vector<MatchCase> cases = {
        // method
        {R"({"method": "GET"})", method("GET"), true},
        {R"({"method": "GET"})", method("POST"), false},
        {R"({"method": "get"})", method("GET"), true},
        {R"({"method": "GET"})", method("get"), false},
        {R"({"method": ["GET", "HEAD"]})", method("HEAD"), true},
        {R"({"method": "!GET"})", method("POST"), true},
        {R"({"method": "!GET"})", method("GET"), false},
        {R"({"method": "P*"})", method("PUT"), true},
        {R"({"method": "~^(GET|HEAD)$"})", method("HEAD"), true},
        {R"({"method": ["!GET", "!HEAD"]})", method("DELETE"), true},
        // host
        {R"({"host": "example.com"})", withHeaders({{"Host", "example.com"}}), true},
        {R"({"host": "example.com"})", withHeaders({{"Host", "EXAMPLE.com:8080"}}), true},
        {R"({"host": "example.com"})", withHeaders({{"Host", "example.com."}}), true},
        {R"({"host": "*.example.com"})", withHeaders({{"Host", "www.example.com"}}), true},
        {R"({"host": "*.example.com"})", withHeaders({{"Host", "example.com"}}), false},
        {R"({"host": ""})", get("/"), true},
        {R"({"host": ""})", withHeaders({{"Host", "a"}}), false},
        {R"({"host": "!*.internal"})", withHeaders({{"Host", "app.internal"}}), false},
        {R"({"host": "Example.COM"})", withHeaders({{"Host", "example.com"}}), true},
        {R"({"host": ["a.com", "b.com"]})", withHeaders({{"Host", "b.com"}}), true},
        {R"({"host": "~^www\\."})", withHeaders({{"Host", "www.x"}}), true},
        // uri
        {R"({"uri": "/"})", get("/"), true},
        {R"({"uri": "/api/*"})", get("/api/v1"), true},
        {R"({"uri": "/api/*"})", get("/API/v1"), false},
        {R"({"uri": "/a/c"})", get("/a/./b/../c"), true},
        {R"({"uri": "/a b"})", get("/a%20b"), true},
        {R"({"uri": "/a%20b"})", get("/a%20b"), true},
        {R"({"uri": "/a%2Fb"})", get("/a%2Fb"), true},
        {R"({"uri": "*.php"})", get("/x.php?y=1"), true},
        {R"({"uri": "!*.php"})", get("/x.php"), false},
        {R"({"uri": ["/static/*", "!*.map"]})", get("/static/a.map"), false},
        {R"({"uri": ["/static/*", "!*.map"]})", get("/static/a.js"), true},
        {R"({"uri": "~\\.(jpg|png)$"})", get("/i/x.png"), true},
        {R"({"uri": "~%20"})", get("/a%20b"), false},
        {R"({"uri": "/caf%C3%A9"})", get("/caf%c3%a9"), true},
        // query
        {R"({"query": "a=1"})", get("/?a=1"), true},
        {R"({"query": "a=1"})", get("/?a=2"), false},
        {R"({"query": "a=1*"})", get("/?a=1&b=2"), true},
        {R"({"query": "q=a b"})", get("/?q=a+b"), true},
        {R"({"query": "q=a%20b"})", get("/?q=a%20b"), true},
        {R"({"query": ""})", get("/"), true},
        {R"({"query": ""})", get("/?"), true},
        {R"({"query": "!"})", get("/?x"), true},
        {R"({"query": "~b=2"})", get("/?a=1&b=2"), true},
        {R"({"query": "A=1"})", get("/?a=1"), false},
        // arguments
        {R"({"arguments": {"a": "1"}})", get("/?a=1"), true},
        {R"({"arguments": {"a": "1"}})", get("/?a=2"), false},
        {R"({"arguments": {"a": "1"}})", get("/?b=1"), false},
        {R"({"arguments": {"a": "!1"}})", get("/?b=1"), false},
        {R"({"arguments": {"a": "!1"}})", get("/?a=2"), true},
        {R"({"arguments": {"a": "1"}})", get("/?a=1&a=2"), false},
        {R"({"arguments": {"a": ["1", "2"]}})", get("/?a=1&a=2"), true},
        {R"({"arguments": {"a": "1", "b": "2"}})", get("/?a=1&b=2"), true},
        {R"({"arguments": {"a": "1", "b": "2"}})", get("/?a=1&b=3"), false},
        {R"({"arguments": [{"a": "1"}, {"b": "2"}]})", get("/?b=2"), true},
        {R"({"arguments": [{"a": "1"}, {"b": "2"}]})", get("/?c=3"), false},
        {R"({"arguments": {"q": "a b"}})", get("/?q=a+b"), true},
        {R"({"arguments": {"q": "a+b"}})", get("/?q=a%20b"), true},
        {R"({"arguments": {"a b": "x"}})", get("/?a+b=x"), true},
        {R"({"arguments": {"a%20b": "x"}})", get("/?a%20b=x"), true},
        {R"({"arguments": {"A": "1"}})", get("/?a=1"), false},
        {R"({"arguments": {"a": "V*"}})", get("/?a=v1"), false},
        {R"({"arguments": {"a": "~^[0-9]+$"}})", get("/?a=123"), true},
        {R"({"arguments": {"a": ""}})", get("/?a"), true},
        {R"({"arguments": {"a": ""}})", get("/?a="), true},
        {R"({"arguments": {}})", get("/"), true},
        {R"({"arguments": []})", get("/"), true},
        // headers
        {R"({"headers": {"X-Test": "yes"}})", withHeaders({{"X-Test", "yes"}}), true},
        {R"({"headers": {"x-test": "YES"}})", withHeaders({{"X-TEST", "yes"}}), true},
        {R"({"headers": {"X-Test": "yes"}})", get("/"), false},
        {R"({"headers": {"X-Test": "!yes"}})", get("/"), false},
        {R"({"headers": {"X-Test": "!yes"}})", withHeaders({{"X-Test", "no"}}), true},
        {R"({"headers": {"X-Test": "yes"}})", withHeaders({{"X-Test", "yes"}, {"X-Test", "no"}}),
         false},
        {R"({"headers": {"X-Test": ["yes", "no"]}})",
         withHeaders({{"X-Test", "yes"}, {"x-test", "no"}}), true},
        {R"({"headers": {"Accept": "*text/html*"}})",
         withHeaders({{"Accept", "text/HTML,application/xml"}}), true},
        {R"({"headers": [{"X-A": "1"}, {"X-B": "2"}]})", withHeaders({{"X-B", "2"}}), true},
        {R"({"headers": {"X-A": "1", "X-B": "2"}})", withHeaders({{"X-A", "1"}}), false},
        {R"({"headers": {"User-Agent": "~curl"}})", withHeaders({{"User-Agent", "curl/8"}}), true},
        {R"({"headers": {"User-Agent": "~CURL"}})", withHeaders({{"User-Agent", "curl/8"}}), false},
        {R"({"headers": {"Host": "example.com"}})", withHeaders({{"Host", "example.com"}}), true},
        // cookies
        {R"({"cookies": {"session": "*"}})", withHeaders({{"Cookie", "session=x"}}), true},
        {R"({"cookies": {"session": "*"}})", get("/"), false},
        {R"({"cookies": {"Session": "x"}})", withHeaders({{"Cookie", "session=x"}}), false},
        {R"({"cookies": {"theme": "dark"}})", withHeaders({{"Cookie", "theme=DARK"}}), false},
        {R"({"cookies": {"theme": "dark"}})", withHeaders({{"Cookie", "a=1; theme=dark"}}), true},
        {R"({"cookies": {"theme": "dark"}})",
         withHeaders({{"Cookie", "theme=dark"}, {"Cookie", "theme=light"}}), false},
        {R"({"cookies": [{"a": "1"}, {"b": "2"}]})", withHeaders({{"Cookie", "b=2"}}), true},
        {R"({"cookies": {"a": "!1"}})", withHeaders({{"Cookie", "a=2"}}), true},
        // scheme
        {R"({"scheme": "http"})", get("/"), true},
        {R"({"scheme": "http"})", secure(), false},
        {R"({"scheme": "HTTPS"})", secure(), true},
        // source
        {R"({"source": "192.0.2.0/24"})", get("/"), true},
        {R"({"source": "!192.0.2.0/24"})", get("/"), false},
        {R"({"source": ["10.0.0.0/8", "192.0.2.10"]})", get("/"), true},
        {R"({"source": "*:40000"})", get("/"), true},
        {R"({"source": "*:1-1024"})", get("/"), false},
        {R"({"source": "unix"})", from("unix"), true},
        {R"({"source": "[2001:db8::/32]:40000-40010"})", from("[2001:db8::1]:40005"), true},
        {R"({"source": "10.0.0.1-10.0.0.9"})", from("10.0.0.10:1"), false},
        // destination
        {R"({"destination": "192.0.2.1:80"})", get("/"), true},
        {R"({"destination": "*:443"})", get("/"), false},
        {R"({"destination": "!*:443"})", get("/"), true},
        {R"({"destination": "unix"})", to("unix"), true},
        // if
        {R"({"if": "$arg_debug"})", get("/?debug=1"), true},
        {R"({"if": "$arg_debug"})", get("/?debug=0"), false},
        {R"({"if": "!$arg_debug"})", get("/"), true},
        {R"({"if": "${header_x_flag}"})", withHeaders({{"X-Flag", "true"}}), true},
        {R"({"if": "$cookie_beta"})", withHeaders({{"Cookie", "beta=false"}}), false},
        {R"({"if": "$uri"})", get("/"), true},
        // combinations (AND)
        {R"({"method": "GET", "uri": "/api/*", "host": "api.example.com"})",
         withHeaders({{"Host", "api.example.com"}}, "/api/x"), true},
        {R"({"method": "POST", "uri": "/api/*", "host": "api.example.com"})",
         withHeaders({{"Host", "api.example.com"}}, "/api/x"), false},
        {R"({})", get("/anything"), true},
        {R"({"uri": "/a", "query": "x=1", "arguments": {"x": "1"}, "scheme": "https"})",
         secure("/a?x=1"), true},
        {R"({"uri": "/a", "query": "x=1", "arguments": {"x": "2"}, "scheme": "https"})",
         secure("/a?x=1"), false},
    };
    return cases;
}

TEST(RouteTableMatchTest, TableOfPatternsAndRequests) {
    ASSERT_GE(matchCases().size(), 100u);
    for (const MatchCase& test : matchCases()) {
        std::string configuration = std::string(R"({"routes": [{"match": )") + test.match +
                                    R"(, "action": {"return": 200}}]})";
        RouteTable table = compileOk(configuration);
        TestRequest request(test.request.method, test.request.target);
        for (const auto& [name, value] : test.request.headers) {
            request.header(name, value);
        }
        if (test.request.https) {
            request.https();
        }
        request.remote(address(test.request.remote)).local(address(test.request.local));
        const Action* action = table.match("", request);
        EXPECT_EQ(action != nullptr, test.expected)
            << "match " << test.match << " request " << test.request.method << " "
            << test.request.target;
    }
}

// ---- steps and routes ----

TEST(RouteTableTest, FirstMatchingStepWins) {
    RouteTable table = compileOk(R"({"routes": [
        {"match": {"uri": "/a/*"}, "action": {"return": 201}},
        {"match": {"uri": "/a/b"}, "action": {"return": 202}},
        {"action": {"return": 203}}
    ]})");
    auto status = [&](std::string_view target) {
        TestRequest request("GET", target);
        const Action* action = table.match("", request);
        return action == nullptr ? 0 : std::get<ReturnAction>(action->handler).status;
    };
    EXPECT_EQ(status("/a/b"), 201);
    EXPECT_EQ(status("/b"), 203);
    EXPECT_TRUE(table.hasRoute(""));
    EXPECT_FALSE(table.hasRoute("main"));
    EXPECT_EQ(table.match("main", TestRequest()), nullptr);
}

TEST(RouteTableTest, NoMatchingStepMeans404) {
    RouteTable table =
        compileOk(R"({"routes": [{"match": {"uri": "/x"}, "action": {"return": 200}}]})");
    EXPECT_EQ(table.match("", TestRequest("GET", "/y")), nullptr);
    RouteTable empty = compileOk(R"({"routes": []})");
    EXPECT_EQ(empty.match("", TestRequest()), nullptr);
    RouteTable none = compileOk(R"({})");
    EXPECT_FALSE(none.hasRoute(""));
    EXPECT_EQ(none.match("", TestRequest()), nullptr);
    EXPECT_EQ(RouteTable().match("", TestRequest()), nullptr);
}

TEST(RouteTableTest, NamedRoutes) {
    RouteTable table = compileOk(R"({"routes": {
        "main": [{"match": {"host": "a"}, "action": {"pass": "routes/other"}},
                 {"action": {"return": 404}}],
        "other": [{"action": {"return": 200}}],
        "empty": []
    }})");
    EXPECT_TRUE(table.hasRoute("main"));
    EXPECT_TRUE(table.hasRoute("empty"));
    EXPECT_FALSE(table.hasRoute(""));
    EXPECT_EQ(table.match("", TestRequest()), nullptr);
    EXPECT_EQ(table.match("empty", TestRequest()), nullptr);
    TestRequest request;
    request.header("Host", "a");
    const Action* action = table.match("main", request);
    ASSERT_NE(action, nullptr);
    const auto& pass = std::get<PassAction>(action->handler);
    ASSERT_TRUE(pass.resolved.has_value());
    EXPECT_EQ(pass.resolved->kind, PassTarget::Kind::Route);
    EXPECT_EQ(pass.resolved->name, "other");
    EXPECT_EQ(table.resolvePass(pass, request), *pass.resolved);
    EXPECT_NE(table.match("other", request), nullptr);
}

// ---- actions ----

constexpr const char* kTargetsConfiguration = R"({
    "applications": {
        "plain": {"type": "python", "module": "wsgi"},
        "multi": {"type": "python", "targets": {"front": {"module": "f"}, "back": {"module": "b"}}}
    },
    "upstreams": {"pool": {"servers": {"127.0.0.1:8081": {}}}},
    "routes": {"main": [{"action": {"return": 200}}], "r%2Fx": []}
})";

TEST(RouteTableTest, ResolvePass) {
    RouteTable table = compileOk(kTargetsConfiguration);
    using Kind = PassTarget::Kind;
    EXPECT_EQ(table.resolvePass("routes/main"), (PassTarget{Kind::Route, "main", ""}));
    EXPECT_EQ(table.resolvePass("routes").kind, Kind::Invalid);  // the object form
    EXPECT_EQ(table.resolvePass("routes/none").kind, Kind::Invalid);
    EXPECT_EQ(table.resolvePass("routes/r%252Fx"), (PassTarget{Kind::Route, "r%2Fx", ""}));
    EXPECT_EQ(table.resolvePass("applications/plain"),
              (PassTarget{Kind::Application, "plain", ""}));
    EXPECT_EQ(table.resolvePass("applications/multi"),
              (PassTarget{Kind::Application, "multi", "front"}));
    EXPECT_EQ(table.resolvePass("applications/multi/back"),
              (PassTarget{Kind::Application, "multi", "back"}));
    EXPECT_EQ(table.resolvePass("applications/multi/none").kind, Kind::Invalid);
    EXPECT_EQ(table.resolvePass("applications/plain/x").kind, Kind::Invalid);
    EXPECT_EQ(table.resolvePass("applications/none").kind, Kind::Invalid);
    EXPECT_EQ(table.resolvePass("applications/m%75lti"),
              (PassTarget{Kind::Application, "multi", "front"}));
    EXPECT_EQ(table.resolvePass("upstreams/pool"), (PassTarget{Kind::Upstream, "pool", ""}));
    EXPECT_EQ(table.resolvePass("upstreams/none").kind, Kind::Invalid);
    for (std::string_view bad :
         {"", "routes/", "routes/main/x", "applications", "applications/", "applications/multi/",
          "applications/a/b/c", "upstreams", "upstreams/pool/x", "other/x", "routes/%zz"}) {
        EXPECT_EQ(table.resolvePass(bad).kind, Kind::Invalid) << bad;
    }
    RouteTable array = compileOk(R"({"routes": []})");
    EXPECT_EQ(array.resolvePass("routes"), (PassTarget{Kind::Route, "", ""}));
    EXPECT_EQ(array.resolvePass("routes/x").kind, Kind::Invalid);
}

TEST(RouteTableTest, ParsePassSyntaxChecksNoExistence) {
    using Kind = PassTarget::Kind;
    EXPECT_EQ(parsePassSyntax("routes"), (PassTarget{Kind::Route, "", ""}));
    EXPECT_EQ(parsePassSyntax("applications/a%20b/t"), (PassTarget{Kind::Application, "a b", "t"}));
    EXPECT_EQ(parsePassSyntax("upstreams/u"), (PassTarget{Kind::Upstream, "u", ""}));
    EXPECT_EQ(parsePassSyntax("upstream/u").kind, Kind::Invalid);
}

TEST(RouteTableTest, PassWithVariablesIsResolvedPerRequest) {
    RouteTable table = compileOk(R"({
        "applications": {"multi": {"targets": {"front": {}, "back": {}}}},
        "routes": {"main": [{"action": {"pass": "applications/multi/$arg_t"}}]}
    })");
    const Action* action = table.match("main", TestRequest());
    ASSERT_NE(action, nullptr);
    const auto& pass = std::get<PassAction>(action->handler);
    EXPECT_FALSE(pass.resolved.has_value());
    EXPECT_EQ(table.resolvePass(pass, TestRequest("GET", "/?t=back")).target, "back");
    EXPECT_EQ(table.resolvePass(pass, TestRequest("GET", "/?t=zzz")).kind,
              PassTarget::Kind::Invalid);
    EXPECT_EQ(table.resolvePass(pass, TestRequest("GET", "/")).kind, PassTarget::Kind::Invalid);
}

TEST(RouteTableTest, ReturnWithLocation) {
    RouteTable table = compileOk(R"({"routes": [
        {"action": {"return": 301, "location": "https://${host}$request_uri"}}
    ]})");
    TestRequest request("GET", "/a%20b?x=1");
    request.header("Host", "Example.com:80");
    const Action* action = table.match("", request);
    ASSERT_NE(action, nullptr);
    const auto& result = std::get<ReturnAction>(action->handler);
    EXPECT_EQ(result.status, 301);
    ASSERT_TRUE(result.location.has_value());
    EXPECT_EQ(result.location->evaluate(request), "https://example.com/a%20b?x=1");
}

TEST(RouteTableTest, ShareAndProxyAreKeptAsData) {
    RouteTable table = compileOk(R"({"routes": [
        {"match": {"uri": "/static/*"},
         "action": {"share": ["/srv/a$uri", "/srv/b$uri"], "index": "home.html",
                    "types": ["image/*", "!image/svg+xml"], "chroot": "/srv",
                    "follow_symlinks": false, "traverse_mounts": false,
                    "fallback": {"share": "/srv/fallback", "fallback": {"return": 404}}}},
        {"action": {"proxy": "http://127.0.0.1:8081"}}
    ]})");
    TestRequest request("GET", "/static/x.png");
    const Action* action = table.match("", request);
    ASSERT_NE(action, nullptr);
    const auto& share = std::get<ShareAction>(action->handler);
    ASSERT_EQ(share.paths.size(), 2u);
    EXPECT_EQ(share.paths[1].evaluate(request), "/srv/b/static/x.png");
    EXPECT_EQ(share.index, "home.html");
    ASSERT_TRUE(share.types.has_value());
    EXPECT_TRUE(share.types->matches("IMAGE/PNG"));
    EXPECT_FALSE(share.types->matches("image/svg+xml"));
    EXPECT_EQ(share.chroot->evaluate(request), "/srv");
    EXPECT_FALSE(share.follow_symlinks);
    EXPECT_FALSE(share.traverse_mounts);
    ASSERT_NE(share.fallback, nullptr);
    const auto& fallback = std::get<ShareAction>(share.fallback->handler);
    EXPECT_EQ(fallback.index, "index.html");
    EXPECT_TRUE(fallback.follow_symlinks);
    ASSERT_NE(fallback.fallback, nullptr);
    EXPECT_EQ(std::get<ReturnAction>(fallback.fallback->handler).status, 404);

    const Action* proxy = table.match("", TestRequest("GET", "/api"));
    ASSERT_NE(proxy, nullptr);
    EXPECT_EQ(std::get<ProxyAction>(proxy->handler).address, "127.0.0.1:8081");
}

TEST(RouteTableTest, Rewrite) {
    RouteTable table = compileOk(R"({"routes": [
        {"match": {"uri": "/old/*"}, "action": {"rewrite": "/new$uri?ignored=1", "return": 200}},
        {"match": {"uri": "/up"}, "action": {"rewrite": "/../x", "return": 200}},
        {"action": {"return": 200}}
    ]})");
    TestRequest request("GET", "/old/a%20b?q=1");
    const Action* action = table.match("", request);
    ASSERT_NE(action, nullptr);
    ASSERT_TRUE(applyRewrite(*action, request.view()).ok());
    EXPECT_EQ(request.view().path(), "/new/old/a b");
    EXPECT_EQ(request.view().target, "/old/a%20b?q=1");  // $request_uri unchanged
    EXPECT_EQ(request.view().query, "q=1");              // original query kept

    TestRequest up("GET", "/up");
    const Action* refused = table.match("", up);
    ASSERT_NE(refused, nullptr);
    EXPECT_FALSE(applyRewrite(*refused, up.view()).ok());
    EXPECT_EQ(up.view().path(), "/up");

    TestRequest plain("GET", "/plain");
    ASSERT_TRUE(applyRewrite(*table.match("", plain), plain.view()).ok());
    EXPECT_EQ(plain.view().path(), "/plain");

    // A rewritten $uri is what later route lookups match.
    RouteTable second =
        compileOk(R"({"routes": [{"match": {"uri": "/new/*"}, "action": {"return": 204}}]})");
    EXPECT_NE(second.match("", request), nullptr);
}

TEST(RouteTableTest, ResponseHeaders) {
    RouteTable table = compileOk(R"({"routes": [{"action": {"return": 200,
        "response_headers": {"X-Type": "was $response_header_content_type",
                             "Content-Type": "text/plain", "Server": null,
                             "X-Request": "$uri"}}}]})");
    TestRequest request("GET", "/p");
    request.responseHeader("Content-Type", "text/html").responseHeader("Server", "Canopy");
    const Action* action = table.match("", request);
    ASSERT_NE(action, nullptr);
    std::vector<HeaderField> headers = {
        {"content-type", "text/html"}, {"Server", "Canopy"}, {"server", "again"}};
    applyResponseHeaders(*action, request, 200, headers);
    ASSERT_EQ(headers.size(), 3u);
    EXPECT_EQ(headers[0].name, "content-type");
    EXPECT_EQ(headers[0].value, "text/plain");
    EXPECT_EQ(headers[1].name, "X-Type");
    EXPECT_EQ(headers[1].value, "was text/html");
    EXPECT_EQ(headers[2].name, "X-Request");
    EXPECT_EQ(headers[2].value, "/p");

    std::vector<HeaderField> error_headers = {{"Server", "Canopy"}};
    applyResponseHeaders(*action, request, 404, error_headers);
    ASSERT_EQ(error_headers.size(), 1u);  // only 2xx and 3xx
    applyResponseHeaders(*action, request, 302, error_headers);
    EXPECT_EQ(error_headers.size(), 3u);
}

// ---- compile errors ----

TEST(RouteTableCompileTest, BadTreesAreErrorsNamingThePlace) {
    struct Bad {
        const char* configuration;
        const char* where;
    };
    const Bad cases[] = {
        {R"([])", "configuration"},
        {R"({"routes": 5})", "routes"},
        {R"({"routes": {"": []}})", "routes"},
        {R"({"routes": {"a": {}}})", "routes/a"},
        {R"({"routes": [5]})", "routes/0"},
        {R"({"routes": [{}]})", "routes/0"},
        {R"({"routes": [{"match": {}}]})", "routes/0"},
        {R"({"routes": [{"action": {"return": 200}, "extra": 1}]})", "routes/0/extra"},
        {R"({"routes": [{"match": [], "action": {"return": 200}}]})", "routes/0/match"},
        {R"({"routes": [{"match": {"nope": "x"}, "action": {"return": 200}}]})",
         "routes/0/match/nope"},
        {R"({"routes": [{"match": {"uri": 5}, "action": {"return": 200}}]})", "routes/0/match/uri"},
        {R"({"routes": [{"match": {"uri": "/a**"}, "action": {"return": 200}}]})", "uri"},
        {R"({"routes": [{"match": {"uri": "/%zz"}, "action": {"return": 200}}]})", "uri"},
        {R"({"routes": [{"match": {"uri": "~("}, "action": {"return": 200}}]})", "uri"},
        {R"({"routes": [{"match": {"arguments": {"": "x"}}, "action": {"return": 200}}]})",
         "arguments"},
        {R"({"routes": [{"match": {"arguments": {"%zz": "x"}}, "action": {"return": 200}}]})",
         "arguments"},
        {R"({"routes": [{"match": {"headers": [5]}, "action": {"return": 200}}]})", "headers/0"},
        {R"({"routes": [{"match": {"cookies": "x"}, "action": {"return": 200}}]})", "cookies"},
        {R"({"routes": [{"match": {"scheme": "ftp"}, "action": {"return": 200}}]})", "scheme"},
        {R"({"routes": [{"match": {"scheme": 1}, "action": {"return": 200}}]})", "scheme"},
        {R"({"routes": [{"match": {"source": "*"}, "action": {"return": 200}}]})", "source"},
        {R"({"routes": [{"match": {"destination": [1]}, "action": {"return": 200}}]})",
         "destination"},
        {R"({"routes": [{"match": {"if": "$nope"}, "action": {"return": 200}}]})", "if"},
        {R"({"routes": [{"match": {"if": true}, "action": {"return": 200}}]})", "if"},
        {R"({"routes": [{"action": {}}]})", "action"},
        {R"({"routes": [{"action": 5}]})", "action"},
        {R"({"routes": [{"action": {"return": 200, "pass": "routes"}}]})", "action"},
        {R"({"routes": [{"action": {"return": 1000}}]})", "return"},
        {R"({"routes": [{"action": {"return": 2.5}}]})", "return"},
        {R"({"routes": [{"action": {"return": "200"}}]})", "return"},
        {R"({"routes": [{"action": {"return": 301, "location": "$nope"}}]})", "location"},
        {R"({"routes": [{"action": {"pass": "routes", "location": "/"}}]})", "location"},
        {R"({"routes": [{"action": {"pass": "routes/x"}}]})", "pass"},
        {R"({"routes": [{"action": {"pass": "applications/none"}}]})", "pass"},
        {R"({"routes": [{"action": {"pass": 5}}]})", "pass"},
        {R"({"routes": [{"action": {"pass": "routes/$nope"}}]})", "pass"},
        {R"({"routes": [{"action": {"share": []}}]})", "share"},
        {R"({"routes": [{"action": {"share": [5]}}]})", "share/0"},
        {R"({"routes": [{"action": {"share": "/s", "index": ""}}]})", "index"},
        {R"({"routes": [{"action": {"share": "/s", "types": 5}}]})", "types"},
        {R"({"routes": [{"action": {"share": "/s", "follow_symlinks": "yes"}}]})",
         "follow_symlinks"},
        {R"({"routes": [{"action": {"share": "/s", "fallback": 5}}]})", "fallback"},
        {R"({"routes": [{"action": {"return": 200, "index": "x"}}]})", "index"},
        {R"({"routes": [{"action": {"proxy": "https://x"}}]})", "proxy"},
        {R"({"routes": [{"action": {"proxy": 5}}]})", "proxy"},
        {R"({"routes": [{"action": {"return": 200, "rewrite": 5}}]})", "rewrite"},
        {R"({"routes": [{"action": {"return": 200, "response_headers": []}}]})",
         "response_headers"},
        {R"({"routes": [{"action": {"return": 200, "response_headers": {"Content-Length": "1"}}}]})",
         "Content-Length"},
        {R"({"routes": [{"action": {"return": 200, "response_headers": {"": "1"}}}]})",
         "response_headers"},
        {R"({"routes": [{"action": {"return": 200, "response_headers": {"X": 1}}}]})",
         "response_headers/X"},
        {R"({"routes": [{"action": {"return": 200, "nope": 1}}]})", "nope"},
        {R"({"applications": [], "routes": []})", "applications"},
        {R"({"upstreams": "x", "routes": []})", "upstreams"},
    };
    for (const Bad& bad : cases) {
        auto table = RouteTable::compile(parseJson(bad.configuration));
        ASSERT_FALSE(table.ok()) << bad.configuration;
        EXPECT_NE(table.error().message.find(bad.where), std::string::npos)
            << bad.configuration << " -> " << table.error().message;
    }
}

TEST(RouteTableCompileTest, DeeplyNestedFallbacksAreRefusedNotOverflowed) {
    json::Value action = json::Value::object();
    action.set("return", 404);
    for (int depth = 0; depth < 200; ++depth) {
        json::Value outer = json::Value::object();
        outer.set("share", "/srv");
        outer.set("fallback", std::move(action));
        action = std::move(outer);
    }
    json::Value step = json::Value::object();
    step.set("action", std::move(action));
    json::Value root = json::Value::object();
    root.set("routes", json::Array{std::move(step)});
    EXPECT_FALSE(RouteTable::compile(root).ok());
}

// Applies 1-3 random edits to `tree`: a node replaced by a tricky value, a
// member or element removed, or a member or element added.
void mutate(json::Value& tree, std::mt19937& random) {
    static const std::vector<json::Value> replacements = {
        json::Value(),
        json::Value(true),
        json::Value(0),
        json::Value(-1),
        json::Value(1000),
        json::Value(2.5),
        json::Value(""),
        json::Value("*"),
        json::Value("**"),
        json::Value("!"),
        json::Value("~("),
        json::Value("~"),
        json::Value("$"),
        json::Value("${"),
        json::Value("$arg_"),
        json::Value("%"),
        json::Value("%00"),
        json::Value("unix"),
        json::Value("[::1]:"),
        json::Value("1.2.3.4/99"),
        json::Value("routes"),
        json::Value("applications/app/none"),
        json::Value("http://"),
        json::Value(json::Array{}),
        json::Value(json::Array{json::Value()}),
        json::Value::object(),
        json::Value(json::Object{{"", json::Value("x")}}),
        json::Value(json::Object{{"a", json::Value(json::Array{json::Value(1)})}}),
    };
    auto pick = [&](size_t count) {
        return std::uniform_int_distribution<size_t>(0, count - 1)(random);
    };
    std::function<void(json::Value&, std::vector<json::Value*>&)> collect =
        [&](json::Value& node, std::vector<json::Value*>& nodes) {
            nodes.push_back(&node);
            if (node.isArray()) {
                for (json::Value& element : node.asArray()) {
                    collect(element, nodes);
                }
            } else if (node.isObject()) {
                for (json::Member& member : node.asObject()) {
                    collect(member.value, nodes);
                }
            }
        };
    size_t mutations = 1 + pick(3);
    for (size_t mutation = 0; mutation < mutations; ++mutation) {
        std::vector<json::Value*> nodes;
        collect(tree, nodes);
        json::Value* node = nodes[pick(nodes.size())];
        switch (pick(3)) {
            case 0:
                *node = replacements[pick(replacements.size())];
                break;
            case 1:
                if (node->isObject() && !node->asObject().empty()) {
                    auto& members = node->asObject();
                    members.erase(members.begin() + static_cast<long>(pick(members.size())));
                } else if (node->isArray() && !node->asArray().empty()) {
                    auto& elements = node->asArray();
                    elements.erase(elements.begin() + static_cast<long>(pick(elements.size())));
                }
                break;
            default:
                if (node->isObject()) {
                    static const char* kKeys[] = {"match", "action",   "pass", "return",   "share",
                                                  "uri",   "fallback", "if",   "location", "nope"};
                    node->set(kKeys[pick(std::size(kKeys))],
                              replacements[pick(replacements.size())]);
                } else if (node->isArray()) {
                    node->asArray().push_back(replacements[pick(replacements.size())]);
                }
                break;
        }
    }
}

// Random mutations of a valid tree: each must compile or fail cleanly, and
// whatever compiles must match without crashing.
TEST(RouteTableCompileTest, MutatedTreesCompileOrFailCleanly) {
    const json::Value base = parseJson(R"({
        "applications": {"app": {"type": "python", "targets": {"t": {}}}},
        "upstreams": {"u": {"servers": {"127.0.0.1:1": {}}}},
        "routes": {
            "main": [
                {"match": {"method": ["GET", "!HEAD"], "host": "*.example.com",
                           "uri": ["/api/*", "~^/v[0-9]+/"], "query": "a=*",
                           "arguments": [{"a": "1"}, {"b": ["!2", "3*"]}],
                           "headers": {"X-A": "~x"}, "cookies": {"c": "*"},
                           "scheme": "https", "source": ["10.0.0.0/8", "!10.0.0.1"],
                           "destination": "*:80-90", "if": "!$arg_x"},
                 "action": {"pass": "applications/app/t", "rewrite": "/r$uri",
                            "response_headers": {"X": "$host", "Y": null}}},
                {"action": {"share": ["/s$uri"], "types": "text/*", "chroot": "/s",
                            "fallback": {"return": 302, "location": "/x"}}},
                {"action": {"pass": "routes/other"}},
                {"action": {"proxy": "http://[::1]:80"}}
            ],
            "other": [{"action": {"pass": "upstreams/u"}}]
        }
    })");
    std::mt19937 random(12345);
    int compiled = 0;
    for (int iteration = 0; iteration < 3000; ++iteration) {
        json::Value tree = base;
        mutate(tree, random);
        auto table = RouteTable::compile(tree);
        if (!table.ok()) {
            EXPECT_FALSE(table.error().message.empty());
            continue;
        }
        ++compiled;
        TestRequest request("GET", "/api/x?a=1&b=3");
        request.header("Host", "www.example.com").header("X-A", "x").header("Cookie", "c=1");
        request.https().remote(address("10.1.1.1:5")).local(address("192.0.2.1:85"));
        for (std::string_view route : {"", "main", "other"}) {
            if (const Action* action = table->match(route, request)) {
                (void)applyRewrite(*action, request.view());
                if (const auto* pass = std::get_if<PassAction>(&action->handler)) {
                    (void)table->resolvePass(*pass, request);
                }
            }
        }
    }
    // Both outcomes happen, so the mutations reach deep enough.
    EXPECT_GT(compiled, 100);
    EXPECT_LT(compiled, 3000);
}

// The router compiles what the controller validated: every tree that
// validation accepts must compile (except a step without "action", which
// Unit also refuses only when applying).
TEST(RouteTableCompileTest, WhatValidationAcceptsCompiles) {
    const json::Value base = parseJson(R"({
        "listeners": {"*:8080": {"pass": "routes/main"}},
        "upstreams": {"u": {"servers": {"127.0.0.1:1": {}}}},
        "routes": {
            "main": [
                {"match": {"method": ["GET", "!HEAD"], "host": "*.example.com",
                           "uri": ["/api/*", "~^/v[0-9]+/", "/%41*"], "query": "a=*",
                           "arguments": [{"a": "1"}, {"b%20c": ["!2", "3*"]}],
                           "headers": {"X-A": "~x"}, "cookies": {"c": "*"},
                           "scheme": "HTTPS", "source": ["10.0.0.0/8", "!10.0.0.1", "unix"],
                           "destination": ["*:80-90", "[::1]:1", "::/0", "1.1.1.1-1.1.1.9:5"],
                           "if": "!${arg_x}"},
                 "action": {"pass": "routes/other", "rewrite": "/r$uri",
                            "response_headers": {"X": "$host", "Y": null}}},
                {"action": {"share": ["/s$uri"], "types": "text/*", "index": "i.html",
                            "fallback": {"return": 302, "location": "/x$dollar"}}},
                {"action": {"proxy": "http://[::1]:80"}}
            ],
            "other": [{"action": {"pass": "upstreams/u"}}]
        }
    })");
    config::ValidationContext context;
    ASSERT_TRUE(config::validateConfiguration(base, context).ok());
    ASSERT_TRUE(RouteTable::compile(base).ok());
    std::mt19937 random(54321);
    int validated = 0;
    for (int iteration = 0; iteration < 3000; ++iteration) {
        json::Value tree = base;
        mutate(tree, random);
        if (!config::validateConfiguration(tree, context).ok()) {
            continue;
        }
        ++validated;
        auto table = RouteTable::compile(tree);
        if (!table.ok()) {
            EXPECT_NE(table.error().message.find("needs an \"action\""), std::string::npos)
                << json::serialize(tree) << " -> " << table.error().message;
        }
    }
    EXPECT_GT(validated, 100);
}

// ---- threads ----

TEST(RouteTableThreadTest, ManyThreadsMatchTheSameTable) {
    RouteTable table = compileOk(R"({"routes": [
        {"match": {"uri": "~^/re/[0-9]+$", "arguments": {"k": "~^v"}}, "action": {"return": 201}},
        {"match": {"uri": "/glob/*/x", "headers": {"X-T": "a*"}}, "action": {"return": 202}},
        {"match": {"source": "10.0.0.0/8", "if": "$arg_on"}, "action": {"return": 203}},
        {"action": {"return": 204}}
    ]})");
    struct Probe {
        std::string target;
        std::string header;
        std::string remote;
        int expected;
    };
    const std::vector<Probe> probes = {
        {"/re/123?k=v1", "", "192.0.2.1:1", 201}, {"/re/12a?k=v1", "", "192.0.2.1:1", 204},
        {"/glob/q/x", "abc", "192.0.2.1:1", 202}, {"/glob/q/x", "b", "192.0.2.1:1", 204},
        {"/?on=1", "", "10.9.9.9:1", 203},        {"/?on=0", "", "10.9.9.9:1", 204},
    };
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int thread = 0; thread < 8; ++thread) {
        threads.emplace_back([&, thread] {
            for (int iteration = 0; iteration < 2000; ++iteration) {
                const Probe& probe =
                    probes[static_cast<size_t>(iteration + thread) % probes.size()];
                TestRequest request("GET", probe.target);
                if (!probe.header.empty()) {
                    request.header("X-T", probe.header);
                }
                request.remote(address(probe.remote));
                const Action* action = table.match("", request);
                int status = action == nullptr ? 0 : std::get<ReturnAction>(action->handler).status;
                if (status != probe.expected) {
                    ++failures;
                }
            }
        });
    }
    for (std::thread& thread : threads) {
        thread.join();
    }
    EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace canopy::routing
