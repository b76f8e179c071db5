// A small, deterministic fuzz test: random bytes and mutations of valid
// requests must never crash the parsers, never make them loop, and always
// end in NeedMore, Done or Error; whole and byte-at-a-time feeding agree.
// (A libFuzzer target can reuse these loops; this one runs in CI.)

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "core/http/chunked_decoder.h"
#include "core/http/request_parser.h"
#include "tests/unit/http/parse_helpers.h"

namespace canopy::http {
namespace {

const std::vector<std::string> kSeeds = {
    "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    "POST /p?q=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
    "PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    "5;a=\"b\"\r\nhello\r\n0\r\nT: v\r\n\r\n",
    "GET http://h:80/x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "OPTIONS * HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nUpgrade: websocket\r\n"
    "Connection: upgrade\r\n\r\n",
};

// Bytes that matter to the grammar, so mutations reach deep states.
const char kInteresting[] = {'\r', '\n', ' ', '\t', ':', ';', '=',  '"',    '\\',   '/',    '?',
                             '*',  '0',  'f', 'F',  'x', ',', '\0', '\x7f', '\x80', '\xff', '@'};

std::string mutate(std::string text, std::mt19937& random) {
    int rounds = 1 + static_cast<int>(random() % 4);
    for (int round = 0; round < rounds; ++round) {
        size_t at = text.empty() ? 0 : random() % text.size();
        char byte = (random() % 2) ? kInteresting[random() % sizeof(kInteresting)]
                                   : static_cast<char>(random() % 256);
        switch (random() % 5) {
            case 0:
                if (!text.empty()) {
                    text[at] = byte;
                }
                break;
            case 1:
                text.insert(text.begin() + static_cast<std::ptrdiff_t>(at), byte);
                break;
            case 2:
                if (!text.empty()) {
                    text.erase(at, 1 + random() % 3);
                }
                break;
            case 3: {  // duplicate a slice (a line, often)
                size_t size = random() % 24;
                text.insert(at, text.substr(at, size));
                break;
            }
            default:
                text.insert(at, "\r\n");
                break;
        }
    }
    return text;
}

std::string randomBytes(std::mt19937& random) {
    std::string text(random() % 200, '\0');
    for (char& c : text) {
        c = (random() % 3 == 0) ? kInteresting[random() % sizeof(kInteresting)]
                                : static_cast<char>(32 + random() % 95);
    }
    return text;
}

struct Tally {
    int need_more = 0, done = 0, error = 0;
};

void checkParser(const std::string& text, const RequestParserOptions& options,
                 Tally* tally = nullptr) {
    testing::Outcome once = testing::parseOnce(text, options);
    if (tally) {
        ++(once.status == ParseStatus::Done    ? tally->done
           : once.status == ParseStatus::Error ? tally->error
                                               : tally->need_more);
    }
    switch (once.status) {
        case ParseStatus::NeedMore:
            break;
        case ParseStatus::Done:
            ASSERT_GT(once.consumed, 0u);
            ASSERT_LE(once.consumed, text.size());
            break;
        case ParseStatus::Error:
            ASSERT_TRUE(once.error_status == 400 || once.error_status == 414 ||
                        once.error_status == 431 || once.error_status == 501 ||
                        once.error_status == 505)
                << once.error_status;
            ASSERT_TRUE(once.close);
            break;
    }
    // Byte at a time through views of one buffer (cheaper than the copying
    // helper, which the parser tests already cover).
    RequestParser parser(options);
    ParseResult result;
    for (size_t size = 0; size <= text.size(); ++size) {
        result = parser.parse(std::string_view(text).substr(0, size));
        if (result.status != ParseStatus::NeedMore) {
            break;
        }
    }
    ASSERT_EQ(testing::capture(result, parser), once) << text;
}

void checkChunked(const std::string& text, std::mt19937& random) {
    ChunkedDecoderOptions options;
    options.max_body_size = 1 << 16;
    options.keep_trailers = random() % 2 == 0;
    ChunkedDecoder decoder(options);
    std::string_view rest = text;
    // Each call consumes bytes or ends: the bound proves there is no loop.
    size_t calls = 0;
    while (calls++ <= 2 * text.size() + 2) {
        size_t read = rest.empty() ? 0 : 1 + random() % rest.size();
        BodyEvent event = decoder.decode(rest.substr(0, read));
        ASSERT_LE(event.consumed, read);
        if (event.status == BodyStatus::Data) {
            ASSERT_GT(event.consumed, 0u);
            ASSERT_FALSE(event.data.empty());
        }
        rest.remove_prefix(event.consumed);
        if (event.status == BodyStatus::Done || event.status == BodyStatus::Error) {
            if (event.status == BodyStatus::Error) {
                ASSERT_TRUE(event.error_status == 400 || event.error_status == 413 ||
                            event.error_status == 431);
            }
            return;
        }
        if (event.status == BodyStatus::NeedMore && rest.empty()) {
            return;
        }
    }
    FAIL() << "the chunked decoder did not progress on: " << text;
}

TEST(HttpFuzz, MutatedRequests) {
    std::mt19937 random(20240611);
    RequestParserOptions small;
    small.max_line_size = 48;
    small.max_head_size = 128;
    small.max_field_count = 5;
    Tally tally;
    for (int i = 0; i < 20000; ++i) {
        std::string text = mutate(kSeeds[random() % kSeeds.size()], random);
        checkParser(text, RequestParserOptions{}, &tally);
        checkParser(text, small);
        if (HasFatalFailure()) {
            return;
        }
    }
    // The mutations must reach every outcome, or the test proves little.
    EXPECT_GT(tally.done, 2000) << tally.error << " errors, " << tally.need_more << " need more";
    EXPECT_GT(tally.error, 2000);
    EXPECT_GT(tally.need_more, 50);
}

TEST(HttpFuzz, RandomBytes) {
    std::mt19937 random(7);
    for (int i = 0; i < 20000; ++i) {
        std::string text = randomBytes(random);
        checkParser(text, RequestParserOptions{});
        checkParser("GET / HTTP/1.1\r\n" + text, RequestParserOptions{});
        if (HasFatalFailure()) {
            return;
        }
    }
}

TEST(HttpFuzz, MutatedChunkedBodies) {
    std::mt19937 random(99);
    const std::vector<std::string> bodies = {
        "5\r\nhello\r\n0\r\n\r\n",
        "1a;x=y\r\nabcdefghijklmnopqrstuvwxyz\r\n3;q=\"a\\\"b\"\r\nabc\r\n0\r\nA: b\r\n\r\n",
        "ffff\r\n" + std::string(0xffff, 'd') + "\r\n0\r\n\r\n",
    };
    for (int i = 0; i < 6000; ++i) {
        std::string text = mutate(bodies[random() % bodies.size()], random);
        checkChunked(text, random);
        checkChunked(randomBytes(random), random);
        if (HasFatalFailure()) {
            return;
        }
    }
}

}  // namespace
}  // namespace canopy::http
