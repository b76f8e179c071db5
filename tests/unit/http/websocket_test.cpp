#include "core/http/websocket.h"

#include <gtest/gtest.h>

#include <cstring>
#include <ostream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/http/request_parser.h"
#include "core/http/response.h"

namespace canopy::http {
namespace {

// ---------------------------------------------------------------------------
// Helpers

std::string bytes(std::initializer_list<int> values) {
    std::string text;
    for (int value : values) {
        text.push_back(static_cast<char>(value));
    }
    return text;
}

enum class LengthForm { Minimal, Bits16, Bits64 };

// A frame as a client sends it: masked with `mask`, its length in `form`.
std::string clientFrame(uint8_t first, std::string_view payload, uint32_t mask = 0x37fa213d,
                        LengthForm form = LengthForm::Minimal) {
    std::string frame;
    frame.push_back(static_cast<char>(first));
    uint64_t size = payload.size();
    if (form == LengthForm::Minimal) {
        form = size <= 125      ? LengthForm::Minimal
               : size <= 0xFFFF ? LengthForm::Bits16
                                : LengthForm::Bits64;
    }
    int extended = 0;
    if (form == LengthForm::Minimal) {
        frame.push_back(static_cast<char>(0x80 | size));
    } else if (form == LengthForm::Bits16) {
        frame.push_back(static_cast<char>(0x80 | 126));
        extended = 2;
    } else {
        frame.push_back(static_cast<char>(0x80 | 127));
        extended = 8;
    }
    for (int i = extended - 1; i >= 0; --i) {
        frame.push_back(static_cast<char>(size >> (8 * i)));
    }
    char key[4] = {static_cast<char>(mask >> 24), static_cast<char>(mask >> 16),
                   static_cast<char>(mask >> 8), static_cast<char>(mask)};
    frame.append(key, 4);
    for (size_t i = 0; i < payload.size(); ++i) {
        frame.push_back(static_cast<char>(payload[i] ^ key[i % 4]));
    }
    return frame;
}

std::string closePayload(uint16_t code, std::string_view reason = {}) {
    std::string payload;
    payload.push_back(static_cast<char>(code >> 8));
    payload.push_back(static_cast<char>(code & 0xFF));
    payload.append(reason);
    return payload;
}

struct Decoded {
    std::vector<std::pair<int, std::string>> frames;  // first byte, payload
    WebSocketStatus status = WebSocketStatus::NeedMore;
    uint16_t close_code = 0;
    size_t consumed = 0;  // input bytes used up to the error or the end

