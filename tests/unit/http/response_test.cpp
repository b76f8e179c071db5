#include "core/http/response.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/base/build_info.h"
#include "core/http/chunked_decoder.h"

namespace canopy::http {
namespace {

// The head without its Date line, which changes every second.
std::string withoutDate(const std::string& head) {
    size_t date = head.find("Date: ");
    if (date == std::string::npos) {
        return head;
    }
    size_t end = head.find("\r\n", date);
    return head.substr(0, date) + head.substr(end + 2);
}

TEST(Response, ReasonPhrases) {
    EXPECT_EQ(reasonPhrase(200), "OK");
    EXPECT_EQ(reasonPhrase(404), "Not Found");
    EXPECT_EQ(reasonPhrase(431), "Request Header Fields Too Large");
    EXPECT_EQ(reasonPhrase(299), "");
    // Every status the router generates (config-schema §8) and the parsers
    // answer has a phrase.
    for (int status : {100, 101, 200, 204, 301, 302, 304, 400, 404, 405, 408,
                       411, 413, 414, 417, 431, 500, 501, 502, 503, 504, 505}) {
        EXPECT_FALSE(reasonPhrase(status).empty()) << status;
    }
}

TEST(Response, ServerHeaderValue) {
    EXPECT_EQ(serverHeaderValue(false), "Canopy");
    EXPECT_EQ(serverHeaderValue(true), std::string("Canopy/") + build::kVersion);
}

TEST(Response, HttpDateFormat) {
    EXPECT_EQ(formatHttpDate(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
    EXPECT_EQ(formatHttpDate(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    EXPECT_EQ(formatHttpDate(951782400), "Tue, 29 Feb 2000 00:00:00 GMT");
}

TEST(Response, CurrentDateIsCachedPerSecond) {
    std::time_t before = std::time(nullptr);
    std::string date(currentHttpDate());
    std::time_t after = std::time(nullptr);
    std::set<std::string> expected;
    for (std::time_t t = before; t <= after; ++t) {
        expected.insert(formatHttpDate(t));
    }
    EXPECT_TRUE(expected.count(date)) << date;
}

TEST(Response, CurrentDateFromManyThreads) {
    std::vector<std::thread> threads;
    std::vector<std::string> dates(8);
    for (size_t i = 0; i < dates.size(); ++i) {
        threads.emplace_back([&dates, i] {
            for (int n = 0; n < 10000; ++n) {
                dates[i] = std::string(currentHttpDate());
            }
        });
    }
    for (std::thread& thread : threads) {
        thread.join();
    }
    for (const std::string& date : dates) {
        EXPECT_EQ(date.size(), 29u);
        EXPECT_TRUE(date.ends_with(" GMT"));
    }
}

TEST(Response, ContentLengthHead) {
    std::string out;
    HeaderField fields[] = {{"Content-Type", "text/plain"}, {"X-A", "b"}};
    ResponseHead head;
    head.status = 200;
    head.content_length = 12;
    head.server = "Canopy/1.0";
    head.fields = fields;
    EXPECT_TRUE(appendResponseHead(out, head));
    EXPECT_EQ(withoutDate(out),
              "HTTP/1.1 200 OK\r\nServer: Canopy/1.0\r\nContent-Length: 12\r\n"
              "Content-Type: text/plain\r\nX-A: b\r\n\r\n");
    EXPECT_NE(out.find("\r\nDate: " + std::string(currentHttpDate()) + "\r\n"), std::string::npos);
}

TEST(Response, NoServerField) {
    std::string out;
    ResponseHead head;
    head.status = 404;
    EXPECT_TRUE(appendResponseHead(out, head));
    EXPECT_EQ(withoutDate(out), "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
}

TEST(Response, UnknownStatusKeepsTheSpace) {
    std::string out;
    ResponseHead head;
    head.status = 299;
    (void)appendResponseHead(out, head);
    EXPECT_TRUE(out.starts_with("HTTP/1.1 299 \r\n"));
}

TEST(Response, ConnectionClose) {
    std::string out;
    ResponseHead head;
    head.keep_alive = false;
    EXPECT_FALSE(appendResponseHead(out, head));
    EXPECT_NE(out.find("Connection: close\r\n"), std::string::npos);
}

TEST(Response, Http10KeepAliveIsAnnounced) {
    std::string out;
    ResponseHead head;
    head.http10_client = true;
    EXPECT_TRUE(appendResponseHead(out, head));
    EXPECT_NE(out.find("Connection: keep-alive\r\n"), std::string::npos);
    EXPECT_TRUE(out.starts_with("HTTP/1.1 200 OK\r\n"));
}

TEST(Response, Chunked) {
    std::string out;
    ResponseHead head;
    head.framing = ResponseFraming::Chunked;
    EXPECT_TRUE(appendResponseHead(out, head));
    EXPECT_EQ(withoutDate(out), "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
}

TEST(Response, ChunkedBecomesCloseDelimitedForHttp10) {
    std::string out;
    ResponseHead head;
    head.framing = ResponseFraming::Chunked;
    head.http10_client = true;
    EXPECT_FALSE(appendResponseHead(out, head));
    EXPECT_EQ(withoutDate(out), "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
}

TEST(Response, StatusesWithoutBodyHaveNoFraming) {
    for (int status : {204, 304}) {
        std::string out;
        ResponseHead head;
        head.status = status;
        head.content_length = 5;
        EXPECT_TRUE(appendResponseHead(out, head));
        EXPECT_EQ(out.find("Content-Length"), std::string::npos) << status;
        EXPECT_EQ(out.find("Transfer-Encoding"), std::string::npos) << status;
    }
}

TEST(Response, ContinueAndLastChunk) {
    EXPECT_EQ(kContinueResponse, "HTTP/1.1 100 Continue\r\n\r\n");
    EXPECT_EQ(kLastChunk, "0\r\n\r\n");
}

TEST(Response, ErrorPage) {
    EXPECT_EQ(errorPage(404), "<!DOCTYPE html><title>Error 404</title><p>Error 404.\r\n");
}

TEST(Response, ErrorResponse) {
    std::string out;
    EXPECT_FALSE(appendErrorResponse(out, 400, "Canopy", false, false, false));
    std::string page = errorPage(400);
    EXPECT_EQ(withoutDate(out), "HTTP/1.1 400 Bad Request\r\nServer: Canopy\r\nContent-Length: " +
                                    std::to_string(page.size()) +
                                    "\r\nConnection: close\r\nContent-Type: text/html\r\n\r\n" +
                                    page);
}

TEST(Response, ErrorResponseToHeadHasNoBody) {
    std::string out;
    EXPECT_TRUE(appendErrorResponse(out, 404, "", true, false, true));
    EXPECT_TRUE(out.ends_with("\r\n\r\n"));
    EXPECT_NE(out.find("Content-Length: " + std::to_string(errorPage(404).size())),
              std::string::npos);
}

TEST(Response, ChunkFraming) {
    EXPECT_EQ(chunkHeader(0x1a2b).view(), "1a2b\r\n");
    EXPECT_EQ(chunkHeader(1).view(), "1\r\n");
    EXPECT_EQ(chunkHeader(SIZE_MAX).view(), "ffffffffffffffff\r\n");
    std::string out;
    appendChunk(out, "");
    EXPECT_EQ(out, "");
    appendChunk(out, "hello");
    EXPECT_EQ(out, "5\r\nhello\r\n");
}

TEST(Response, ChunksDecodeBack) {
    std::string encoded;
    std::string body;
    for (size_t size : {1u, 15u, 16u, 255u, 4096u, 70000u}) {
        std::string piece(size, static_cast<char>('a' + size % 26));
        body += piece;
        appendChunk(encoded, piece);
    }
    encoded += kLastChunk;
    ChunkedDecoder decoder;
    std::string decoded;
    std::string_view rest = encoded;
    while (true) {
        BodyEvent event = decoder.decode(rest);
        rest.remove_prefix(event.consumed);
        if (event.status != BodyStatus::Data) {
            EXPECT_EQ(event.status, BodyStatus::Done);
            break;
        }
        decoded.append(event.data);
    }
    EXPECT_EQ(decoded, body);
    EXPECT_TRUE(rest.empty());
}

}  // namespace
}  // namespace canopy::http
