#include "core/router/proxy_message.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace canopy {
namespace {

std::string head(const std::vector<http::HeaderField>& fields,
                 const std::vector<routing::Address>& forwarded_for,
                 UpstreamBodyFraming framing = UpstreamBodyFraming::None, uint64_t length = 0,
                 bool websocket = false) {
    UpstreamRequest request;
    request.method = "POST";
    request.target = "/a%20b?x=1";
    request.fields = fields;
    request.host_fallback = "127.0.0.1:8080";
    request.forwarded_for = forwarded_for;
    request.framing = framing;
    request.content_length = length;
    request.websocket = websocket;
    std::string out;
    appendUpstreamRequestHead(out, request);
    return out;
}

TEST(ProxyMessage, RequestHeadKeepsEndToEndFieldsAndDropsHopByHop) {
    std::vector<http::HeaderField> fields = {
        {"Host", "example.com"},
        {"Connection", "keep-alive, X-Secret"},
        {"X-Secret", "1"},
        {"Keep-Alive", "timeout=5"},
        {"TE", "trailers"},
        {"Transfer-Encoding", "chunked"},
        {"Content-Length", "12"},
        {"Expect", "100-continue"},
        {"X-Forwarded-For", "6.6.6.6"},
        {"Accept", "*/*"},
        {"Upgrade", "h2c"},
        {"Proxy-Authorization", "Basic x"},
    };
    std::vector<routing::Address> chain = {*routing::Address::parseIp("10.0.0.5"),
                                           *routing::Address::parseIp("::1")};
    EXPECT_EQ(head(fields, chain, UpstreamBodyFraming::ContentLength, 12),
              "POST /a%20b?x=1 HTTP/1.1\r\n"
              "Host: example.com\r\n"
              "Accept: */*\r\n"
              "X-Forwarded-For: 10.0.0.5, ::1\r\n"
              "Content-Length: 12\r\n"
              "\r\n");
}

TEST(ProxyMessage, RequestHeadFramingHostAndWebSocket) {
    EXPECT_EQ(head({}, {}, UpstreamBodyFraming::Chunked),
              "POST /a%20b?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
              "Transfer-Encoding: chunked\r\n\r\n");
    EXPECT_EQ(head({{"Host", "h"},
                    {"Upgrade", "websocket"},
                    {"Connection", "Upgrade"},
                    {"Sec-WebSocket-Key", "k"}},
                   {}, UpstreamBodyFraming::None, 0, true),
              "POST /a%20b?x=1 HTTP/1.1\r\nHost: h\r\nSec-WebSocket-Key: k\r\n"
              "Connection: upgrade\r\nUpgrade: websocket\r\n\r\n");
}

TEST(ProxyMessage, ResponseFieldsTheRouterOwns) {
    std::vector<std::string_view> connection = {"close", "X-Hop"};
    for (const char* name : {"Connection", "keep-alive", "Transfer-Encoding", "Content-Length",
                             "Date", "Server", "x-hop", "Upgrade", "Trailer"}) {
        EXPECT_TRUE(droppedResponseField(name, connection)) << name;
    }
    for (const char* name : {"Content-Type", "Set-Cookie", "Location", "X-Other"}) {
        EXPECT_FALSE(droppedResponseField(name, connection)) << name;
    }
}

TEST(ProxyMessage, RewrittenTargetIsEncoded) {
    EXPECT_EQ(rewrittenTarget("/a b/%/ü", "", false), "/a%20b/%25/%C3%BC");
    EXPECT_EQ(rewrittenTarget("/new", "q=1&r", true), "/new?q=1&r");
    EXPECT_EQ(rewrittenTarget("/x?#", "", true), "/x%3F%23?");
}

}  // namespace
}  // namespace canopy
