#pragma once

// The client side of WebSocket (RFC 6455) for the router: the opening
// handshake (checking the upgrade request, computing Sec-WebSocket-Accept,
// writing the 101 and the refusals), an incremental decoder of the frames a
// client sends, and the encoder of the frames the router sends. Pure code
// like the rest of canopy_http: the engine owns sockets, buffers, timers and
// the application side (core/gateway's frame records).
//
// No extension is negotiated: RSV bits are refused, and the 101 never
// announces Sec-WebSocket-Extensions. The rules are in core/http/README.md.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "core/http/header_field.h"
#include "core/http/request_parser.h"

namespace canopy::http {

// ---------------------------------------------------------------------------
// Opening handshake (RFC 6455 §4.2)

// The GUID appended to the key before hashing (RFC 6455 §1.3).
inline constexpr std::string_view kWebSocketGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
// The only protocol version spoken, also the value sent with a 426.
inline constexpr std::string_view kWebSocketVersion = "13";

enum class WebSocketHandshakeStatus : uint8_t {
    // The request asks for no WebSocket upgrade (no "Connection: upgrade",
    // no "websocket" in Upgrade, or HTTP/1.0, whose Upgrade RFC 9110 §7.8
    // says to ignore): an ordinary request.
    NotWebSocket,
    // A valid handshake: pass it to the application; if it accepts, answer
    // with appendWebSocketAccept(webSocketAcceptValue(key), ...).
    Valid,
    // An upgrade to websocket that is broken: answer error_status with
    // appendWebSocketRefusal() and close.
    Refused,
};

struct [[nodiscard]] WebSocketHandshake {
    WebSocketHandshakeStatus status = WebSocketHandshakeStatus::NotWebSocket;
    // Valid: the Sec-WebSocket-Key value, a view into the head's buffer.
    std::string_view key;
    // Refused: 400 (not GET, Sec-WebSocket-Key missing, repeated or not 16
    // bytes in base64, Sec-WebSocket-Version repeated) or 426
    // (Sec-WebSocket-Version missing or not 13), and a static reason for the
    // log.
    int error_status = 0;
    const char* reason = "";
};

// Classifies a parsed request head. Reads only the method, the version and
// the fields, so a head built by hand works too. Any thread; no allocation.
WebSocketHandshake checkWebSocketHandshake(const RequestHead& head);

// Sec-WebSocket-Accept for `key`: base64(SHA-1(key + kWebSocketGuid)), 28
// characters. The key is hashed as sent (checkWebSocketHandshake validated it).
std::string webSocketAcceptValue(std::string_view key);

// Appends a whole "101 Switching Protocols" head to `out`: Server (when not
// empty), Date, "Upgrade: websocket", "Connection: upgrade",
// Sec-WebSocket-Accept, then the application's `fields` in order (e.g.
// Sec-WebSocket-Protocol) minus those the router writes or that a 101 must
// not carry: Upgrade, Connection, Sec-WebSocket-Accept, Content-Length,
// Transfer-Encoding, and Sec-WebSocket-Extensions (no extension is
// negotiated, so the decoder would refuse the RSV bits a client then sends).
// The fields' syntax is the caller's to have checked (core/gateway does).
void appendWebSocketAccept(std::string& out, std::string_view accept, std::string_view server,
                           std::span<const HeaderField> fields);

// Appends the answer to a Refused handshake: Unit's error page for `status`
// (no page for a HEAD request, as appendErrorResponse) and "Connection:
// close"; a 426 also carries "Sec-WebSocket-Version: 13" and "Upgrade:
// websocket" (RFC 6455 §4.4, RFC 9110 §15.5.22). Close the connection after
// sending it.
void appendWebSocketRefusal(std::string& out, int status, std::string_view server,
                            bool head_request);

// ---------------------------------------------------------------------------
// Frames (RFC 6455 §5)

// The first byte of a frame: FIN, RSV1-3, opcode.
inline constexpr uint8_t kWebSocketFin = 0x80;
inline constexpr uint8_t kWebSocketRsvMask = 0x70;
inline constexpr uint8_t kWebSocketOpcodeMask = 0x0F;

inline constexpr uint8_t kWebSocketContinuation = 0x0;
inline constexpr uint8_t kWebSocketText = 0x1;
inline constexpr uint8_t kWebSocketBinary = 0x2;
inline constexpr uint8_t kWebSocketClose = 0x8;
inline constexpr uint8_t kWebSocketPing = 0x9;
inline constexpr uint8_t kWebSocketPong = 0xA;

// Largest payload of a control frame (close, ping, pong).
inline constexpr size_t kWebSocketMaxControlPayload = 125;

// Close codes (RFC 6455 §7.4.1) the router sends or meets.
inline constexpr uint16_t kWebSocketCloseNormal = 1000;
inline constexpr uint16_t kWebSocketCloseGoingAway = 1001;
inline constexpr uint16_t kWebSocketCloseProtocolError = 1002;
inline constexpr uint16_t kWebSocketCloseNoStatus = 1005;  // never sent: "no code in the frame"
inline constexpr uint16_t kWebSocketCloseInvalidData = 1007;
inline constexpr uint16_t kWebSocketCloseTooBig = 1009;
inline constexpr uint16_t kWebSocketCloseInternalError = 1011;

// Whether a Close frame may carry `code` (RFC 6455 §7.4): 1000-1003,
// 1007-1014 and 3000-4999. 1004-1006, 1015, below 1000 and 1016-2999 may not.
bool validWebSocketCloseCode(uint16_t code);

// The code of a Close payload that the decoder delivered (so of 0 or at
// least 2 bytes): kWebSocketCloseNoStatus when empty.
uint16_t webSocketCloseCode(std::string_view close_payload);

struct WebSocketDecoderOptions {
    // settings.http.websocket.max_frame_size: a data frame with a longer
    // payload is refused (1009) as soon as its length is read. Control
    // frames are limited to 125 bytes by the RFC.
    uint64_t max_frame_payload = 1024 * 1024;
    // Check that text messages are UTF-8 across their fragments (1007).
    // Close reasons are always checked.
    bool validate_utf8 = true;
};

enum class WebSocketStatus : uint8_t {
    NeedMore,  // all input used; call again with more
    Frame,     // a whole frame: `first` and `payload`
    Error,     // send a Close frame with `close_code`, then close
};

struct [[nodiscard]] WebSocketEvent {
    WebSocketStatus status = WebSocketStatus::NeedMore;
    // Bytes of the input this call used: drop them before the next call.
    size_t consumed = 0;
    // Frame: FIN | opcode (the RSV bits are always 0) and the unmasked
    // payload. The payload is either inside the input (unmasked in place)
    // or in the decoder; it stays valid until the next decode() call and,
    // when in the input, while the input's bytes are untouched.
    uint8_t first = 0;
    std::string_view payload;
    // Error: the close code to send (1002, 1007 or 1009) and a static reason
    // for the log.
    uint16_t close_code = 0;
    const char* reason = "";

