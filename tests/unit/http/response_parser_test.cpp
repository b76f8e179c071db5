#include "core/http/response_parser.h"

#include <gtest/gtest.h>

#include <string>

namespace canopy::http {
namespace {

ResponseParseResult parseWhole(ResponseParser& parser, std::string_view text,
                               bool head_request = false) {
    return parser.parse(text, head_request);
}

TEST(ResponseParser, ContentLengthResponse) {
    ResponseParser parser;
    std::string text = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello";
    auto result = parseWhole(parser, text);
    ASSERT_EQ(result.status, ResponseParseStatus::Done);
    EXPECT_EQ(result.consumed, text.size() - 5);
    const auto& head = parser.head();
    EXPECT_EQ(head.status, 200);
    EXPECT_EQ(head.framing, ResponseBodyFraming::ContentLength);
    EXPECT_EQ(head.content_length, 5u);
    EXPECT_TRUE(head.keep_alive);
    ASSERT_EQ(head.fields.size(), 2u);
    ASSERT_NE(head.find("x-a"), nullptr);
    EXPECT_EQ(head.find("x-a")->value, "b");
}

TEST(ResponseParser, EveryFraming) {
    struct Case {
        std::string text;
        bool head_request;
        ResponseBodyFraming framing;
        bool keep_alive;
    };
    for (const Case& c : std::vector<Case>{
             {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false,
              ResponseBodyFraming::Chunked, true},
             {"HTTP/1.1 200 OK\r\n\r\n", false, ResponseBodyFraming::UntilClose, false},
             {"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n", false,
              ResponseBodyFraming::None, true},
             {"HTTP/1.1 304 Not Modified\r\n\r\n", false, ResponseBodyFraming::None, true},
             {"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true, ResponseBodyFraming::None,
              true},
             {"HTTP/1.1 100 Continue\r\n\r\n", false, ResponseBodyFraming::None, true},
             {"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false,
              ResponseBodyFraming::ContentLength, false},
             {"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n", false,
              ResponseBodyFraming::ContentLength, true},
             {"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n", false,
              ResponseBodyFraming::ContentLength, false},
             {"HTTP/1.1 200 OK\nContent-Length: 1\n\n", false, ResponseBodyFraming::ContentLength,
              true},
         }) {
        ResponseParser parser;
        auto result = parseWhole(parser, c.text, c.head_request);
        ASSERT_EQ(result.status, ResponseParseStatus::Done) << c.text;
        EXPECT_EQ(result.consumed, c.text.size()) << c.text;
        EXPECT_EQ(parser.head().framing, c.framing) << c.text;
        EXPECT_EQ(parser.head().keep_alive, c.keep_alive) << c.text;
    }
}

TEST(ResponseParser, RefusesBrokenHeads) {
    for (const char* text : {
             "HTTP/2 200 OK\r\n\r\n",
             "HTTP/1.1 20 OK\r\n\r\n",
             "HTTP/1.1 2000 OK\r\n\r\n",
             "ICY 200 OK\r\n\r\n",
             "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
             "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
             "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
             "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
             "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
             "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
             "HTTP/1.1 200 OK\r\n folded\r\n\r\n",
             "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
         }) {
        ResponseParser parser;
        EXPECT_EQ(parseWhole(parser, text).status, ResponseParseStatus::Error) << text;
    }
}

TEST(ResponseParser, SameAnswerAtEverySplit) {
    std::string text =
        "HTTP/1.1 201 Created\r\nLocation: /x\r\nConnection: close, X-Hop\r\n"
        "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    for (size_t split = 0; split < text.size(); ++split) {
        ResponseParser parser;
        auto result = parser.parse(std::string_view(text).substr(0, split), false);
        if (result.status == ResponseParseStatus::NeedMore) {
            result = parser.parse(text, false);
        }
        ASSERT_EQ(result.status, ResponseParseStatus::Done) << split;
        EXPECT_EQ(text.substr(result.consumed, 3), "5\r\n") << split;
        EXPECT_EQ(parser.head().status, 201);
        EXPECT_EQ(parser.head().framing, ResponseBodyFraming::Chunked);
        EXPECT_FALSE(parser.head().keep_alive);
        ASSERT_EQ(parser.head().connection_tokens.size(), 2u);
        EXPECT_EQ(parser.head().connection_tokens[1], "X-Hop");
    }
}

TEST(ResponseParser, InterimThenFinal) {
    std::string text = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    ResponseParser parser;
    auto first = parser.parse(text, false);
    ASSERT_EQ(first.status, ResponseParseStatus::Done);
    EXPECT_TRUE(parser.head().interim());
    parser.reset();
    auto second = parser.parse(std::string_view(text).substr(first.consumed), false);
    ASSERT_EQ(second.status, ResponseParseStatus::Done);
    EXPECT_EQ(parser.head().status, 200);
    EXPECT_EQ(first.consumed + second.consumed, text.size());
}

TEST(ResponseParser, HeadTooLarge) {
    ResponseParserOptions options;
    options.max_head_size = 64;
    ResponseParser parser(options);
    std::string text = "HTTP/1.1 200 OK\r\nX-Long: " + std::string(100, 'a');
    EXPECT_EQ(parser.parse(text, false).status, ResponseParseStatus::Error);
}

}  // namespace
}  // namespace canopy::http
