#include "core/http/request_parser.h"

#include <gtest/gtest.h>

#include <string>

#include "tests/unit/http/parse_helpers.h"

namespace canopy::http {
namespace {

using testing::Outcome;
using testing::parseByteAtATime;
using testing::parseOnce;
using testing::parseSplit;

// Parses `text` whole and a byte at a time, checks both agree, and returns
// the outcome.
Outcome parseBothWays(std::string_view text, RequestParserOptions options = {}) {
    Outcome once = parseOnce(text, options);
    Outcome bytewise = parseByteAtATime(text, options);
    EXPECT_EQ(once, bytewise) << "fed whole and byte at a time differ for: " << text;
    return once;
}

Outcome accept(std::string_view text, RequestParserOptions options = {}) {
    Outcome outcome = parseBothWays(text, options);
    EXPECT_EQ(outcome.status, ParseStatus::Done)
        << "refused (" << outcome.error_status << "): " << text;
    return outcome;
}

void expectRefused(std::string_view text, int status, RequestParserOptions options = {}) {
    Outcome outcome = parseBothWays(text, options);
    EXPECT_EQ(outcome.status, ParseStatus::Error) << text;
    EXPECT_EQ(outcome.error_status, status) << text;
    EXPECT_TRUE(outcome.close) << text;
}

std::string get(std::string_view extra_fields, std::string_view version = "HTTP/1.1") {
    return "GET / " + std::string(version) + "\r\nHost: example.com\r\n" +
           std::string(extra_fields) + "\r\n";
}

// ---- valid requests ----

TEST(RequestParser, SimpleGet) {
    std::string text = "GET /index.html?a=1&b HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";
    Outcome outcome = accept(text);
    EXPECT_EQ(outcome.consumed, text.size());
    EXPECT_EQ(outcome.method, "GET");
    EXPECT_EQ(outcome.method_kind, Method::Get);
    EXPECT_EQ(outcome.target, "/index.html?a=1&b");
    EXPECT_EQ(outcome.path, "/index.html");
    EXPECT_TRUE(outcome.has_query);
    EXPECT_EQ(outcome.query, "a=1&b");
    EXPECT_EQ(outcome.request_line, "GET /index.html?a=1&b HTTP/1.1");
    EXPECT_EQ(outcome.version_minor, 1u);
    EXPECT_EQ(outcome.host, "example.com");
    EXPECT_TRUE(outcome.has_host);
    EXPECT_EQ(outcome.framing, BodyFraming::None);
    EXPECT_TRUE(outcome.keep_alive);
    ASSERT_EQ(outcome.fields.size(), 2u);
    EXPECT_EQ(outcome.fields[0], (std::pair<std::string, std::string>("Host", "example.com")));
    EXPECT_EQ(outcome.fields[1], (std::pair<std::string, std::string>("Accept", "*/*")));
}

TEST(RequestParser, NeedMoreUntilBlankLine) {
    RequestParser parser;
    EXPECT_EQ(parser.parse("GET / HTTP/1.1\r\nHost: a\r\n").status, ParseStatus::NeedMore);
    EXPECT_EQ(parser.parse("GET / HTTP/1.1\r\nHost: a\r\n\r").status, ParseStatus::NeedMore);
    EXPECT_EQ(parser.parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n").status, ParseStatus::Done);
}

TEST(RequestParser, QueryAbsentAndEmpty) {
    Outcome plain = accept("GET /a HTTP/1.0\r\n\r\n");
    EXPECT_FALSE(plain.has_query);
    EXPECT_EQ(plain.path, "/a");
    Outcome empty = accept("GET /a? HTTP/1.0\r\n\r\n");
    EXPECT_TRUE(empty.has_query);
    EXPECT_EQ(empty.query, "");
}

TEST(RequestParser, MethodsAreRecognizedCaseSensitively) {
    struct Case {
        const char* text;
        Method method;
    } cases[] = {{"GET", Method::Get},     {"HEAD", Method::Head},     {"POST", Method::Post},
                 {"PUT", Method::Put},     {"DELETE", Method::Delete}, {"OPTIONS", Method::Options},
                 {"PATCH", Method::Patch}, {"TRACE", Method::Trace},   {"PROPFIND", Method::Other},
                 {"get", Method::Other},   {"M-SEARCH", Method::Other}};
    for (const Case& c : cases) {
        Outcome outcome = accept(std::string(c.text) + " / HTTP/1.1\r\nHost: h\r\n\r\n");
        EXPECT_EQ(outcome.method, c.text);
        EXPECT_EQ(outcome.method_kind, c.method) << c.text;
    }
}

TEST(RequestParser, HeadGetPostFraming) {
    EXPECT_EQ(accept("HEAD / HTTP/1.1\r\nHost: h\r\n\r\n").framing, BodyFraming::None);
    Outcome get_with_body = accept("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n");
    EXPECT_EQ(get_with_body.framing, BodyFraming::ContentLength);
    EXPECT_EQ(get_with_body.content_length, 3u);
    Outcome post = accept("POST /f HTTP/1.1\r\nHost: h\r\ncontent-length: 0\r\n\r\n");
    EXPECT_EQ(post.framing, BodyFraming::ContentLength);
    EXPECT_EQ(post.content_length, 0u);
    Outcome chunked = accept("POST /f HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n");
    EXPECT_EQ(chunked.framing, BodyFraming::Chunked);
    Outcome bare_post = accept("POST /f HTTP/1.1\r\nHost: h\r\n\r\n");
    EXPECT_EQ(bare_post.framing, BodyFraming::None);
}

TEST(RequestParser, LargestContentLength) {
    Outcome outcome = accept(get("Content-Length: 9223372036854775807\r\n"));
    EXPECT_EQ(outcome.content_length, 9223372036854775807u);
    EXPECT_EQ(accept(get("Content-Length: 0000000000000000005\r\n")).content_length, 5u);
}

TEST(RequestParser, KeepAliveHttp11DefaultsOn) {
    EXPECT_TRUE(accept(get("")).keep_alive);
    EXPECT_FALSE(accept(get("Connection: close\r\n")).keep_alive);
    EXPECT_FALSE(accept(get("Connection: Keep-Alive, CLOSE\r\n")).keep_alive);
    EXPECT_FALSE(accept(get("Connection: keep-alive\r\nConnection: close\r\n")).keep_alive);
    EXPECT_TRUE(accept(get("Connection: closed\r\n")).keep_alive);
}

TEST(RequestParser, KeepAliveHttp10DefaultsOff) {
    Outcome plain = accept("GET / HTTP/1.0\r\n\r\n");
    EXPECT_FALSE(plain.keep_alive);
    EXPECT_EQ(plain.version_minor, 0u);
    EXPECT_FALSE(plain.has_host);
    EXPECT_TRUE(accept("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
    EXPECT_FALSE(accept("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n").keep_alive);
}

TEST(RequestParser, ExpectContinue) {
    EXPECT_TRUE(accept(get("Expect: 100-continue\r\n")).expect_continue);
    EXPECT_TRUE(accept(get("Expect: 100-Continue\r\n")).expect_continue);
    EXPECT_FALSE(accept(get("Expect: something-else\r\n")).expect_continue);
    EXPECT_FALSE(accept(get("")).expect_continue);
    // RFC 9110 §10.1.1: ignored in HTTP/1.0.
    EXPECT_FALSE(accept("POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n").expect_continue);
}

TEST(RequestParser, WebSocketUpgrade) {
    Outcome outcome = accept(get("Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n"));
    EXPECT_TRUE(outcome.connection_upgrade);
    EXPECT_EQ(outcome.upgrade, "websocket");
    EXPECT_TRUE(outcome.websocket);
    EXPECT_TRUE(accept(get("Connection: upgrade\r\nUpgrade: h2c, WebSocket/13\r\n")).websocket);
    EXPECT_FALSE(accept(get("Upgrade: websocket\r\n")).websocket);  // no Connection: upgrade
    EXPECT_FALSE(accept(get("Connection: upgrade\r\nUpgrade: h2c\r\n")).websocket);
    EXPECT_FALSE(accept("POST / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n"
                        "Upgrade: websocket\r\n\r\n")
                     .websocket);
}

TEST(RequestParser, ValueWhitespaceIsTrimmedAndObsTextKept) {
    Outcome outcome = accept(get("X-A: \t padded value \t\r\nX-B:\r\nX-C: caf\xc3\xa9\r\n"));
    ASSERT_EQ(outcome.fields.size(), 4u);
    EXPECT_EQ(outcome.fields[1].second, "padded value");
    EXPECT_EQ(outcome.fields[2].second, "");
    EXPECT_EQ(outcome.fields[3].second, "caf\xc3\xa9");
}

TEST(RequestParser, FindIsCaseInsensitive) {
    RequestParser parser;
    std::string text = get("X-Thing: 1\r\n");
    ASSERT_EQ(parser.parse(text).status, ParseStatus::Done);
    ASSERT_NE(parser.head().find("x-thing"), nullptr);
    EXPECT_EQ(parser.head().find("X-THING")->value, "1");
    EXPECT_EQ(parser.head().find("x-other"), nullptr);
}

TEST(RequestParser, EmptyLinesBeforeRequestLineAreSkipped) {
    std::string text = "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
    Outcome outcome = accept(text);
    EXPECT_EQ(outcome.consumed, text.size());
    EXPECT_EQ(outcome.request_line, "GET / HTTP/1.1");
}

TEST(RequestParser, LaterHttp1MinorsCountAsHttp11) {
    Outcome outcome = accept("GET / HTTP/1.2\r\nHost: h\r\n\r\n");
    EXPECT_EQ(outcome.version_minor, 1u);
    expectRefused("GET / HTTP/1.2\r\n\r\n", 400);  // and so need Host
}

TEST(RequestParser, EmptyHostIsAccepted) {
    Outcome outcome = accept("GET / HTTP/1.1\r\nHost:\r\n\r\n");
    EXPECT_TRUE(outcome.has_host);
    EXPECT_EQ(outcome.host, "");
    EXPECT_EQ(accept("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n").host, "[::1]:8080");
}

TEST(RequestParser, AsteriskFormForOptions) {
    Outcome outcome = accept("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
    EXPECT_EQ(outcome.target, "*");
    EXPECT_EQ(outcome.path, "*");
}

TEST(RequestParser, AbsoluteFormTakesHostFromTarget) {
    Outcome outcome = accept("GET http://Example.COM:8080/p/q?x=1 HTTP/1.1\r\nHost: other\r\n\r\n");
    EXPECT_TRUE(outcome.absolute_form);
    EXPECT_EQ(outcome.host, "Example.COM:8080");
    EXPECT_EQ(outcome.target, "/p/q?x=1");
    EXPECT_EQ(outcome.path, "/p/q");
    EXPECT_EQ(outcome.query, "x=1");
    EXPECT_EQ(accept("GET HTTPS://h HTTP/1.1\r\nHost: h\r\n\r\n").target, "/");
    Outcome query_only = accept("GET http://h?a=b HTTP/1.1\r\nHost: h\r\n\r\n");
    EXPECT_EQ(query_only.target, "/?a=b");
    EXPECT_EQ(query_only.query, "a=b");
    // HTTP/1.0 needs no Host even then.
    EXPECT_EQ(accept("GET http://h/ HTTP/1.0\r\n\r\n").host, "h");
}

TEST(RequestParser, RawUtf8InTargetIsAccepted) {
    EXPECT_EQ(accept("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n").path, "/caf\xc3\xa9");
}

TEST(RequestParser, BareLfIsALineEndingByDefault) {
    Outcome outcome = accept("GET / HTTP/1.1\nHost: h\nX: y\r\n\n");
    EXPECT_EQ(outcome.host, "h");
    ASSERT_EQ(outcome.fields.size(), 2u);
}

TEST(RequestParser, BareLfRefusedWhenConfigured) {
    RequestParserOptions strict;
    strict.accept_bare_lf = false;
    expectRefused("GET / HTTP/1.1\nHost: h\r\n\r\n", 400, strict);
    expectRefused("GET / HTTP/1.1\r\nHost: h\n\r\n", 400, strict);
    expectRefused("GET / HTTP/1.1\r\nHost: h\r\n\n", 400, strict);
    accept("GET / HTTP/1.1\r\nHost: h\r\n\r\n", strict);
}

TEST(RequestParser, DiscardUnsafeFields) {
    std::string text = get("X_Forwarded_For: 1.2.3.4\r\nX.Dot: 1\r\nX-Ok-9: 2\r\n");
    Outcome discarded = accept(text);
    ASSERT_EQ(discarded.fields.size(), 2u);
    EXPECT_EQ(discarded.fields[1].first, "X-Ok-9");
    RequestParserOptions keep;
    keep.discard_unsafe_fields = false;
    EXPECT_EQ(accept(text, keep).fields.size(), 4u);
}

TEST(RequestParser, OptionsFromSettings) {
    RequestParserOptions options = RequestParserOptions::fromSettings(1024, 3, false);
    EXPECT_EQ(options.max_line_size, 1024u);
    EXPECT_EQ(options.max_head_size, 3072u);
    EXPECT_FALSE(options.discard_unsafe_fields);
}

TEST(RequestParser, ResultRepeatsUntilReset) {
    RequestParser parser;
    std::string text = get("");
    ParseResult first = parser.parse(text);
    ASSERT_EQ(first.status, ParseStatus::Done);
    ParseResult again = parser.parse(text + "garbage");
    EXPECT_EQ(again.status, ParseStatus::Done);
    EXPECT_EQ(again.consumed, first.consumed);
    parser.reset();
    EXPECT_EQ(parser.parse("BAD\r\n\r\n").status, ParseStatus::Error);
    EXPECT_EQ(parser.parse(text).status, ParseStatus::Error);
    parser.reset();
    EXPECT_EQ(parser.parse(text).status, ParseStatus::Done);
    EXPECT_EQ(parser.head().host, "example.com");
}

TEST(RequestParser, PipelinedRequestsInOneBuffer) {
    std::string buffer =
        "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
        "POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
        "HEAD /3 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    RequestParser parser;
    std::string_view rest = buffer;
    std::vector<std::string> targets;
    while (!rest.empty()) {
        ParseResult result = parser.parse(rest);
        ASSERT_EQ(result.status, ParseStatus::Done);
        targets.emplace_back(parser.head().target);
        rest.remove_prefix(result.consumed);
        rest.remove_prefix(parser.head().content_length);
        bool last = !parser.head().keep_alive;
        parser.reset();
        if (last) {
            break;
        }
    }
    EXPECT_TRUE(rest.empty());
    EXPECT_EQ(targets, (std::vector<std::string>{"/1", "/2", "/3"}));
}

TEST(RequestParser, ConsumedStopsAtTheHead) {
    std::string head = get("Content-Length: 4\r\n");
    Outcome outcome = parseOnce(head + "bodyGET / HTTP/1.1\r\n");
    EXPECT_EQ(outcome.status, ParseStatus::Done);
    EXPECT_EQ(outcome.consumed, head.size());
}

// ---- hostile input ----

TEST(RequestParserHostile, ContentLengthWithTransferEncoding) {
    expectRefused(get("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"), 400);
    expectRefused(get("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"), 400);
}

TEST(RequestParserHostile, DifferingContentLengths) {
    expectRefused(get("Content-Length: 5\r\nContent-Length: 6\r\n"), 400);
}

TEST(RequestParserHostile, IdenticalContentLengthsAreRefusedToo) {
    expectRefused(get("Content-Length: 5\r\nContent-Length: 5\r\n"), 400);
    expectRefused(get("Content-Length: 5, 5\r\n"), 400);
}

TEST(RequestParserHostile, NonDigitContentLength) {
    for (const char* value : {"+5", "-1", "5a", "0x10", "5 5", "1e3", "", " "}) {
        expectRefused(get(std::string("Content-Length: ") + value + "\r\n"), 400);
    }
}

TEST(RequestParserHostile, OverflowingContentLength) {
    expectRefused(get("Content-Length: 9223372036854775808\r\n"), 400);
    expectRefused(get("Content-Length: 18446744073709551616\r\n"), 400);
    expectRefused(get("Content-Length: 99999999999999999999999999\r\n"), 400);
}

TEST(RequestParserHostile, ChunkedNotFinal) {
    expectRefused(get("Transfer-Encoding: chunked, gzip\r\n"), 400);
    expectRefused(get("Transfer-Encoding: gzip\r\n"), 400);
    expectRefused(get("Transfer-Encoding: identity\r\n"), 400);
}

TEST(RequestParserHostile, UnknownCodingBeforeChunked) {
    expectRefused(get("Transfer-Encoding: gzip, chunked\r\n"), 501);
    expectRefused(get("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"), 501);
}

TEST(RequestParserHostile, ChunkedTwice) {
    expectRefused(get("Transfer-Encoding: chunked, chunked\r\n"), 400);
    expectRefused(get("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"), 400);
}

TEST(RequestParserHostile, MalformedTransferEncoding) {
    expectRefused(get("Transfer-Encoding:\r\n"), 400);
    expectRefused(get("Transfer-Encoding: ,\r\n"), 400);
    expectRefused(get("Transfer-Encoding: chunked;x=1\r\n"), 400);
    expectRefused(get("Transfer-Encoding: chu nked\r\n"), 400);
    expectRefused(get("Transfer-Encoding: \"chunked\"\r\n"), 400);
}

TEST(RequestParserHostile, TransferEncodingInHttp10) {
    expectRefused("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
}

TEST(RequestParserHostile, ObsFold) {
    expectRefused(get("X-A: one\r\n two\r\n"), 400);
    expectRefused(get("X-A: one\r\n\ttwo\r\n"), 400);
    expectRefused("GET / HTTP/1.1\r\n Host: h\r\n\r\n", 400);
}

TEST(RequestParserHostile, BareCarriageReturn) {
    expectRefused("GET / HTTP/1.1\rHost: h\r\n\r\n", 400);
    expectRefused(get("X-A: a\rb\r\n"), 400);
    expectRefused(get("X-A\r: b\r\n"), 400);
    expectRefused("GET / HTTP/1.1\r\nHost: h\r\n\r\r\n", 400);
    expectRefused("GET /a\rb HTTP/1.1\r\nHost: h\r\n\r\n", 400);
}

TEST(RequestParserHostile, ControlCharactersInValues) {
    expectRefused(get(std::string("X-A: a\0b\r\n", 10)), 400);
    expectRefused(get("X-A: a\x01"
                      "b\r\n"),
                  400);
    expectRefused(get("X-A: a\x1f\r\n"), 400);
    expectRefused(get("X-A: a\x7f\r\n"), 400);
    expectRefused(get("X-A: a\x0b\r\n"), 400);
}

TEST(RequestParserHostile, ControlCharactersInNames) {
    expectRefused(get(std::string("X\0A: b\r\n", 8)), 400);
    expectRefused(get("X\x01"
                      "A: b\r\n"),
                  400);
    expectRefused(get("X\x7f"
                      "A: b\r\n"),
                  400);
    expectRefused(get("X(A): b\r\n"), 400);
    expectRefused(get("X\xc3\xa9: b\r\n"), 400);
}

TEST(RequestParserHostile, ControlCharactersInTarget) {
    expectRefused(std::string("GET /a\0b HTTP/1.1\r\nHost: h\r\n\r\n", 30), 400);
    expectRefused("GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expectRefused("GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expectRefused("GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n", 400);
}

TEST(RequestParserHostile, WhitespaceBeforeColon) {
    expectRefused(get("Content-Length : 5\r\n"), 400);
    expectRefused(get("Transfer-Encoding\t: chunked\r\n"), 400);
    expectRefused(get("X-A  : b\r\n"), 400);
}

TEST(RequestParserHostile, MalformedFieldLines) {
    expectRefused(get(": value\r\n"), 400);
    expectRefused(get("NoColon\r\n"), 400);
    expectRefused(get("Two words: x\r\n"), 400);
}

TEST(RequestParserHostile, InvalidMethod) {
    expectRefused(" / HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expectRefused("G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expectRefused("GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expectRefused("G\xc3\xa9T / HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expectRefused("GET\r\n\r\n", 400);
}

TEST(RequestParserHostile, RequestLineShape) {
    expectRefused("GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expectRefused("GET /  HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expectRefused("GET / HTTP/1.1 \r\nHost: h\r\n\r\n", 400);
    expectRefused("GET /\r\n\r\n", 400);  // HTTP/0.9
    expectRefused("GET / \r\n\r\n", 400);
}

TEST(RequestParserHostile, InvalidVersions) {
    expectRefused("GET / http/1.1\r\nHost: h\r\n\r\n", 400);
    expectRefused("GET / HTTP/1\r\nHost: h\r\n\r\n", 400);
    expectRefused("GET / HTTP/1.\r\nHost: h\r\n\r\n", 400);
    expectRefused("GET / HTTP/1.1.1\r\nHost: h\r\n\r\n", 400);
    expectRefused("GET / HTTP/1.1000\r\nHost: h\r\n\r\n", 400);
    expectRefused("GET / FTP/1.1\r\nHost: h\r\n\r\n", 400);
}

TEST(RequestParserHostile, UnsupportedVersions) {
    expectRefused("GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505);
    expectRefused("GET / HTTP/0.9\r\nHost: h\r\n\r\n", 505);
    expectRefused("GET / HTTP/3.0\r\nHost: h\r\n\r\n", 505);
}

TEST(RequestParserHostile, InvalidTargets) {
    expectRefused("GET index.html HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expectRefused("GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expectRefused("OPTIONS *x HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expectRefused("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n", 400);
    expectRefused("GET ?a=b HTTP/1.1\r\nHost: h\r\n\r\n", 400);
}

TEST(RequestParserHostile, InvalidAbsoluteForms) {
    expectRefused("GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expectRefused("GET http:///p HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expectRefused("GET http://user@h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expectRefused("GET http://h\\x/ HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expectRefused("GET http://a..b/ HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expectRefused("GET http://h#f HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    // Absolute form does not excuse a missing Host in HTTP/1.1 (RFC 9112 §3.2).
    expectRefused("GET http://h/ HTTP/1.1\r\n\r\n", 400);
}

TEST(RequestParserHostile, MissingHostInHttp11) {
    expectRefused("GET / HTTP/1.1\r\n\r\n", 400);
    expectRefused("GET / HTTP/1.1\r\nX-Host: h\r\n\r\n", 400);
}

TEST(RequestParserHostile, DuplicateHost) {
    expectRefused("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400);
    expectRefused("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400);
}

TEST(RequestParserHostile, InvalidHost) {
    for (const char* host : {"a/b", "a b", "a\\b", "a..b", "user@h", "h?x", "h#x"}) {
        expectRefused(std::string("GET / HTTP/1.1\r\nHost: ") + host + "\r\n\r\n", 400);
    }
}

// ---- limits ----

RequestParserOptions smallLimits() {
    RequestParserOptions options;
    options.max_line_size = 64;
    options.max_head_size = 160;
    options.max_field_count = 4;
    return options;
}

TEST(RequestParserLimits, RequestLineTooLong) {
    // A line of exactly max_line_size bytes (CRLF included) is accepted.
    std::string exact = "GET /" + std::string(64 - 16, 'a') + " HTTP/1.1\r\n";
    ASSERT_EQ(exact.size(), 64u);
    accept(exact + "Host: h\r\n\r\n", smallLimits());
    std::string longer = "GET /" + std::string(64 - 15, 'a') + " HTTP/1.1\r\n";
    expectRefused(longer + "Host: h\r\n\r\n", 414, smallLimits());
    // Unfinished lines are refused as soon as they pass the limit.
    expectRefused("GET /" + std::string(200, 'a'), 414, smallLimits());
}

TEST(RequestParserLimits, FieldLineTooLong) {
    std::string exact = "X: " + std::string(64 - 5, 'v') + "\r\n";
    ASSERT_EQ(exact.size(), 64u);
    accept("GET / HTTP/1.1\r\nHost: h\r\n" + exact + "\r\n", smallLimits());
    std::string longer = "X: " + std::string(64 - 4, 'v') + "\r\n";
    expectRefused("GET / HTTP/1.1\r\nHost: h\r\n" + longer + "\r\n", 431, smallLimits());
    expectRefused("GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(300, 'v'), 431, smallLimits());
}

TEST(RequestParserLimits, HeadTooLarge) {
    RequestParserOptions options = smallLimits();
    options.max_field_count = 100;
    std::string line = "X: " + std::string(39, 'v') + "\r\n";  // 44 bytes
    std::string start = "GET / HTTP/1.1\r\nHost: h\r\n";       // 25 bytes
    accept(start + line + line + line + "\r\n", options);      // 159 bytes
    expectRefused(start + line + line + line + "X: 1\r\n\r\n", 431, options);
}

TEST(RequestParserLimits, HeadLimitCountsEveryByte) {
    RequestParserOptions options;
    options.max_line_size = 100;
    options.max_head_size = 40;
    std::string text = "GET / HTTP/1.1\r\nHost: h\r\nX: 123456789\r\n\r\n";  // 41 bytes
    ASSERT_EQ(text.size(), 41u);
    expectRefused(text, 431, options);
    options.max_head_size = 41;
    accept(text, options);
}

TEST(RequestParserLimits, TooManyFields) {
    std::string start = "GET / HTTP/1.1\r\nHost: h\r\n";
    accept(start + "A: 1\r\nB: 2\r\nC: 3\r\n\r\n", smallLimits());
    expectRefused(start + "A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", 431, smallLimits());
    // Discarded fields count: they cost parsing all the same.
    expectRefused(start + "A_: 1\r\nB_: 2\r\nC_: 3\r\nD_: 4\r\n\r\n", 431, smallLimits());
}

TEST(RequestParserLimits, DefaultsFollowUnit) {
    RequestParserOptions options;
    EXPECT_EQ(options.max_line_size, 8192u);
    EXPECT_EQ(options.max_head_size, 8192u * 4);
    EXPECT_TRUE(options.discard_unsafe_fields);
    std::string big = "GET /" + std::string(9000, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n";
    expectRefused(big, 414);
}

// ---- feeding ----

const char* const kCorpus[] = {
    "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    "GET /a/b/c?x=1&y=%20 HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: curl/8.0\r\n"
    "Accept: */*\r\n\r\n",
    "POST /upload HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\n",
    "PUT /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
    "HEAD /index.html HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n",
    "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
    "GET http://example.com/abs?q HTTP/1.1\r\nHost: example.com\r\n\r\n",
    "DELETE /r/1 HTTP/1.1\nHost: h\nX_Under: dropped\n\n",
    "\r\nGET / HTTP/1.1\r\nHost: h\r\nCookie: a=b; c=d\r\nCookie: e=f\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: h\r\nX-Empty:\r\nX-Spaces:   \t \r\n\r\n",
    // refused ones must agree too
    "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n",
    "GET / HTTP/2.0\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    "GET /\x01 HTTP/1.1\r\n\r\n",
    "GET / HTTP/1.1\r\n\r\n",
};

TEST(RequestParserFeeding, ByteAtATimeEqualsOneShot) {
    for (const char* text : kCorpus) {
        Outcome once = parseOnce(text);
        EXPECT_NE(once.status, ParseStatus::NeedMore) << text;
        EXPECT_EQ(parseByteAtATime(text), once) << text;
    }
}

TEST(RequestParserFeeding, SplitAtEveryPositionEqualsOneShot) {
    for (const char* text : kCorpus) {
        std::string_view view(text);
        Outcome once = parseOnce(view);
        for (size_t split = 0; split <= view.size(); ++split) {
            EXPECT_EQ(parseSplit(view, split), once) << "split " << split << " of " << text;
        }
    }
}

TEST(RequestParserFeeding, LimitsAgreeAtEverySplit) {
    std::string text = "GET / HTTP/1.1\r\nHost: h\r\nX-Long: " + std::string(100, 'x') + "\r\n\r\n";
    Outcome once = parseOnce(text, smallLimits());
    ASSERT_EQ(once.error_status, 431);
    EXPECT_EQ(parseByteAtATime(text, smallLimits()), once);
    for (size_t split = 0; split <= text.size(); ++split) {
        EXPECT_EQ(parseSplit(text, split, smallLimits()), once) << split;
    }
}

}  // namespace
}  // namespace canopy::http
