#include "core/http/chunked_decoder.h"

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

#include "core/http/body_decoder.h"

namespace canopy::http {
namespace {

struct Decoded {
    BodyStatus status = BodyStatus::NeedMore;
    std::string body;
    int error_status = 0;
    size_t consumed = 0;  // input bytes used in total (up to Done or Error)

    bool operator==(const Decoded&) const = default;
};

void PrintTo(const Decoded& decoded, std::ostream* out) {
    *out << "{status " << static_cast<int>(decoded.status) << ", error " << decoded.error_status
         << ", consumed " << decoded.consumed << ", body \"" << decoded.body << "\"}";
}

// Feeds `reads` one after the other (each read is what a recv() returned),
// carrying unconsumed bytes over as an event loop would.
Decoded decodeReads(ChunkedDecoder& decoder, const std::vector<std::string>& reads) {
    Decoded decoded;
    for (const std::string& read : reads) {
        std::string_view input = read;
        while (true) {
            BodyEvent event = decoder.decode(input);
            EXPECT_LE(event.consumed, input.size());
            decoded.consumed += event.consumed;
            input.remove_prefix(event.consumed);
            if (event.status == BodyStatus::Data) {
                EXPECT_GT(event.data.size(), 0u);
                decoded.body.append(event.data);
                continue;
            }
            if (event.status == BodyStatus::NeedMore) {
                EXPECT_TRUE(input.empty());
                break;
            }
            decoded.status = event.status;
            decoded.error_status = event.error_status;
            if (event.status == BodyStatus::Error) {
                EXPECT_TRUE(event.close);
                decoded.consumed = 0;  // where a refused body stops means nothing
            }
            return decoded;
        }
    }
    return decoded;
}

Decoded decodeAll(std::string_view text, ChunkedDecoderOptions options = {}) {
    ChunkedDecoder decoder(options);
    return decodeReads(decoder, {std::string(text)});
}

Decoded decodeBytewise(std::string_view text, ChunkedDecoderOptions options = {}) {
    ChunkedDecoder decoder(options);
    std::vector<std::string> reads;
    for (char c : text) {
        reads.emplace_back(1, c);
    }
    return decodeReads(decoder, reads);
}

Decoded decodeBoth(std::string_view text, ChunkedDecoderOptions options = {}) {
    Decoded once = decodeAll(text, options);
    EXPECT_EQ(decodeBytewise(text, options), once) << text;
    return once;
}

void expectBody(std::string_view text, std::string_view body, ChunkedDecoderOptions options = {}) {
    Decoded decoded = decodeBoth(text, options);
    EXPECT_EQ(decoded.status, BodyStatus::Done) << text << " → " << decoded.error_status;
    EXPECT_EQ(decoded.body, body);
    EXPECT_EQ(decoded.consumed, text.size());
}

void expectRefused(std::string_view text, int status, ChunkedDecoderOptions options = {}) {
    Decoded decoded = decodeBoth(text, options);
    EXPECT_EQ(decoded.status, BodyStatus::Error) << text;
    EXPECT_EQ(decoded.error_status, status) << text;
}

TEST(ChunkedDecoder, SimpleBody) {
    expectBody("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world");
}

TEST(ChunkedDecoder, EmptyBody) {
    expectBody("0\r\n\r\n", "");
}

TEST(ChunkedDecoder, HexSizes) {
    std::string big(0x1a, 'x');
    expectBody("1a\r\n" + big + "\r\n0\r\n\r\n", big);
    expectBody("1A\r\n" + big + "\r\n0\r\n\r\n", big);
    expectBody("0000000000000000000001A\r\n" + big + "\r\n000\r\n\r\n", big);
}

TEST(ChunkedDecoder, DataIsAViewIntoTheInput) {
    ChunkedDecoder decoder;
    std::string input = "3\r\nabc\r\n0\r\n\r\n";
    BodyEvent event = decoder.decode(input);
    ASSERT_EQ(event.status, BodyStatus::Data);
    EXPECT_EQ(event.data, "abc");
    EXPECT_EQ(event.data.data(), input.data() + 3);
    EXPECT_EQ(event.consumed, 6u);
}

TEST(ChunkedDecoder, StreamsLargeChunksPieceByPiece) {
    ChunkedDecoder decoder;
    EXPECT_EQ(decoder.decode("100000\r\n").status, BodyStatus::NeedMore);  // 1 MiB chunk
    std::string piece(4096, 'z');
    for (int i = 0; i < 256; ++i) {
        BodyEvent event = decoder.decode(piece);
        ASSERT_EQ(event.status, BodyStatus::Data);
        ASSERT_EQ(event.consumed, piece.size());
    }
    EXPECT_EQ(decoder.bodySize(), 1u << 20);
    BodyEvent end = decoder.decode("\r\n0\r\n\r\n");
    EXPECT_EQ(end.status, BodyStatus::Done);
    EXPECT_TRUE(decoder.done());
}

TEST(ChunkedDecoder, RestOfInputIsTheNextRequest) {
    ChunkedDecoder decoder;
    std::string input = "2\r\nhi\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
    BodyEvent data = decoder.decode(input);
    ASSERT_EQ(data.status, BodyStatus::Data);
    BodyEvent done = decoder.decode(std::string_view(input).substr(data.consumed));
    ASSERT_EQ(done.status, BodyStatus::Done);
    EXPECT_EQ(input.substr(data.consumed + done.consumed), "GET / HTTP/1.1\r\n");
    // Done repeats without consuming.
    BodyEvent again = decoder.decode("more");
    EXPECT_EQ(again.status, BodyStatus::Done);
    EXPECT_EQ(again.consumed, 0u);
}

TEST(ChunkedDecoder, ResetStartsANewBody) {
    ChunkedDecoder decoder;
    ASSERT_EQ(decodeReads(decoder, {"1\r\na\r\n0\r\n\r\n"}).body, "a");
    decoder.reset();
    EXPECT_EQ(decoder.bodySize(), 0u);
    EXPECT_EQ(decodeReads(decoder, {"2\r\nbc\r\n0\r\n\r\n"}).body, "bc");
}

TEST(ChunkedDecoder, ValidExtensions) {
    expectBody("5;name\r\nhello\r\n0\r\n\r\n", "hello");
    expectBody("5;name=value\r\nhello\r\n0;last\r\n\r\n", "hello");
    expectBody("5 ; a = b ; c\r\nhello\r\n0\r\n\r\n", "hello");
    expectBody("5;a=\"quoted ; value\"\r\nhello\r\n0\r\n\r\n", "hello");
    expectBody("5;a=\"esc\\\"aped\\\\\"\r\nhello\r\n0\r\n\r\n", "hello");
    expectBody("5;a=\"\"\r\nhello\r\n0\r\n\r\n", "hello");
    expectBody("5;a=\"x\" ;b\r\nhello\r\n0\r\n\r\n", "hello");
}

TEST(ChunkedDecoder, InvalidExtensions) {
    for (const char* line :
         {"5;\r\n", "5;=x\r\n", "5;a=\r\n", "5;a=\"open\r\n", "5;a b\r\n", "5;a=b c\r\n",
          "5;a=\"x\"y\r\n", "5;a=(\r\n", "5;a=\"\x01\"\r\n", "5;a=\"\\\x01\"\r\n", "5;\x80\r\n"}) {
        expectRefused(std::string(line) + "hello\r\n0\r\n\r\n", 400);
    }
}

TEST(ChunkedDecoder, ExtensionLengthIsLimited) {
    ChunkedDecoderOptions options;
    options.max_extension_size = 16;
    // ";" and 15 bytes of name: 16.
    expectBody("1;" + std::string(15, 'e') + "\r\nx\r\n0\r\n\r\n", "x", options);
    expectRefused("1;" + std::string(16, 'e') + "\r\nx\r\n0\r\n\r\n", 400, options);
    expectRefused("1" + std::string(16, ' ') + ";\r\nx\r\n0\r\n\r\n", 400, options);
    // The limit applies per line, and an unending extension is cut short.
    expectBody("1;" + std::string(14, 'e') + "\r\nx\r\n0;" + std::string(14, 'e') + "\r\n\r\n", "x",
               options);
    ChunkedDecoder decoder(options);
    EXPECT_EQ(decoder.decode("1;" + std::string(100, 'e')).status, BodyStatus::Error);
}

TEST(ChunkedDecoder, InvalidSizes) {
    for (const char* line : {"\r\n", "x\r\n", "-5\r\n", "+5\r\n", "0x5\r\n", " 5\r\n", "5 \r\n",
                             "5 5\r\n", "5\t\r\n"}) {
        expectRefused(std::string(line) + "hello\r\n0\r\n\r\n", 400);
    }
}

TEST(ChunkedDecoder, HugeSizes) {
    // 2^63 - 1 is a size; 2^63 and beyond are refused while reading digits.
    ChunkedDecoder decoder;
    EXPECT_EQ(decoder.decode("7fffffffffffffff\r\nabc").status, BodyStatus::Data);
    expectRefused("8000000000000000\r\n", 400);
    expectRefused("10000000000000000\r\n", 400);
    expectRefused("ffffffffffffffffffffffffffffffff\r\n", 400);
}

TEST(ChunkedDecoder, BareLineFeedsAreRefused) {
    expectRefused("5\nhello\r\n0\r\n\r\n", 400);
    expectRefused("5;a=b\nhello\r\n0\r\n\r\n", 400);
    expectRefused("5\r\nhello\n0\r\n\r\n", 400);
    expectRefused("5\r\nhello\r\n0\n\r\n", 400);
    expectRefused("5\r\nhello\r\n0\r\n\n", 400);
}

TEST(ChunkedDecoder, DataMustEndWithCrlf) {
    expectRefused("5\r\nhelloX\r\n0\r\n\r\n", 400);
    expectRefused("5\r\nhello\rX0\r\n\r\n", 400);
    expectRefused("3\r\nhello\r\n0\r\n\r\n", 400);  // size smaller than the data
    expectRefused("5\rhello\r\n0\r\n\r\n", 400);
}

TEST(ChunkedDecoder, MaxBodySizeIsEnforcedBeforeData) {
    ChunkedDecoderOptions options;
    options.max_body_size = 10;
    expectBody("5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", "helloworld", options);
    expectRefused("5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n", 413, options);
    ChunkedDecoder decoder(options);
    EXPECT_EQ(decoder.decode("b\r\n").status, BodyStatus::Error);  // no data needed
    ChunkedDecoder huge(options);
    EXPECT_EQ(huge.decode("7fffffffffffffff\r\n").error_status, 413);
}

TEST(ChunkedDecoder, TrailersAreCheckedAndDropped) {
    ChunkedDecoder decoder;
    Decoded decoded = decodeReads(decoder, {"1\r\na\r\n0\r\nX-Sum: 1\r\nX-B: two\r\n\r\n"});
    EXPECT_EQ(decoded.status, BodyStatus::Done);
    EXPECT_TRUE(decoder.trailers().empty());
}

TEST(ChunkedDecoder, TrailersCanBeKept) {
    ChunkedDecoderOptions options;
    options.keep_trailers = true;
    ChunkedDecoder decoder(options);
    std::vector<std::string> reads;
    for (char c : std::string("1\r\na\r\n0\r\nX-Sum: 1\r\nX-B:  two \r\n\r\n")) {
        reads.emplace_back(1, c);
    }
    ASSERT_EQ(decodeReads(decoder, reads).status, BodyStatus::Done);
    ASSERT_EQ(decoder.trailers().size(), 2u);
    EXPECT_EQ(decoder.trailers()[0].name, "X-Sum");
    EXPECT_EQ(decoder.trailers()[0].value, "1");
    EXPECT_EQ(decoder.trailers()[1].value, "two");
}

TEST(ChunkedDecoder, InvalidTrailers) {
    expectRefused("0\r\n folded: x\r\n\r\n", 400);
    expectRefused("0\r\nName : x\r\n\r\n", 400);
    expectRefused(std::string("0\r\nX: a\0b\r\n\r\n", 13), 400);
    expectRefused("0\r\nX: a\rb\r\n\r\n", 400);
    expectRefused("0\r\nX: a\n\r\n", 400);
    expectRefused("0\r\nnocolon\r\n\r\n", 400);
}

TEST(ChunkedDecoder, TrailerSizeIsLimited) {
    ChunkedDecoderOptions options;
    options.max_trailer_size = 16;
    expectBody("0\r\nX: 123456789\r\n\r\n", "", options);  // 16 bytes
    expectRefused("0\r\nX: 1234567890\r\n\r\n", 431, options);
    ChunkedDecoder decoder(options);
    EXPECT_EQ(decoder.decode("0\r\nX: " + std::string(100, 'v')).error_status, 431);
}

TEST(ChunkedDecoder, SplitAtEveryPosition) {
    std::string text = "5;ext=\"v\"\r\nhello\r\n1A\r\n" + std::string(26, 'q') +
                       "\r\n3 ; x\r\nabc\r\n0\r\nTrailer: yes\r\n\r\n";
    Decoded once = decodeAll(text);
    ASSERT_EQ(once.status, BodyStatus::Done);
    for (size_t split = 0; split <= text.size(); ++split) {
        ChunkedDecoder decoder;
        EXPECT_EQ(decodeReads(decoder, {text.substr(0, split), text.substr(split)}), once) << split;
    }
    for (size_t first = 0; first <= text.size(); first += 3) {
        for (size_t second = first; second <= text.size(); second += 5) {
            ChunkedDecoder decoder;
            EXPECT_EQ(
                decodeReads(decoder, {text.substr(0, first), text.substr(first, second - first),
                                      text.substr(second)}),
                once);
        }
    }
}

TEST(BodyDecoder, ContentLength) {
    BodyDecoder decoder;
    decoder.start(BodyFraming::ContentLength, 5);
    EXPECT_FALSE(decoder.tooLarge());
    EXPECT_EQ(decoder.decode("").status, BodyStatus::NeedMore);
    BodyEvent first = decoder.decode("hel");
    EXPECT_EQ(first.status, BodyStatus::Data);
    EXPECT_EQ(first.data, "hel");
    BodyEvent second = decoder.decode("loGET");
    EXPECT_EQ(second.data, "lo");
    EXPECT_EQ(second.consumed, 2u);
    EXPECT_EQ(decoder.decode("GET").status, BodyStatus::Done);
    EXPECT_EQ(decoder.bodySize(), 5u);
}

TEST(BodyDecoder, NoBodyAndEmptyBody) {
    BodyDecoder decoder;
    decoder.start(BodyFraming::None, 0);
    BodyEvent none = decoder.decode("GET / HTTP/1.1");
    EXPECT_EQ(none.status, BodyStatus::Done);
    EXPECT_EQ(none.consumed, 0u);
    decoder.start(BodyFraming::ContentLength, 0);
    EXPECT_EQ(decoder.decode("").status, BodyStatus::Done);
}

TEST(BodyDecoder, TooLargeContentLength) {
    ChunkedDecoderOptions options;
    options.max_body_size = 4;
    BodyDecoder decoder(options);
    decoder.start(BodyFraming::ContentLength, 5);
    EXPECT_TRUE(decoder.tooLarge());
    BodyEvent event = decoder.decode("hello");
    EXPECT_EQ(event.status, BodyStatus::Error);
    EXPECT_EQ(event.error_status, 413);
    decoder.start(BodyFraming::ContentLength, 4);
    EXPECT_FALSE(decoder.tooLarge());
}

TEST(BodyDecoder, ChunkedFromAHead) {
    RequestParser parser;
    std::string text =
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
    ParseResult head = parser.parse(text);
    ASSERT_EQ(head.status, ParseStatus::Done);
    BodyDecoder decoder;
    decoder.start(parser.head());
    std::string_view rest = std::string_view(text).substr(head.consumed);
    BodyEvent data = decoder.decode(rest);
    ASSERT_EQ(data.status, BodyStatus::Data);
    EXPECT_EQ(data.data, "ok");
    rest.remove_prefix(data.consumed);
    BodyEvent done = decoder.decode(rest);
    EXPECT_EQ(done.status, BodyStatus::Done);
    EXPECT_EQ(done.consumed, rest.size());
    EXPECT_EQ(decoder.bodySize(), 2u);
}

}  // namespace
}  // namespace canopy::http
