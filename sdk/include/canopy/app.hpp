#pragma once

// The header-only C++20 layer over <canopy/app.h>. It adds RAII, string_view
// and span accessors and error codes as values; it adds no behaviour, and
// every rule of the C header (ownership, threads) holds unchanged.
//
//   canopy::AppOptions options;
//   options.on_request = [](canopy::Request request) {
//       request.respond(200, {{"Content-Type", "text/plain"}}, "hello\n");
//   };  // the request is done when `request` goes out of scope
//   canopy::App app;
//   if (canopy::App::init(options, app) != canopy::Status::Ok) return 1;
//   return app.mainContext().run() == canopy::Status::Ok ? 0 : 1;
//
// Exceptions thrown by a handler never cross into the C library: the
// trampolines below catch them, log, and abort the request.

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <utility>

#include "canopy/app.h"

namespace canopy {
inline namespace v1 {

enum class [[nodiscard]] Status : int{
    Ok = CANOPY_OK,
    Error = CANOPY_ERROR,
    Again = CANOPY_AGAIN,
    State = CANOPY_STATE,
    Invalid = CANOPY_INVALID,
    Closed = CANOPY_CLOSED,
    NoMemory = CANOPY_NO_MEMORY,
    NotFound = CANOPY_NOT_FOUND,
    Unsupported = CANOPY_UNSUPPORTED,
    Quit = CANOPY_QUIT,
};

inline const char* describe(Status status) {
    return canopy_strerror(static_cast<int>(status));
}

namespace detail {
inline std::string_view view(canopy_str_t text) {
    return {text.data, text.length};
}
inline Status status(int code) {
    return static_cast<Status>(code);
}
}  // namespace detail

struct Header {
    std::string_view name;
    std::string_view value;
};

enum class Opcode : uint8_t {
    Continuation = CANOPY_WS_CONTINUATION,
    Text = CANOPY_WS_TEXT,
    Binary = CANOPY_WS_BINARY,
    Close = CANOPY_WS_CLOSE,
    Ping = CANOPY_WS_PING,
    Pong = CANOPY_WS_PONG,
};

// The response side of a request: a view, valid while its request is.
class Response {
  public:
    explicit Response(canopy_request_t* request) : request_(request) {}

    Status init(uint16_t status, uint32_t header_count_hint = 0) {
        return detail::status(canopy_response_init(request_, status, header_count_hint));
    }
    Status addHeader(std::string_view name, std::string_view value) {
        return detail::status(canopy_response_add_header(request_, name.data(), name.size(),
                                                         value.data(), value.size()));
    }
    Status sendHeaders() { return detail::status(canopy_response_send_headers(request_)); }
    // Blocks while the router holds as much of the response as it allows.
    Status write(std::span<const std::byte> data) {
        return detail::status(canopy_response_write(request_, data.data(), data.size()));
    }
    Status write(std::string_view text) { return write(std::as_bytes(std::span(text))); }
    // Copies what fits now into `written`; Again when nothing fit.
    Status writeNonBlocking(std::span<const std::byte> data, size_t& written) {
        return detail::status(
            canopy_response_write_nb(request_, data.data(), data.size(), &written));
    }
    // The router sendfile()s the bytes; the caller keeps `fd`.
    Status sendFile(int fd, uint64_t offset, uint64_t length) {
        return detail::status(canopy_response_send_file(request_, fd, offset, length));
    }

  private:
    canopy_request_t* request_;
};

// A request the app owns: move-only; when it goes out of scope still open,
// it is done with Status::Ok (a response never started becomes an empty 200,
// as in Unit), or aborted when the scope is left by an exception. release()
// keeps it open past the handler (WebSocket, async).
class Request {
  public:
    Request() = default;
    explicit Request(canopy_request_t* request) : request_(request) {}
    Request(Request&& other) noexcept : request_(std::exchange(other.request_, nullptr)) {}
    Request& operator=(Request&& other) noexcept {
        if (this != &other) {
            finish();
            request_ = std::exchange(other.request_, nullptr);
        }
        return *this;
    }
    Request(const Request&) = delete;
    Request& operator=(const Request&) = delete;
    ~Request() { finish(); }

    canopy_request_t* get() const { return request_; }
    // Gives up ownership without finishing; returns the C handle.
    canopy_request_t* release() { return std::exchange(request_, nullptr); }

    // Fields: valid until the request is done.
    std::string_view method() const { return detail::view(canopy_request_method(request_)); }
    std::string_view target() const { return detail::view(canopy_request_target(request_)); }
    std::string_view path() const { return detail::view(canopy_request_path(request_)); }
    std::string_view query() const { return detail::view(canopy_request_query(request_)); }
    std::string_view version() const { return detail::view(canopy_request_version(request_)); }
    std::string_view remote() const { return detail::view(canopy_request_remote(request_)); }
    std::string_view localAddress() const {
        return detail::view(canopy_request_local_address(request_));
    }
    uint16_t localPort() const { return canopy_request_local_port(request_); }
    std::string_view serverName() const {
        return detail::view(canopy_request_server_name(request_));
    }
    std::string_view appTarget() const { return detail::view(canopy_request_app_target(request_)); }
    bool tls() const { return canopy_request_tls(request_) != 0; }
    std::optional<uint64_t> contentLength() const {
        int64_t length = canopy_request_content_length(request_);
        return length < 0 ? std::nullopt : std::optional<uint64_t>(static_cast<uint64_t>(length));
    }
    bool isWebSocketHandshake() const {
        return canopy_request_is_websocket_handshake(request_) != 0;
    }
    size_t headerCount() const { return canopy_request_header_count(request_); }
    Header header(size_t index) const {
        canopy_str_t name{"", 0};
        canopy_str_t value{"", 0};
        (void)canopy_request_header(request_, index, &name, &value);
        return {detail::view(name), detail::view(value)};
    }
    std::optional<std::string_view> findHeader(std::string_view name) const {
        canopy_str_t value{"", 0};
        if (canopy_request_find_header(request_, name.data(), name.size(), &value) != CANOPY_OK) {
            return std::nullopt;
        }
        return detail::view(value);
    }

    // Body: `got` is 0 exactly at the end.
    Status read(std::span<std::byte> buffer, size_t& got) {
        return detail::status(canopy_request_read(request_, buffer.data(), buffer.size(), &got));
    }
    Status readNonBlocking(std::span<std::byte> buffer, size_t& got) {
        return detail::status(canopy_request_read_nb(request_, buffer.data(), buffer.size(), &got));
    }

    Response response() const { return Response(request_); }

    // A whole response in one call: status, headers, body, done.
    Status respond(uint16_t status, std::initializer_list<Header> headers, std::string_view body) {
        Response out = response();
        Status result = out.init(status, static_cast<uint32_t>(headers.size()));
        for (const Header& field : headers) {
            if (result == Status::Ok) {
                result = out.addHeader(field.name, field.value);
            }
        }
        if (result == Status::Ok) {
            result = out.write(body);
        }
        return done(result == Status::Ok ? Status::Ok : Status::Error);
    }

    // WebSocket.
    Status acceptWebSocket() { return detail::status(canopy_websocket_accept(request_)); }
    Status sendFrame(Opcode opcode, bool fin, std::span<const std::byte> payload) {
        return detail::status(canopy_websocket_send(request_, static_cast<uint8_t>(opcode),
                                                    fin ? 1 : 0, payload.data(), payload.size()));
    }
    Status sendFrame(Opcode opcode, std::string_view payload) {
        return sendFrame(opcode, true, std::as_bytes(std::span(payload)));
    }

    // Finishes the request; Ok ends the response, anything else aborts it.
    // The handle stays usable for error checks until the callback returns.
    Status done(Status rc = Status::Ok) {
        return detail::status(canopy_request_done(request_, static_cast<int>(rc)));
    }

  private:
    void finish() {
        if (request_ != nullptr) {
            // STATE when already done: nothing to do. Unwinding aborts.
            bool unwinding = std::uncaught_exceptions() > uncaught_;
            (void)canopy_request_done(request_, unwinding ? CANOPY_ERROR : CANOPY_OK);
            request_ = nullptr;
        }
    }

    canopy_request_t* request_ = nullptr;
    int uncaught_ = std::uncaught_exceptions();
};

struct WebSocketFrame {
    canopy_request_t* request;  // the upgraded request; Request(...).release() pattern
    Opcode opcode;
    bool fin;
    std::span<const std::byte> payload;  // valid during the callback
    std::string_view text() const {
        return {reinterpret_cast<const char*>(payload.data()), payload.size()};
    }
};

// Handlers of an App. Each runs on the thread running the context.
struct AppOptions {
    std::function<void(Request)> on_request;  // required
    std::function<void(canopy_request_t*)> on_data;
    std::function<void(canopy_request_t*)> on_drain;
    std::function<void(const WebSocketFrame&)> on_frame;
    std::function<void(canopy_request_t*)> on_close;
    std::function<void(canopy_context_t*)> on_quit;
    const char* attachment = nullptr;  // nullptr: CANOPY_APP_INIT
    size_t max_websocket_frame = 0;
};

class Context {
  public:
    Context() = default;
    Context(canopy_context_t* context, bool owned) : context_(context), owned_(owned) {}
    Context(Context&& other) noexcept
        : context_(std::exchange(other.context_, nullptr)), owned_(other.owned_) {}
    Context& operator=(Context&& other) noexcept {
        if (this != &other) {
            reset();
            context_ = std::exchange(other.context_, nullptr);
            owned_ = other.owned_;
        }
        return *this;
    }
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;
    ~Context() { reset(); }

    canopy_context_t* get() const { return context_; }
    Status run() { return detail::status(canopy_run(context_)); }
    Status runOnce(int timeout_ms) { return detail::status(canopy_run_once(context_, timeout_ms)); }

  private:
    void reset() {
        if (context_ != nullptr && owned_) {
            canopy_context_free(context_);
        }
        context_ = nullptr;
    }

    canopy_context_t* context_ = nullptr;
    bool owned_ = false;
};

class App {
  public:
    App() = default;
    App(App&& other) noexcept
        : app_(std::exchange(other.app_, nullptr)), options_(std::move(other.options_)) {}
    App& operator=(App&& other) noexcept {
        if (this != &other) {
            reset();
            app_ = std::exchange(other.app_, nullptr);
            options_ = std::move(other.options_);
        }
        return *this;
    }
    App(const App&) = delete;
    App& operator=(const App&) = delete;
    ~App() { reset(); }

    // Attaches to the router; `out` holds the app on success.
    static Status init(AppOptions options, App& out) {
        App app;
        app.options_ = std::make_unique<AppOptions>(std::move(options));
        canopy_app_init_t init{};
        init.size = sizeof init;
        init.abi_major = CANOPY_APP_ABI_MAJOR;
        init.abi_minor = CANOPY_APP_ABI_MINOR;
        init.request_handler = &App::onRequest;
        init.data_handler = app.options_->on_data ? &App::onData : nullptr;
        init.drain_handler = app.options_->on_drain ? &App::onDrain : nullptr;
        init.websocket_handler = app.options_->on_frame ? &App::onFrame : nullptr;
        init.close_handler = app.options_->on_close ? &App::onClose : nullptr;
        init.quit_handler = app.options_->on_quit ? &App::onQuit : nullptr;
        init.user_data = app.options_.get();
        init.attachment = app.options_->attachment;
        init.max_websocket_frame = app.options_->max_websocket_frame;
        app.options_->attachment = nullptr;
        Status result = detail::status(canopy_app_init(&init, &app.app_));
        if (result == Status::Ok) {
            out = std::move(app);
        }
        return result;
    }

    canopy_app_t* get() const { return app_; }
    // The main context: owned by the app.
    Context mainContext() const { return Context(canopy_app_main_context(app_), false); }
    // A context for another thread; `out` owns it on success.
    Status createContext(Context& out) const {
        canopy_context_t* context = nullptr;
        Status result = detail::status(canopy_context_create(app_, &context));
        if (result == Status::Ok) {
            out = Context(context, true);
        }
        return result;
    }
    void quit() const { canopy_app_quit(app_); }
    bool quitting() const { return canopy_app_quitting(app_) != 0; }

  private:
    static AppOptions& options(canopy_request_t* request) {
        return *static_cast<AppOptions*>(
            canopy_app_user_data(canopy_context_app(canopy_request_context(request))));
    }
    // Every trampoline catches: nothing thrown may unwind into the C loop.
    template <typename Call>
    static void guarded(canopy_request_t* request, Call&& call) noexcept {
        try {
            call();
        } catch (...) {
            if (request != nullptr) {
                canopy_app_log(canopy_context_app(canopy_request_context(request)), 1 /* error */,
                               "a C++ handler threw; the request is aborted");
                (void)canopy_request_done(request, CANOPY_ERROR);
            }
        }
    }
    static void onRequest(canopy_request_t* request) {
        guarded(request, [&] { options(request).on_request(Request(request)); });
    }
    static void onData(canopy_request_t* request) {
        guarded(request, [&] { options(request).on_data(request); });
    }
    static void onDrain(canopy_request_t* request) {
        guarded(request, [&] { options(request).on_drain(request); });
    }
    static void onClose(canopy_request_t* request) {
        guarded(request, [&] { options(request).on_close(request); });
    }
    static void onFrame(const canopy_websocket_frame_t* frame) {
        guarded(frame->request, [&] {
            WebSocketFrame view{frame->request, static_cast<Opcode>(frame->opcode), frame->fin != 0,
                                std::as_bytes(std::span(frame->payload, frame->payload_length))};
            options(frame->request).on_frame(view);
        });
    }
    static void onQuit(canopy_context_t* context) {
        guarded(nullptr, [&] {
            static_cast<AppOptions*>(canopy_app_user_data(canopy_context_app(context)))
                ->on_quit(context);
        });
    }
    void reset() {
        if (app_ != nullptr) {
            canopy_app_free(app_);
            app_ = nullptr;
        }
    }

    canopy_app_t* app_ = nullptr;
    std::unique_ptr<AppOptions> options_;
};

}  // namespace v1
}  // namespace canopy
