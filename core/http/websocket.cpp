#include "core/http/websocket.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstring>

#include "core/base/check.h"
#include "core/http/chars.h"
#include "core/http/response.h"

namespace canopy::http {
namespace {

// Payload buffers grown beyond this by one large frame are released rather
// than kept for the connection's life.
constexpr size_t kKeptBufferCapacity = 64 * 1024;

bool isBase64Character(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

// A Sec-WebSocket-Key must decode to 16 bytes (RFC 6455 §4.1): 22 base64
// characters and "==". The 4 padding bits of the last character are not
// checked: the key is hashed as text, so they change nothing.
bool validKey(std::string_view key) {
    if (key.size() != 24 || key[22] != '=' || key[23] != '=') {
        return false;
    }
    return std::all_of(key.begin(), key.begin() + 22, isBase64Character);
}

void appendField(std::string& out, std::string_view name, std::string_view value) {
    out.append(name);
    out.append(": ");
    out.append(value);
    out.append("\r\n");
}

// Fields of the application that appendWebSocketAccept() leaves out.
bool droppedFromSwitch(std::string_view name) {
    switch (name.size()) {
        case 7:
            return chars::equalsLower(name, "upgrade");
        case 10:
            return chars::equalsLower(name, "connection");
        case 14:
            return chars::equalsLower(name, "content-length");
        case 17:
            return chars::equalsLower(name, "transfer-encoding");
        case 20:
            return chars::equalsLower(name, "sec-websocket-accept");
        case 24:
            return chars::equalsLower(name, "sec-websocket-extensions");
        default:
            return false;
    }
}

// XORs `size` bytes with the masking key, the first byte being at `offset`
// in the payload (RFC 6455 §5.3). Eight bytes at a time: payloads of
// megabytes pass through here.
void unmask(char* data, size_t size, const uint8_t (&mask)[4], uint64_t offset) {
    uint8_t key[8];
    for (size_t j = 0; j < 8; ++j) {
        key[j] = mask[(offset + j) & 3];
    }
    uint64_t key64;
    std::memcpy(&key64, key, sizeof(key64));
    size_t i = 0;
    for (; i + 8 <= size; i += 8) {
        uint64_t word;
        std::memcpy(&word, data + i, sizeof(word));
        word ^= key64;
        std::memcpy(data + i, &word, sizeof(word));
    }
    for (; i < size; ++i) {
        data[i] = static_cast<char>(static_cast<uint8_t>(data[i]) ^ key[i & 7]);
    }
}

}  // namespace

WebSocketHandshake checkWebSocketHandshake(const RequestHead& head) {
    WebSocketHandshake result;
    // RFC 9110 §7.8: a server ignores Upgrade in an HTTP/1.0 request.
    if (head.http10()) {
        return result;
    }
    bool connection_upgrade = false;
    bool upgrade_websocket = false;
    const HeaderField* key = nullptr;
    const HeaderField* version = nullptr;
    bool key_repeated = false;
    bool version_repeated = false;
    for (const HeaderField& field : head.fields) {
        switch (field.name.size()) {
            case 7:
                if (chars::equalsLower(field.name, "upgrade")) {
                    // "websocket" as a protocol name, with or without a
                    // version, like the request parser's `websocket` flag.
                    chars::forEachListElement(field.value, [&](std::string_view protocol) {
                        if (chars::equalsLower(protocol.substr(0, protocol.find('/')),
                                               "websocket")) {
                            upgrade_websocket = true;
                        }
                        return true;
                    });
                }
                break;
            case 10:
                if (chars::equalsLower(field.name, "connection")) {
                    chars::forEachListElement(field.value, [&](std::string_view option) {
                        if (chars::equalsLower(option, "upgrade")) {
                            connection_upgrade = true;
                        }
                        return true;
                    });
                }
                break;
            case 17:
                if (chars::equalsLower(field.name, "sec-websocket-key")) {
                    key_repeated = key_repeated || key != nullptr;
                    key = &field;
                }
                break;
            case 21:
                if (chars::equalsLower(field.name, "sec-websocket-version")) {
                    version_repeated = version_repeated || version != nullptr;
                    version = &field;
                }
                break;
            default:
                break;
        }
    }
    if (!connection_upgrade || !upgrade_websocket) {
        return result;
    }

    auto refuse = [&result](int status, const char* reason) {
        result.status = WebSocketHandshakeStatus::Refused;
        result.error_status = status;
        result.reason = reason;
        return result;
    };
    if (head.method != Method::Get) {
        return refuse(400, "WebSocket handshake with a method other than GET");
    }
    // The version first: a client of another version (hixie-76 sent no
    // Sec-WebSocket-Version and other keys) learns from the 426 what to use.
    // A repeated field is a broken request, not a version to retry with.
    if (version_repeated) {
        return refuse(400, "repeated Sec-WebSocket-Version field");
    }
    if (version == nullptr) {
        return refuse(426, "WebSocket handshake without Sec-WebSocket-Version");
    }
    if (version->value != kWebSocketVersion) {
        return refuse(426, "unsupported Sec-WebSocket-Version");
    }
    if (key_repeated) {
        return refuse(400, "repeated Sec-WebSocket-Key field");
    }
    if (key == nullptr) {
        return refuse(400, "WebSocket handshake without Sec-WebSocket-Key");
    }
    if (!validKey(key->value)) {
        return refuse(400, "Sec-WebSocket-Key is not 16 bytes in base64");
    }
    result.status = WebSocketHandshakeStatus::Valid;
    result.key = key->value;
    return result;
}

std::string webSocketAcceptValue(std::string_view key) {
    std::string text;
    text.reserve(key.size() + kWebSocketGuid.size());
    text.append(key);
    text.append(kWebSocketGuid);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_size = 0;
    int hashed = EVP_Digest(text.data(), text.size(), digest, &digest_size, EVP_sha1(), nullptr);
    // SHA-1 is in OpenSSL's default provider (and allowed by FIPS for this
    // use); failing here means a broken installation, on every handshake.
    CANOPY_CHECK(hashed == 1 && digest_size == 20, "OpenSSL could not compute SHA-1");
    unsigned char encoded[29];  // 4 * ceil(20 / 3) characters and a NUL
    int encoded_size = EVP_EncodeBlock(encoded, digest, static_cast<int>(digest_size));
    return std::string(reinterpret_cast<const char*>(encoded), static_cast<size_t>(encoded_size));
}

void appendWebSocketAccept(std::string& out, std::string_view accept, std::string_view server,
                           std::span<const HeaderField> fields) {
    out.append("HTTP/1.1 101 Switching Protocols\r\n");
    if (!server.empty()) {
        appendField(out, "Server", server);
    }
    appendField(out, "Date", currentHttpDate());
    out.append("Upgrade: websocket\r\nConnection: upgrade\r\n");
    appendField(out, "Sec-WebSocket-Accept", accept);
    for (const HeaderField& field : fields) {
        if (!droppedFromSwitch(field.name)) {
            appendField(out, field.name, field.value);
        }
    }
    out.append("\r\n");
}

void appendWebSocketRefusal(std::string& out, int status, std::string_view server,
                            bool head_request) {
    if (status != 426) {
        (void)appendErrorResponse(out, status, server, false, false, head_request);
        return;
    }
    // A 426 names the protocol to upgrade to, and whoever sends Upgrade lists
    // it in Connection (RFC 9110 §7.8), so Connection is written here along
    // with "close" rather than by appendResponseHead().
    static constexpr HeaderField kFields[] = {
        {"Content-Type", "text/html"},
        {"Connection", "upgrade, close"},
        {"Upgrade", "websocket"},
        {"Sec-WebSocket-Version", kWebSocketVersion},
    };
    std::string page = errorPage(status);
    ResponseHead head;
    head.status = status;
    head.framing = ResponseFraming::ContentLength;
    head.content_length = page.size();
    head.keep_alive = true;  // keeps appendResponseHead() from writing its own Connection
    head.server = server;
    head.fields = kFields;
    (void)appendResponseHead(out, head);
    if (!head_request) {
        out.append(page);
    }
}

bool validWebSocketCloseCode(uint16_t code) {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

uint16_t webSocketCloseCode(std::string_view close_payload) {
    if (close_payload.size() < 2) {
        return kWebSocketCloseNoStatus;
    }
    return static_cast<uint16_t>((static_cast<uint8_t>(close_payload[0]) << 8) |
                                 static_cast<uint8_t>(close_payload[1]));
}

WebSocketDecoder::WebSocketDecoder(WebSocketDecoderOptions options) : options_(options) {}

WebSocketEvent WebSocketDecoder::fail(size_t consumed, uint16_t close_code, const char* reason) {
    state_ = State::Error;
    final_ = WebSocketEvent{};
    final_.status = WebSocketStatus::Error;
    final_.close_code = close_code;
    final_.reason = reason;
    WebSocketEvent event = final_;
    event.consumed = consumed;
    return event;
}

WebSocketDecoder::Refusal WebSocketDecoder::headerByte() {
    uint8_t first = header_[0];
    uint8_t opcode = first & kWebSocketOpcodeMask;
    bool control = (opcode & 0x8) != 0;
    if (header_size_ == 1) {
        // Everything the first byte says is checked on it, so the refusal
        // comes at the same byte however the input was cut.
        if ((first & kWebSocketRsvMask) != 0) {
            return {kWebSocketCloseProtocolError, "RSV bits set, no extension was negotiated"};
        }
        switch (opcode) {
            case kWebSocketContinuation:
                if (!in_message_) {
                    return {kWebSocketCloseProtocolError, "continuation frame outside a message"};
                }
                break;
            case kWebSocketText:
            case kWebSocketBinary:
                if (in_message_) {
                    return {kWebSocketCloseProtocolError,
                            "new message before the fragmented one ended"};
                }
                break;
            case kWebSocketClose:
            case kWebSocketPing:
            case kWebSocketPong:
                if ((first & kWebSocketFin) == 0) {
                    return {kWebSocketCloseProtocolError, "fragmented control frame"};
                }
                break;
            default:
                return {kWebSocketCloseProtocolError, "unknown opcode"};
        }
        return {};
    }
    if (header_size_ == 2) {
        uint8_t second = header_[1];
        if ((second & 0x80) == 0) {
            return {kWebSocketCloseProtocolError, "unmasked frame from a client"};
        }
        uint8_t length = second & 0x7F;
        if (control && length > kWebSocketMaxControlPayload) {
            return {kWebSocketCloseProtocolError, "control frame payload over 125 bytes"};
        }
        uint8_t extended = length == 126 ? 2 : length == 127 ? 8 : 0;
        header_needed_ = static_cast<uint8_t>(2 + extended + 4);
        if (extended != 0) {
            return {};
        }
        payload_length_ = length;
    } else if (header_size_ == header_needed_ - 4) {
        // The extended length is complete. Non-minimal encodings (a 16-bit
        // 5, a 64-bit 300) are accepted: RFC 6455 §5.2 asks senders for the
        // minimal one but gives receivers no reason to care.
        payload_length_ = 0;
        for (uint8_t i = 2; i < header_size_; ++i) {
            payload_length_ = (payload_length_ << 8) | header_[i];
        }
        if ((payload_length_ >> 63) != 0) {
            return {kWebSocketCloseProtocolError, "64-bit payload length with the high bit set"};
        }
    } else {
        return {};
    }
    if (!control && payload_length_ > options_.max_frame_payload) {
        return {kWebSocketCloseTooBig, "frame payload over max_frame_size"};
    }
    return {};
}

bool WebSocketDecoder::feedUtf8(Utf8Progress& progress, std::string_view text) {
    const char* at = text.data();
    const char* end = at + text.size();
    while (at < end) {
        if (progress.remaining == 0) {
            // ASCII runs, eight bytes at a time.
            while (end - at >= 8) {
                uint64_t word;
                std::memcpy(&word, at, sizeof(word));
                if ((word & 0x8080808080808080ULL) != 0) {
                    break;
                }
                at += 8;
            }
            if (at == end) {
                break;
            }
            uint8_t lead = static_cast<uint8_t>(*at++);
            if (lead < 0x80) {
                continue;
            }
            // RFC 3629 §4: the lead byte fixes the length and the range of
            // the second byte (no overlongs, no surrogates, nothing above
            // U+10FFFF).
            progress.lower = 0x80;
            progress.upper = 0xBF;
            if (lead >= 0xC2 && lead <= 0xDF) {
                progress.remaining = 1;
            } else if (lead >= 0xE0 && lead <= 0xEF) {
                progress.remaining = 2;
                if (lead == 0xE0) {
                    progress.lower = 0xA0;
                } else if (lead == 0xED) {
                    progress.upper = 0x9F;
                }
            } else if (lead >= 0xF0 && lead <= 0xF4) {
                progress.remaining = 3;
                if (lead == 0xF0) {
                    progress.lower = 0x90;
                } else if (lead == 0xF4) {
                    progress.upper = 0x8F;
                }
            } else {
                return false;
            }
            continue;
        }
        uint8_t next = static_cast<uint8_t>(*at++);
        if (next < progress.lower || next > progress.upper) {
            return false;
        }
        --progress.remaining;
        progress.lower = 0x80;
        progress.upper = 0xBF;
    }
    return true;
}

WebSocketEvent WebSocketDecoder::finishFrame(std::string_view payload, size_t consumed) {
    uint8_t first = header_[0];
    uint8_t opcode = first & kWebSocketOpcodeMask;
    bool fin = (first & kWebSocketFin) != 0;
    switch (opcode) {
        case kWebSocketText:
        case kWebSocketBinary:
            message_text_ = opcode == kWebSocketText;
            utf8_ = Utf8Progress{};
            [[fallthrough]];
        case kWebSocketContinuation:
            // Checked per whole frame, not per piece of input, so the
            // refusal comes at the same byte however the input was cut. A
            // sequence may continue in the next fragment, not past the last.
            if (message_text_ && options_.validate_utf8 &&
                (!feedUtf8(utf8_, payload) || (fin && utf8_.remaining != 0))) {
                return fail(consumed, kWebSocketCloseInvalidData, "text message is not UTF-8");
            }
            in_message_ = !fin;
            break;
        case kWebSocketClose: {
            if (payload.size() == 1) {
                return fail(consumed, kWebSocketCloseProtocolError, "close payload of 1 byte");
            }
            if (!payload.empty() && !validWebSocketCloseCode(webSocketCloseCode(payload))) {
                return fail(consumed, kWebSocketCloseProtocolError, "invalid close code");
            }
            Utf8Progress reason;
            if (payload.size() > 2 &&
                (!feedUtf8(reason, payload.substr(2)) || reason.remaining != 0)) {
                return fail(consumed, kWebSocketCloseInvalidData, "close reason is not UTF-8");
            }
            break;
        }
        default:  // ping and pong: any payload
            break;
    }
    state_ = opcode == kWebSocketClose ? State::Closed : State::Header;
    header_size_ = 0;
    header_needed_ = 2;
    WebSocketEvent event;
    event.status = WebSocketStatus::Frame;
    event.consumed = consumed;
    event.first = first;
    event.payload = payload;
    return event;
}

WebSocketEvent WebSocketDecoder::decode(std::span<char> input) {
    if (state_ == State::Error) {
        return final_;
    }
    WebSocketEvent need_more;
    if (state_ == State::Closed) {
        need_more.consumed = input.size();
        return need_more;
    }
    size_t used = 0;
    if (state_ == State::Header) {
        // Byte by byte into header_: at most 14 bytes, and every field is
        // checked as soon as it is complete.
        while (header_size_ < header_needed_) {
            if (used == input.size()) {
                need_more.consumed = used;
                return need_more;
            }
            header_[header_size_++] = static_cast<uint8_t>(input[used++]);
            if (Refusal refusal = headerByte(); refusal.close_code != 0) {
                return fail(used, refusal.close_code, refusal.reason);
            }
        }
        std::memcpy(mask_, header_ + header_needed_ - 4, sizeof(mask_));
        state_ = State::Payload;
        payload_received_ = 0;
        // The previous frame's payload may be here: it stayed valid until
        // this call, and is dropped now.
        if (buffer_.capacity() > kKeptBufferCapacity) {
            std::string().swap(buffer_);
        } else {
            buffer_.clear();
        }
    }

    size_t available = input.size() - used;
    uint64_t missing = payload_length_ - payload_received_;
    if (payload_received_ == 0 && available >= missing) {
        // The whole payload is in the input: unmask it there, no copy.
        char* payload = input.data() + used;
        size_t size = static_cast<size_t>(missing);
        unmask(payload, size, mask_, 0);
        return finishFrame(std::string_view(payload, size), used + size);
    }
    // A piece: gather it, bounded by the length checked in the header.
    size_t take = static_cast<size_t>(std::min<uint64_t>(available, missing));
    size_t old_size = buffer_.size();
    buffer_.append(input.data() + used, take);
    unmask(buffer_.data() + old_size, take, mask_, payload_received_);
    payload_received_ += take;
    used += take;
    if (payload_received_ < payload_length_) {
        need_more.consumed = used;
        return need_more;
    }
    return finishFrame(buffer_, used);
}

WebSocketFrameHeader webSocketFrameHeader(uint8_t first, uint64_t payload_size) {
    CANOPY_CHECK((payload_size >> 63) == 0, "WebSocket payload length over 2^63 - 1");
    WebSocketFrameHeader header;
    header.bytes[0] = static_cast<char>(first);
    uint8_t extended = 0;
    if (payload_size <= kWebSocketMaxControlPayload) {
        header.bytes[1] = static_cast<char>(payload_size);
    } else if (payload_size <= 0xFFFF) {
        header.bytes[1] = 126;
        extended = 2;
    } else {
        header.bytes[1] = 127;
        extended = 8;
    }
    for (uint8_t i = 0; i < extended; ++i) {
        header.bytes[2 + i] = static_cast<char>(payload_size >> (8 * (extended - 1 - i)));
    }
    header.size = static_cast<uint8_t>(2 + extended);
    return header;
}

void appendWebSocketFrame(std::string& out, uint8_t first, std::string_view payload) {
    out.append(webSocketFrameHeader(first, payload.size()).view());
    out.append(payload);
}

void appendWebSocketClose(std::string& out, uint16_t code, std::string_view reason) {
    uint8_t first = kWebSocketFin | kWebSocketClose;
    if (code == kWebSocketCloseNoStatus) {
        out.append(webSocketFrameHeader(first, 0).view());
        return;
    }
    CANOPY_CHECK(validWebSocketCloseCode(code),
                 "a Close frame may not carry code " + std::to_string(code));
    size_t cut = std::min(reason.size(), kWebSocketMaxControlPayload - 2);
    if (cut < reason.size()) {
        // Back to the lead byte of a sequence the cut would split.
        while (cut > 0 && (static_cast<uint8_t>(reason[cut]) & 0xC0) == 0x80) {
            --cut;
        }
    }
    out.append(webSocketFrameHeader(first, 2 + cut).view());
    out.push_back(static_cast<char>(code >> 8));
    out.push_back(static_cast<char>(code & 0xFF));
    out.append(reason.substr(0, cut));
}

}  // namespace canopy::http