    bool fin() const { return (first & kWebSocketFin) != 0; }
    uint8_t opcode() const { return first & kWebSocketOpcodeMask; }
};

// An incremental decoder of the frames a client sends on one connection.
// Bytes arrive in arbitrary pieces; each call uses what it can and returns
// at most one event. A frame is delivered whole: its payload is unmasked in
// place when the input holds all of it, and otherwise gathered in a buffer
// of at most max_frame_payload bytes (a data frame) or 125 (a control
// frame). One thread at a time; one decoder per connection.
class WebSocketDecoder {
  public:
    explicit WebSocketDecoder(WebSocketDecoderOptions options = {});

    // Decodes from the start of `input`, which continues where the previous
    // call's `consumed` ended. The payload bytes of a frame whole in the
    // input are overwritten with their unmasked values. After an Error, the
    // same event comes back with consumed 0. After a Close frame, later
    // bytes are used and discarded (NeedMore): the client may send nothing
    // after it (RFC 6455 §5.5.1).
    WebSocketEvent decode(std::span<char> input);

    // A Close frame was delivered.
    bool closed() const { return state_ == State::Closed; }
    // A fragmented message is unfinished (its last frame had no FIN).
    bool inMessage() const { return in_message_; }

  private:
    enum class State : uint8_t { Header, Payload, Closed, Error };

    // Why a frame is refused; close_code 0 when it is not.
    struct Refusal {
        uint16_t close_code = 0;
        const char* reason = "";
    };

    // UTF-8 progress across pieces of text: continuation bytes still
    // expected and the range allowed for the next one (RFC 3629 §4).
    struct Utf8Progress {
        uint8_t remaining = 0;
        uint8_t lower = 0x80;
        uint8_t upper = 0xBF;
    };

    WebSocketEvent fail(size_t consumed, uint16_t close_code, const char* reason);
    // Checks the header byte just stored in header_.
    Refusal headerByte();
    // Checks a whole payload, updates the message state, and delivers.
    WebSocketEvent finishFrame(std::string_view payload, size_t consumed);
    // False at the first byte that cannot continue valid UTF-8.
    static bool feedUtf8(Utf8Progress& progress, std::string_view text);

    WebSocketDecoderOptions options_;
    State state_ = State::Header;
    WebSocketEvent final_;

    // The frame being read.
    uint8_t header_[14] = {};
    uint8_t header_size_ = 0;
    uint8_t header_needed_ = 2;  // known after the second byte
    uint8_t mask_[4] = {};
    uint64_t payload_length_ = 0;
    uint64_t payload_received_ = 0;  // bytes gathered in buffer_
    std::string buffer_;

    // The message being read, across its fragments.
    bool in_message_ = false;
    bool message_text_ = false;
    Utf8Progress utf8_;
};

// The header of a frame the router sends: `first` as given (FIN | RSV |
// opcode), no mask, the length in its shortest encoding. For gathering
// writes around a payload the engine does not copy.
struct WebSocketFrameHeader {
    char bytes[10];
    uint8_t size = 0;
    std::string_view view() const { return std::string_view(bytes, size); }
};
WebSocketFrameHeader webSocketFrameHeader(uint8_t first, uint64_t payload_size);

// Appends a whole unmasked frame.
void appendWebSocketFrame(std::string& out, uint8_t first, std::string_view payload);

// Appends a Close frame with `code` and `reason`, the reason cut to the 123
// bytes that fit (never inside a UTF-8 sequence). kWebSocketCloseNoStatus
// gives an empty payload (how to echo a Close that carried no code); any
// other code must satisfy validWebSocketCloseCode() (checked).
void appendWebSocketClose(std::string& out, uint16_t code, std::string_view reason = {});

}  // namespace canopy::http