    bool operator==(const Decoded&) const = default;
};

void PrintTo(const Decoded& decoded, std::ostream* out) {
    *out << "{status " << static_cast<int>(decoded.status) << ", close " << decoded.close_code
         << ", consumed " << decoded.consumed << ", frames [";
    for (const auto& [first, payload] : decoded.frames) {
        *out << " 0x" << std::hex << first << std::dec << ":" << payload.size();
    }
    *out << " ]}";
}

// Feeds `reads` one after the other, each in a buffer of exactly its size,
// as an event loop would after each recv(). Checks the contract on the way:
// consumed within the input, NeedMore uses everything, a payload inside the
// input never reaches past it, Error repeats with consumed 0.
Decoded decodeReads(WebSocketDecoder& decoder, const std::vector<std::string>& reads) {
    Decoded decoded;
    for (const std::string& read : reads) {
        std::vector<char> buffer(read.begin(), read.end());
        std::span<char> input(buffer);
        while (true) {
            WebSocketEvent event = decoder.decode(input);
            EXPECT_LE(event.consumed, input.size());
            if (event.consumed > input.size()) {
                return decoded;
            }
            decoded.consumed += event.consumed;
            if (event.status == WebSocketStatus::Frame) {
                const char* begin = buffer.data();
                const char* end = buffer.data() + buffer.size();
                if (event.payload.data() >= begin && event.payload.data() < end) {
                    EXPECT_LE(event.payload.data() + event.payload.size(), end);
                }
                EXPECT_EQ(event.first & kWebSocketRsvMask, 0);
                decoded.frames.emplace_back(event.first, std::string(event.payload));
                input = input.subspan(event.consumed);
                continue;
            }
            if (event.status == WebSocketStatus::NeedMore) {
                EXPECT_EQ(event.consumed, input.size());
                break;
            }
            decoded.status = WebSocketStatus::Error;
            decoded.close_code = event.close_code;
            EXPECT_NE(std::string_view(event.reason), "");
            WebSocketEvent again = decoder.decode(input.subspan(event.consumed));
            EXPECT_EQ(again.status, WebSocketStatus::Error);
            EXPECT_EQ(again.consumed, 0u);
            EXPECT_EQ(again.close_code, event.close_code);
            return decoded;
        }
    }
    return decoded;
}

Decoded decodeAll(std::string_view stream, WebSocketDecoderOptions options = {}) {
    WebSocketDecoder decoder(options);
    return decodeReads(decoder, {std::string(stream)});
}

Decoded decodeByteByByte(std::string_view stream, WebSocketDecoderOptions options = {}) {
    std::vector<std::string> reads;
    for (char c : stream) {
        reads.emplace_back(1, c);
    }
    WebSocketDecoder decoder(options);
    return decodeReads(decoder, reads);
}

Decoded decodeSplit(std::string_view stream, size_t split, WebSocketDecoderOptions options = {}) {
    WebSocketDecoder decoder(options);
    return decodeReads(decoder,
                       {std::string(stream.substr(0, split)), std::string(stream.substr(split))});
}

Decoded decodeRandomReads(std::string_view stream, std::mt19937& random,
                          WebSocketDecoderOptions options = {}) {
    std::vector<std::string> reads;
    while (!stream.empty()) {
        size_t size = std::min<size_t>(stream.size(), 1 + random() % 40);
        reads.emplace_back(stream.substr(0, size));
        stream.remove_prefix(size);
    }
    WebSocketDecoder decoder(options);
    return decodeReads(decoder, reads);
}

uint16_t refusalOf(std::string_view stream, WebSocketDecoderOptions options = {}) {
    Decoded decoded = decodeAll(stream, options);
    EXPECT_EQ(decoded.status, WebSocketStatus::Error);
    EXPECT_EQ(decodeByteByByte(stream, options), decoded);
    return decoded.close_code;
}

RequestHead parseHead(RequestParser& parser, const std::string& text) {
    ParseResult result = parser.parse(text);
    EXPECT_EQ(result.status, ParseStatus::Done) << text;
    return parser.head();
}

// The head without its Date line, which changes every second.
std::string withoutDate(const std::string& head) {
    size_t date = head.find("Date: ");
    if (date == std::string::npos) {
        return head;
    }
    size_t end = head.find("\r\n", date);
    return head.substr(0, date) + head.substr(end + 2);
}

// ---------------------------------------------------------------------------
// Handshake

TEST(WebSocketHandshake, AcceptValueOfTheRfcExample) {
    // RFC 6455 §1.3 (and §4.2.2 step 5.4): the sample nonce's accept value.
    EXPECT_EQ(webSocketAcceptValue("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    // RFC 6455 §1.2 spells the GUID out; a typo would still give 28 characters.
    EXPECT_EQ(kWebSocketGuid, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    EXPECT_EQ(webSocketAcceptValue("x3JJHMbDL1EzLkh9GBhXDw=="), "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
}

struct HandshakeCase {
    const char* name;
    std::string request;
    WebSocketHandshakeStatus status;
    int error_status;
};

void PrintTo(const HandshakeCase& c, std::ostream* out) {
    *out << c.name;
}

const std::string kKeyField = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
const std::string kVersionField = "Sec-WebSocket-Version: 13\r\n";

std::string upgradeRequest(std::string_view method, std::string_view version,
                           std::string_view fields) {
    return std::string(method) + " /chat HTTP/" + std::string(version) +
           "\r\nHost: server.example.com\r\n" + std::string(fields) + "\r\n";
}

std::string upgradeRequest(std::string_view fields) {
    return upgradeRequest("GET", "1.1", fields);
}

const std::string kUpgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\n";

using S = WebSocketHandshakeStatus;

const HandshakeCase kHandshakeCases[] = {
    {"RfcExample",
     upgradeRequest("Upgrade: websocket\r\nConnection: Upgrade\r\n" + kKeyField +
                    "Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n" +
                    kVersionField),
     S::Valid, 0},
    {"CaseInsensitiveTokens",
     upgradeRequest("upgrade: WebSocket\r\nconnection: UPGRADE\r\n"
                    "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nSEC-WEBSOCKET-VERSION: 13\r\n"),
     S::Valid, 0},
    {"ConnectionList",
     upgradeRequest("Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n" + kKeyField +
                    kVersionField),
     S::Valid, 0},
    {"UpgradeList",
     upgradeRequest("Upgrade: h2c, websocket\r\nConnection: Upgrade\r\n" + kKeyField +
                    kVersionField),
     S::Valid, 0},
    {"SecondUpgradeField",
     upgradeRequest("Upgrade: h2c\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" + kKeyField +
                    kVersionField),
     S::Valid, 0},
    {"SecondConnectionField",
     upgradeRequest("Upgrade: websocket\r\nConnection: keep-alive\r\nConnection: upgrade\r\n" +
                    kKeyField + kVersionField),
     S::Valid, 0},
    {"Http12", upgradeRequest("GET", "1.2", kUpgrade + kKeyField + kVersionField), S::Valid, 0},

    {"PlainGet", upgradeRequest(""), S::NotWebSocket, 0},
    {"UpgradeWithoutConnection",
     upgradeRequest("Upgrade: websocket\r\n" + kKeyField + kVersionField), S::NotWebSocket, 0},
    {"ConnectionWithoutUpgrade",
     upgradeRequest("Connection: upgrade\r\n" + kKeyField + kVersionField), S::NotWebSocket, 0},
    {"OtherProtocol", upgradeRequest("Upgrade: h2c\r\nConnection: Upgrade\r\n"), S::NotWebSocket,
     0},
    {"NotTheWebsocketToken",
     upgradeRequest("Upgrade: websockets\r\nConnection: Upgrade\r\n" + kKeyField + kVersionField),
     S::NotWebSocket, 0},
    {"NotTheUpgradeToken",
     upgradeRequest("Upgrade: websocket\r\nConnection: upgraded\r\n" + kKeyField + kVersionField),
     S::NotWebSocket, 0},
    {"KeyAlone", upgradeRequest(kKeyField + kVersionField), S::NotWebSocket, 0},
    {"Http10", upgradeRequest("GET", "1.0", kUpgrade + kKeyField + kVersionField), S::NotWebSocket,
     0},

    {"Post", upgradeRequest("POST", "1.1", kUpgrade + kKeyField + kVersionField), S::Refused, 400},
    {"Head", upgradeRequest("HEAD", "1.1", kUpgrade + kKeyField + kVersionField), S::Refused, 400},
    {"NoKey", upgradeRequest(kUpgrade + kVersionField), S::Refused, 400},
    {"EmptyKey", upgradeRequest(kUpgrade + "Sec-WebSocket-Key:\r\n" + kVersionField), S::Refused,
     400},
    {"KeyOf15Bytes",
     upgradeRequest(kUpgrade + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=\r\n" + kVersionField),
     S::Refused, 400},
    {"KeyWithoutPadding",
     upgradeRequest(kUpgrade + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ\r\n" + kVersionField),
     S::Refused, 400},
    {"KeyOf17Bytes",
     upgradeRequest(kUpgrade + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQAA\r\n" + kVersionField),
     S::Refused, 400},
    {"KeyNotBase64",
     upgradeRequest(kUpgrade + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j*Q==\r\n" + kVersionField),
     S::Refused, 400},
    {"KeyRepeated", upgradeRequest(kUpgrade + kKeyField + kKeyField + kVersionField), S::Refused,
     400},
    {"VersionRepeated", upgradeRequest(kUpgrade + kKeyField + kVersionField + kVersionField),
     S::Refused, 400},
    {"NoVersion", upgradeRequest(kUpgrade + kKeyField), S::Refused, 426},
    {"Version8", upgradeRequest(kUpgrade + kKeyField + "Sec-WebSocket-Version: 8\r\n"), S::Refused,
     426},
    {"VersionList", upgradeRequest(kUpgrade + kKeyField + "Sec-WebSocket-Version: 13, 8\r\n"),
     S::Refused, 426},
    {"VersionLeadingZero", upgradeRequest(kUpgrade + kKeyField + "Sec-WebSocket-Version: 013\r\n"),
     S::Refused, 426},
    // The version is checked before the key: an older client learns what to use.
    {"Version8WithoutKey", upgradeRequest(kUpgrade + "Sec-WebSocket-Version: 8\r\n"), S::Refused,
     426},
};

class HandshakeTable : public ::testing::TestWithParam<HandshakeCase> {};

TEST_P(HandshakeTable, Classifies) {
    const HandshakeCase& c = GetParam();
    RequestParser parser;
    RequestHead head = parseHead(parser, c.request);
    WebSocketHandshake handshake = checkWebSocketHandshake(head);
    EXPECT_EQ(handshake.status, c.status);
    EXPECT_EQ(handshake.error_status, c.error_status);
    if (c.status == S::Valid) {
        EXPECT_EQ(handshake.key, "dGhlIHNhbXBsZSBub25jZQ==");
    } else {
        EXPECT_TRUE(handshake.key.empty());
    }
    if (c.status == S::Refused) {
        EXPECT_NE(std::string_view(handshake.reason), "");
    }
}

INSTANTIATE_TEST_SUITE_P(WebSocketHandshake, HandshakeTable, ::testing::ValuesIn(kHandshakeCases),
                         [](const auto& test_info) { return std::string(test_info.param.name); });

TEST(WebSocketHandshake, HeadBuiltByHand) {
    RequestHead head;
    head.method = Method::Get;
    head.version_minor = 1;
    head.fields = {{"Upgrade", "websocket"},
                   {"Connection", "Upgrade"},
                   {"Sec-WebSocket-Key", "AQIDBAUGBwgJCgsMDQ4PEA=="},
                   {"Sec-WebSocket-Version", "13"}};
    WebSocketHandshake handshake = checkWebSocketHandshake(head);
    EXPECT_EQ(handshake.status, S::Valid);
    EXPECT_EQ(handshake.key, "AQIDBAUGBwgJCgsMDQ4PEA==");
}

TEST(WebSocketHandshake, SwitchingProtocolsHead) {
    const HeaderField app_fields[] = {
        {"Sec-WebSocket-Protocol", "chat"},
        {"upgrade", "websocket"},
        {"CONNECTION", "Upgrade"},
        {"Sec-WebSocket-Accept", "bogus"},
        {"Content-Length", "0"},
        {"Transfer-Encoding", "chunked"},
        {"Sec-WebSocket-Extensions", "permessage-deflate"},
        {"X-Session", "42"},
    };
    std::string out = "kept:";
    appendWebSocketAccept(out, webSocketAcceptValue("dGhlIHNhbXBsZSBub25jZQ=="), "Canopy",
                          app_fields);
    EXPECT_EQ(withoutDate(out),
              "kept:HTTP/1.1 101 Switching Protocols\r\n"
              "Server: Canopy\r\n"
              "Upgrade: websocket\r\n"
              "Connection: upgrade\r\n"
              "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
              "Sec-WebSocket-Protocol: chat\r\n"
              "X-Session: 42\r\n"
              "\r\n");
    EXPECT_NE(out.find("\r\nDate: "), std::string::npos);

    std::string bare;
    appendWebSocketAccept(bare, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "", {});
    EXPECT_EQ(withoutDate(bare),
              "HTTP/1.1 101 Switching Protocols\r\n"
              "Upgrade: websocket\r\n"
              "Connection: upgrade\r\n"
              "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
              "\r\n");
}

TEST(WebSocketHandshake, Refusals) {
    std::string page = errorPage(426);
    std::string out;
    appendWebSocketRefusal(out, 426, "Canopy", false);
    EXPECT_EQ(withoutDate(out),
              "HTTP/1.1 426 Upgrade Required\r\n"
              "Server: Canopy\r\n"
              "Content-Length: " +
                  std::to_string(page.size()) +
                  "\r\n"
                  "Content-Type: text/html\r\n"
                  "Connection: upgrade, close\r\n"
                  "Upgrade: websocket\r\n"
                  "Sec-WebSocket-Version: 13\r\n"
                  "\r\n" +
                  page);

    std::string bad;
    appendWebSocketRefusal(bad, 400, "Canopy", false);
    std::string expected;
    (void)appendErrorResponse(expected, 400, "Canopy", false, false, false);
    EXPECT_EQ(withoutDate(bad), withoutDate(expected));
    EXPECT_NE(bad.find("Connection: close\r\n"), std::string::npos);

    std::string head_request;
    appendWebSocketRefusal(head_request, 400, "Canopy", true);
    EXPECT_TRUE(head_request.ends_with("\r\n\r\n"));
    std::string head_426;
    appendWebSocketRefusal(head_426, 426, "", true);
    EXPECT_TRUE(head_426.ends_with("Sec-WebSocket-Version: 13\r\n\r\n"));
    EXPECT_EQ(head_426.find("Server:"), std::string::npos);
}

// ---------------------------------------------------------------------------
// Decoder: RFC 6455 §5.7 examples

TEST(WebSocketDecoder, RfcMaskedHello) {
    std::string frame = bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});
    EXPECT_EQ(frame, clientFrame(0x81, "Hello"));
    Decoded decoded = decodeAll(frame);
    EXPECT_EQ(decoded.status, WebSocketStatus::NeedMore);
    ASSERT_EQ(decoded.frames.size(), 1u);
    EXPECT_EQ(decoded.frames[0], std::make_pair(0x81, std::string("Hello")));
    EXPECT_EQ(decoded.consumed, frame.size());
}

TEST(WebSocketDecoder, RfcUnmaskedHelloIsRefused) {
    std::string frame = bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f});
    EXPECT_EQ(refusalOf(frame), kWebSocketCloseProtocolError);
    // Refused at the second byte, before any payload.
    EXPECT_EQ(decodeAll(frame).consumed, 2u);
}

TEST(WebSocketDecoder, RfcFragmentedText) {
    std::string stream = clientFrame(0x01, "Hel", 0x01020304) + clientFrame(0x80, "lo", 0xa0b0c0d0);
    WebSocketDecoder decoder;
    std::vector<char> buffer(stream.begin(), stream.end());
    WebSocketEvent first = decoder.decode(buffer);
    ASSERT_EQ(first.status, WebSocketStatus::Frame);
    EXPECT_FALSE(first.fin());
    EXPECT_EQ(first.opcode(), kWebSocketText);
    EXPECT_EQ(first.payload, "Hel");
    EXPECT_TRUE(decoder.inMessage());
    WebSocketEvent second = decoder.decode(std::span<char>(buffer).subspan(first.consumed));
    ASSERT_EQ(second.status, WebSocketStatus::Frame);
    EXPECT_TRUE(second.fin());
    EXPECT_EQ(second.opcode(), kWebSocketContinuation);
    EXPECT_EQ(second.payload, "lo");
    EXPECT_FALSE(decoder.inMessage());
    EXPECT_EQ(first.consumed + second.consumed, stream.size());
}

TEST(WebSocketDecoder, RfcPingAndPong) {
    std::string pong =
        bytes({0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});  // §5.7
    Decoded decoded = decodeAll(clientFrame(0x89, "Hello") + pong + clientFrame(0x89, ""));
    ASSERT_EQ(decoded.frames.size(), 3u);
    EXPECT_EQ(decoded.frames[0], std::make_pair(0x89, std::string("Hello")));
    EXPECT_EQ(decoded.frames[1], std::make_pair(0x8a, std::string("Hello")));
    EXPECT_EQ(decoded.frames[2], std::make_pair(0x89, std::string()));
}

std::string patternPayload(size_t size) {
    std::string payload(size, '\0');
    for (size_t i = 0; i < size; ++i) {
        payload[i] = static_cast<char>((i * 7 + i / 256) & 0xFF);
    }
    return payload;
}

TEST(WebSocketDecoder, Rfc256BytesWith16BitLength) {
    std::string payload = patternPayload(256);
    std::string frame = clientFrame(0x82, payload);
    EXPECT_EQ(frame.substr(0, 4), bytes({0x82, 0xFE, 0x01, 0x00}));
    Decoded decoded = decodeAll(frame);
    ASSERT_EQ(decoded.frames.size(), 1u);
    EXPECT_EQ(decoded.frames[0].first, 0x82);
    EXPECT_EQ(decoded.frames[0].second, payload);
    EXPECT_EQ(decodeByteByByte(frame), decoded);
}

TEST(WebSocketDecoder, Rfc64KiBWith64BitLength) {
    std::string payload = patternPayload(65536);
    std::string frame = clientFrame(0x82, payload);
    EXPECT_EQ(frame.substr(0, 10), bytes({0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0}));
    Decoded decoded = decodeAll(frame);
    ASSERT_EQ(decoded.frames.size(), 1u);
    EXPECT_EQ(decoded.frames[0].second, payload);
    EXPECT_EQ(decodeByteByByte(frame), decoded);
    std::mt19937 random(7);
    EXPECT_EQ(decodeRandomReads(frame, random), decoded);
}

TEST(WebSocketDecoder, NonMinimalLengthsAreAccepted) {
    for (LengthForm form : {LengthForm::Bits16, LengthForm::Bits64}) {
        Decoded decoded = decodeAll(clientFrame(0x81, "Hello", 0x11223344, form));
        ASSERT_EQ(decoded.frames.size(), 1u);
        EXPECT_EQ(decoded.frames[0].second, "Hello");
    }
    std::string payload = patternPayload(300);
    Decoded decoded = decodeAll(clientFrame(0x82, payload, 0x11223344, LengthForm::Bits64));
    ASSERT_EQ(decoded.frames.size(), 1u);
    EXPECT_EQ(decoded.frames[0].second, payload);
}

TEST(WebSocketDecoder, ControlFramesBetweenFragments) {
    std::string stream = clientFrame(0x02, "ab") + clientFrame(0x89, "p") +
                         clientFrame(0x00, "cd") + clientFrame(0x8a, "") + clientFrame(0x80, "ef") +
                         clientFrame(0x81, "g");
    Decoded decoded = decodeAll(stream);
    EXPECT_EQ(decoded.status, WebSocketStatus::NeedMore);
    std::vector<std::pair<int, std::string>> expected = {{0x02, "ab"}, {0x89, "p"},  {0x00, "cd"},
                                                         {0x8a, ""},   {0x80, "ef"}, {0x81, "g"}};
    EXPECT_EQ(decoded.frames, expected);
}

TEST(WebSocketDecoder, WholeFramesAreUnmaskedInPlace) {
    std::string frame = clientFrame(0x82, "payload");
    std::vector<char> buffer(frame.begin(), frame.end());
    WebSocketDecoder decoder;
    WebSocketEvent event = decoder.decode(buffer);
    ASSERT_EQ(event.status, WebSocketStatus::Frame);
    EXPECT_EQ(event.payload.data(), buffer.data() + 6);
    EXPECT_EQ(std::string_view(buffer.data() + 6, 7), "payload");

    // Split in the payload: gathered in the decoder, the input not written.
    std::vector<char> head(frame.begin(), frame.begin() + 9);
    std::vector<char> tail(frame.begin() + 9, frame.end());
    std::vector<char> tail_copy = tail;
    WebSocketDecoder split;
    EXPECT_EQ(split.decode(head).status, WebSocketStatus::NeedMore);
    event = split.decode(tail);
    ASSERT_EQ(event.status, WebSocketStatus::Frame);
    EXPECT_EQ(event.payload, "payload");
    EXPECT_EQ(tail, tail_copy);

    // Split in the header only: the payload is still whole in the input.
    std::vector<char> header(frame.begin(), frame.begin() + 3);
    std::vector<char> rest(frame.begin() + 3, frame.end());
    WebSocketDecoder header_split;
    EXPECT_EQ(header_split.decode(header).status, WebSocketStatus::NeedMore);
    event = header_split.decode(rest);
    ASSERT_EQ(event.status, WebSocketStatus::Frame);
    EXPECT_EQ(event.payload.data(), rest.data() + 3);
    EXPECT_EQ(event.payload, "payload");
}

TEST(WebSocketDecoder, CloseEndsTheStream) {
    std::string stream =
        clientFrame(0x88, closePayload(1000, "bye")) + clientFrame(0x81, "late") + "garbage";
    WebSocketDecoder decoder;
    std::vector<char> buffer(stream.begin(), stream.end());
    WebSocketEvent close = decoder.decode(buffer);
    ASSERT_EQ(close.status, WebSocketStatus::Frame);
    EXPECT_EQ(close.opcode(), kWebSocketClose);
    EXPECT_EQ(webSocketCloseCode(close.payload), 1000);
    EXPECT_EQ(close.payload.substr(2), "bye");
    EXPECT_TRUE(decoder.closed());
    std::span<char> rest = std::span<char>(buffer).subspan(close.consumed);
    WebSocketEvent after = decoder.decode(rest);
    EXPECT_EQ(after.status, WebSocketStatus::NeedMore);
    EXPECT_EQ(after.consumed, rest.size());

    Decoded empty_close = decodeAll(clientFrame(0x88, ""));
    ASSERT_EQ(empty_close.frames.size(), 1u);
    EXPECT_EQ(webSocketCloseCode(empty_close.frames[0].second), kWebSocketCloseNoStatus);
}

TEST(WebSocketDecoder, ValidCloseCodes) {
    for (uint16_t code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
                          3000, 3999, 4000, 4999}) {
        Decoded decoded = decodeAll(clientFrame(0x88, closePayload(code, "ok")));
        EXPECT_EQ(decoded.status, WebSocketStatus::NeedMore) << code;
        EXPECT_EQ(decoded.frames.size(), 1u) << code;
        EXPECT_TRUE(validWebSocketCloseCode(code)) << code;
    }
}

// ---------------------------------------------------------------------------
// Decoder: refusals

TEST(WebSocketDecoder, RefusesReservedBits) {
    for (int rsv : {0x40, 0x20, 0x10, 0x70}) {
        std::string frame = clientFrame(static_cast<uint8_t>(0x81 | rsv), "x");
        EXPECT_EQ(refusalOf(frame), kWebSocketCloseProtocolError) << rsv;
        EXPECT_EQ(decodeAll(frame).consumed, 1u);  // at the first byte
    }
}

TEST(WebSocketDecoder, RefusesUnknownOpcodes) {
    for (int opcode : {3, 4, 5, 6, 7, 11, 12, 13, 14, 15}) {
        EXPECT_EQ(refusalOf(clientFrame(static_cast<uint8_t>(0x80 | opcode), "")),
                  kWebSocketCloseProtocolError)
            << opcode;
    }
}

TEST(WebSocketDecoder, RefusesFragmentedControlFrames) {
    for (int opcode : {kWebSocketClose, kWebSocketPing, kWebSocketPong}) {
        EXPECT_EQ(refusalOf(clientFrame(static_cast<uint8_t>(opcode), "")),
                  kWebSocketCloseProtocolError)
            << opcode;
    }
}

TEST(WebSocketDecoder, RefusesLongControlFrames) {
    std::string payload(126, 'p');
    for (int first : {0x88, 0x89, 0x8a}) {
        EXPECT_EQ(refusalOf(clientFrame(static_cast<uint8_t>(first), payload)),
                  kWebSocketCloseProtocolError);
        // A short payload in a 16-bit length is refused too: 126 is the code.
        EXPECT_EQ(refusalOf(clientFrame(static_cast<uint8_t>(first), "x", 1, LengthForm::Bits16)),
                  kWebSocketCloseProtocolError);
    }
    Decoded longest = decodeAll(clientFrame(0x89, std::string(125, 'p')));
    EXPECT_EQ(longest.frames.size(), 1u);
}

TEST(WebSocketDecoder, RefusesTheHighBitOfA64BitLength) {
    std::string frame = bytes({0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4});
    WebSocketDecoderOptions unlimited;
    unlimited.max_frame_payload = UINT64_MAX;
    EXPECT_EQ(refusalOf(frame, unlimited), kWebSocketCloseProtocolError);
    EXPECT_EQ(decodeAll(frame, unlimited).consumed, 10u);
}

TEST(WebSocketDecoder, RefusesBadSequencing) {
    EXPECT_EQ(refusalOf(clientFrame(0x80, "x")), kWebSocketCloseProtocolError);
    EXPECT_EQ(refusalOf(clientFrame(0x00, "x")), kWebSocketCloseProtocolError);
    EXPECT_EQ(refusalOf(clientFrame(0x01, "a") + clientFrame(0x81, "b")),
              kWebSocketCloseProtocolError);
    EXPECT_EQ(refusalOf(clientFrame(0x02, "a") + clientFrame(0x01, "b")),
              kWebSocketCloseProtocolError);
    // A finished message allows a continuation no more.
    EXPECT_EQ(refusalOf(clientFrame(0x01, "a") + clientFrame(0x80, "b") + clientFrame(0x80, "c")),
              kWebSocketCloseProtocolError);
    Decoded decoded = decodeAll(clientFrame(0x01, "a") + clientFrame(0x81, "b"));
    EXPECT_EQ(decoded.frames.size(), 1u);  // the first frame is delivered before the refusal
}

TEST(WebSocketDecoder, RefusesFramesOverTheMaximum) {
    WebSocketDecoderOptions options;
    options.max_frame_payload = 1000;
    Decoded at_limit = decodeAll(clientFrame(0x82, std::string(1000, 'a')), options);
    EXPECT_EQ(at_limit.frames.size(), 1u);
    std::string over = clientFrame(0x82, std::string(1001, 'a'));
    EXPECT_EQ(refusalOf(over, options), kWebSocketCloseTooBig);
    EXPECT_EQ(decodeAll(over, options).consumed, 4u);  // before the payload
    // A huge announced length is refused without waiting for its bytes.
    std::string huge = bytes({0x82, 0xFF, 0x40, 0, 0, 0, 0, 0, 0, 0});
    EXPECT_EQ(refusalOf(huge), kWebSocketCloseTooBig);
    EXPECT_EQ(refusalOf(clientFrame(0x02, std::string(2000, 'a')), options), kWebSocketCloseTooBig);
    // Control frames are bounded by the RFC, not by the option.
    options.max_frame_payload = 10;
    EXPECT_EQ(decodeAll(clientFrame(0x89, std::string(100, 'p')), options).frames.size(), 1u);
}

TEST(WebSocketDecoder, RefusesBadClosePayloads) {
    EXPECT_EQ(refusalOf(clientFrame(0x88, "x")), kWebSocketCloseProtocolError);
    for (uint16_t code : {0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535}) {
        EXPECT_EQ(refusalOf(clientFrame(0x88, closePayload(code))), kWebSocketCloseProtocolError)
            << code;
        EXPECT_FALSE(validWebSocketCloseCode(code)) << code;
    }
    EXPECT_EQ(refusalOf(clientFrame(0x88, closePayload(1000, "\xff"))), kWebSocketCloseInvalidData);
    EXPECT_EQ(refusalOf(clientFrame(0x88, closePayload(1000, "caf\xc3"))),
              kWebSocketCloseInvalidData);
    // Close reasons are checked even when text messages are not.
    WebSocketDecoderOptions options;
    options.validate_utf8 = false;
    EXPECT_EQ(refusalOf(clientFrame(0x88, closePayload(1000, "\xc0\x80")), options),
              kWebSocketCloseInvalidData);
    Decoded valid =
        decodeAll(clientFrame(0x88, closePayload(1001, "caf\xc3\xa9 \xf0\x9f\x8c\xb3")));
    EXPECT_EQ(valid.frames.size(), 1u);
}

TEST(WebSocketDecoder, ChecksUtf8OfTextMessages) {
    const char* invalid[] = {
        "\x80",              // continuation without a lead
        "\xc0\x80",          // overlong NUL
        "\xc1\xbf",          // overlong
        "\xe0\x80\xaf",      // overlong '/'
        "\xed\xa0\x80",      // surrogate U+D800
        "\xf4\x90\x80\x80",  // above U+10FFFF
        "\xf5\x80\x80\x80",  // no such lead
        "\xff",
        "abc\xe2\x82",           // cut at the end of the message
        "0123456789abcdef\xfe",  // after an ASCII run
        "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"
        "edited",
    };
    for (const char* text : invalid) {
        EXPECT_EQ(refusalOf(clientFrame(0x81, text)), kWebSocketCloseInvalidData) << text;
    }
    const char* valid[] = {"",
                           "plain ASCII long enough for the fast path",
                           "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5",
                           "\xf0\x90\x80\x80",
                           "\xf4\x8f\xbf\xbf",
                           "\xed\x9f\xbf",
                           "\xee\x80\x80"};
    for (const char* text : valid) {
        EXPECT_EQ(decodeAll(clientFrame(0x81, text)).frames.size(), 1u) << text;
    }
}

TEST(WebSocketDecoder, ChecksUtf8AcrossFragments) {
    // "κό" with a sequence split between frames, and the ping in between
    // does not disturb the message's progress.
    std::string split = clientFrame(0x01, "\xce") + clientFrame(0x89, "\xff") +
                        clientFrame(0x00, "\xba\xe1\xbd") + clientFrame(0x80, "\xb9");
    Decoded decoded = decodeAll(split);
    EXPECT_EQ(decoded.status, WebSocketStatus::NeedMore);
    EXPECT_EQ(decoded.frames.size(), 4u);
    // Ending the message inside a sequence.
    EXPECT_EQ(refusalOf(clientFrame(0x01, "ok") + clientFrame(0x80, "\xe1\xbd")),
              kWebSocketCloseInvalidData);
    // A bad byte in a later fragment.
    EXPECT_EQ(refusalOf(clientFrame(0x01, "\xe1") + clientFrame(0x80, "\x41\x41")),
              kWebSocketCloseInvalidData);
    // Binary messages and pings are not text.
    EXPECT_EQ(decodeAll(clientFrame(0x02, "\xff") + clientFrame(0x80, "\xfe")).frames.size(), 2u);
    // A new text message starts fresh after a binary one that ended mid-"sequence".
    EXPECT_EQ(decodeAll(clientFrame(0x82, "\xe1") + clientFrame(0x81, "a")).frames.size(), 2u);
    // Without validation, anything goes.
    WebSocketDecoderOptions options;
    options.validate_utf8 = false;
    EXPECT_EQ(decodeAll(clientFrame(0x81, "\xff\xfe"), options).frames.size(), 1u);
}

TEST(WebSocketDecoder, ErrorIsSticky) {
    WebSocketDecoder decoder;
    std::string frame = bytes({0x83, 0x80, 0, 0, 0, 0});
    std::vector<char> buffer(frame.begin(), frame.end());
    WebSocketEvent error = decoder.decode(buffer);
    EXPECT_EQ(error.status, WebSocketStatus::Error);
    EXPECT_EQ(error.consumed, 1u);
    std::string good = clientFrame(0x81, "x");
    std::vector<char> more(good.begin(), good.end());
    WebSocketEvent again = decoder.decode(more);
    EXPECT_EQ(again.status, WebSocketStatus::Error);
    EXPECT_EQ(again.consumed, 0u);
    EXPECT_EQ(again.close_code, kWebSocketCloseProtocolError);
}

// ---------------------------------------------------------------------------
// Decoder: every way of cutting the input gives the same result

std::vector<std::string> splitCorpus() {
    return {
        clientFrame(0x81, "Hello"),
        clientFrame(0x01, "Hel") + clientFrame(0x89, "ping") + clientFrame(0x80, "lo"),
        clientFrame(0x82, patternPayload(300)) + clientFrame(0x8a, "pong"),
        clientFrame(0x82, "x", 5, LengthForm::Bits64) + clientFrame(0x81, "", 6),
        clientFrame(0x81, "caf\xc3\xa9") + clientFrame(0x88, closePayload(1000, "bye")),
        clientFrame(0x01, "\xe2\x82") + clientFrame(0x80, "\xac"),
        clientFrame(0x81, "a") + bytes({0x81, 0x05, 'H', 'e', 'l', 'l', 'o'}),
        clientFrame(0x81, "a") + clientFrame(0xC1, "b"),
        clientFrame(0x81, "\xed\xa0\x80"),
        clientFrame(0x88, closePayload(1004)),
        clientFrame(0x88, "x"),
        clientFrame(0x82, patternPayload(2000)),  // over the test maximum below
    };
}

TEST(WebSocketDecoder, SplitsGiveTheSameResult) {
    WebSocketDecoderOptions options;
    options.max_frame_payload = 1024;
    std::mt19937 random(42);
    for (const std::string& stream : splitCorpus()) {
        Decoded whole = decodeAll(stream, options);
        EXPECT_EQ(decodeByteByByte(stream, options), whole);
        for (size_t split = 0; split <= stream.size(); ++split) {
            ASSERT_EQ(decodeSplit(stream, split, options), whole) << "split at " << split;
        }
        for (int round = 0; round < 20; ++round) {
            EXPECT_EQ(decodeRandomReads(stream, random, options), whole);
        }
    }
}

// ---------------------------------------------------------------------------
// Decoder: deterministic fuzzing

std::string mutate(std::string stream, std::mt19937& random) {
    int rounds = 1 + static_cast<int>(random() % 4);
    for (int round = 0; round < rounds; ++round) {
        size_t at = stream.empty() ? 0 : random() % stream.size();
        switch (random() % 5) {
            case 0:
                if (!stream.empty()) {
                    stream[at] = static_cast<char>(random() % 256);
                }
                break;
            case 1:
                if (!stream.empty()) {
                    stream[at] = static_cast<char>(stream[at] ^ (1 << (random() % 8)));
                }
                break;
            case 2:
                stream.insert(stream.begin() + static_cast<std::ptrdiff_t>(at),
                              static_cast<char>(random() % 256));
                break;
            case 3:
                if (!stream.empty()) {
                    stream.erase(at, 1 + random() % 4);
                }
                break;
            default:
                stream.insert(at, stream.substr(at, random() % 16));
                break;
        }
    }
    return stream;
}

TEST(WebSocketDecoder, FuzzNeverCrashesAndAgreesWithItself) {
    WebSocketDecoderOptions options;
    options.max_frame_payload = 512;
    std::vector<std::string> seeds = splitCorpus();
    seeds.push_back(clientFrame(0x82, patternPayload(400), 0, LengthForm::Bits16));
    std::mt19937 random(1234);
    int frames = 0, errors = 0;
    for (int iteration = 0; iteration < 20000; ++iteration) {
        std::string stream;
        if (iteration % 4 == 0) {
            stream.resize(random() % 64);
            for (char& c : stream) {
                c = static_cast<char>(random() % 256);
            }
        } else {
            stream = mutate(seeds[random() % seeds.size()], random);
        }
        Decoded whole = decodeAll(stream, options);
        for (const auto& frame : whole.frames) {
            ASSERT_LE(frame.second.size(), options.max_frame_payload);
        }
        ASSERT_LE(whole.consumed, stream.size());
        Decoded pieces = decodeRandomReads(stream, random, options);
        ASSERT_EQ(pieces, whole) << "iteration " << iteration;
        frames += static_cast<int>(whole.frames.size());
        errors += whole.status == WebSocketStatus::Error;
        if (::testing::Test::HasFailure()) {
            return;
        }
    }
    // The mutations reach both outcomes.
    EXPECT_GT(frames, 1000);
    EXPECT_GT(errors, 1000);
}

// ---------------------------------------------------------------------------
// Encoder

TEST(WebSocketEncoder, RfcUnmaskedExamples) {
    std::string out;
    appendWebSocketFrame(out, kWebSocketFin | kWebSocketText, "Hello");
    EXPECT_EQ(out, bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}));

    out.clear();
    appendWebSocketFrame(out, kWebSocketText, "Hel");
    appendWebSocketFrame(out, kWebSocketFin | kWebSocketContinuation, "lo");
    EXPECT_EQ(out, bytes({0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f}));

    out.clear();
    appendWebSocketFrame(out, kWebSocketFin | kWebSocketPing, "Hello");
    EXPECT_EQ(out, bytes({0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}));

    std::string payload = patternPayload(256);
    out.clear();
    appendWebSocketFrame(out, kWebSocketFin | kWebSocketBinary, payload);
    EXPECT_EQ(out, bytes({0x82, 0x7E, 0x01, 0x00}) + payload);

    payload = patternPayload(65536);
    out.clear();
    appendWebSocketFrame(out, kWebSocketFin | kWebSocketBinary, payload);
    EXPECT_EQ(out, bytes({0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0}) + payload);
}

TEST(WebSocketEncoder, MinimalLengths) {
    EXPECT_EQ(webSocketFrameHeader(0x82, 0).view(), bytes({0x82, 0}));
    EXPECT_EQ(webSocketFrameHeader(0x82, 125).view(), bytes({0x82, 125}));
    EXPECT_EQ(webSocketFrameHeader(0x82, 126).view(), bytes({0x82, 126, 0, 126}));
    EXPECT_EQ(webSocketFrameHeader(0x82, 65535).view(), bytes({0x82, 126, 0xFF, 0xFF}));
    EXPECT_EQ(webSocketFrameHeader(0x82, 65536).view(), bytes({0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0}));
    EXPECT_EQ(webSocketFrameHeader(0x02, 0x0102030405060708ULL).view(),
              bytes({0x02, 127, 1, 2, 3, 4, 5, 6, 7, 8}));
    // The first byte is written as given (RSV bits included).
    EXPECT_EQ(webSocketFrameHeader(0xC1, 1).view(), bytes({0xC1, 1}));
}

TEST(WebSocketEncoder, CloseFrames) {
    std::string out;
    appendWebSocketClose(out, 1000, "bye");
    EXPECT_EQ(out, bytes({0x88, 5, 0x03, 0xE8, 'b', 'y', 'e'}));

    out.clear();
    appendWebSocketClose(out, kWebSocketCloseNoStatus, "ignored");
    EXPECT_EQ(out, bytes({0x88, 0}));

    out.clear();
    appendWebSocketClose(out, kWebSocketCloseTooBig);
    EXPECT_EQ(out, bytes({0x88, 2, 0x03, 0xF1}));

    // Long reasons are cut to 123 bytes, never inside a UTF-8 sequence.
    out.clear();
    appendWebSocketClose(out, 4000, std::string(200, 'r'));
    EXPECT_EQ(out.size(), 2u + 125u);
    EXPECT_EQ(static_cast<uint8_t>(out[1]), 125);
    out.clear();
    appendWebSocketClose(out, 4000, std::string(122, 'r') + "\xc3\xa9" + "tail");
    EXPECT_EQ(out.size(), 2u + 2u + 122u);
    out.clear();
    appendWebSocketClose(out, 4000, std::string(121, 'r') + "\xc3\xa9" + "tail");
    EXPECT_EQ(out.size(), 2u + 125u);

    EXPECT_DEATH(appendWebSocketClose(out, 1006), "may not carry code 1006");
}

TEST(WebSocketEncoder, CloseCodeOfAPayload) {
    EXPECT_EQ(webSocketCloseCode(""), kWebSocketCloseNoStatus);
    EXPECT_EQ(webSocketCloseCode(closePayload(1001, "away")), 1001);
    EXPECT_EQ(webSocketCloseCode(closePayload(4999)), 4999);
}

TEST(WebSocketEncoder, ServerFramesDecodeOnceMasked) {
    // What the router writes, masked as a client would, reads back the same.
    WebSocketDecoder decoder;
    for (size_t size : {0, 1, 125, 126, 1000, 65535, 65536}) {
        std::string payload = patternPayload(size);
        std::string frame;
        appendWebSocketFrame(frame, kWebSocketFin | kWebSocketBinary, payload);
        std::string masked = clientFrame(static_cast<uint8_t>(frame[0]), payload,
                                         static_cast<uint32_t>(size * 2654435761u));
        Decoded decoded = decodeReads(decoder, {masked});
        ASSERT_EQ(decoded.frames.size(), 1u);
        EXPECT_EQ(decoded.frames[0].second, payload) << size;
    }
}

}  // namespace
}  // namespace canopy::http
