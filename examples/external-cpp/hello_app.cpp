#include "hello_app.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <charconv>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace hello {
namespace {

using canopy::Header;
using canopy::Opcode;
using canopy::Request;
using canopy::Status;

// canopy_app_log levels (as canopyd's --log-level: alert 0 ... debug 5).
constexpr int kLogError = 1;
constexpr int kLogWarn = 2;

// One transport chunk: each write fills one chunk entry, and the response
// waits for credit once 8 of them are in flight (docs/sdk.md).
constexpr size_t kEchoChunk = 16 * 1024;

// A short text/plain answer with its length, so the router need not chunk
// it. The request is done afterwards, whatever happened: a failure means the
// client left and there is nobody to tell.
void respondText(Request& request, uint16_t status, std::string_view body,
                 std::optional<Header> extra = std::nullopt) {
    std::string length = std::to_string(body.size());
    Header type{"Content-Type", "text/plain"};
    Header content_length{"Content-Length", length};
    if (extra) {
        (void)request.respond(status, {type, content_length, *extra}, body);
    } else {
        (void)request.respond(status, {type, content_length}, body);
    }
}

// GET / (and HEAD: the router sends no body for it).
void greet(Request request) {
    if (request.method() != "GET" && request.method() != "HEAD") {
        respondText(request, 405, "Method Not Allowed\n", Header{"Allow", "GET, HEAD"});
        return;
    }
    respondText(request, 200, kGreeting);
}

// GET /self: this program's own executable, handed to the router by
// descriptor; the router sends it with sendfile(), so the bytes never pass
// through the app or the shared memory.
void sendSelf(Request request) {
    int fd = ::open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    struct stat file_status {};
    if (fd < 0 || ::fstat(fd, &file_status) != 0) {
        if (fd >= 0) {
            ::close(fd);
        }
        respondText(request, 500, "cannot open the executable\n");
        return;
    }
    canopy::Response response = request.response();
    std::string length = std::to_string(file_status.st_size);
    Status result = response.init(200, 2);
    if (result == Status::Ok) {
        result = response.addHeader("Content-Type", "application/octet-stream");
    }
    if (result == Status::Ok) {
        result = response.addHeader("Content-Length", length);
    }
    if (result == Status::Ok) {
        result = response.sendFile(fd, 0, static_cast<uint64_t>(file_status.st_size));
    }
    // The router got its own duplicate: ours may close now.
    ::close(fd);
    (void)request.done(result == Status::Ok ? Status::Ok : Status::Error);
}

// Streams the body back: read a chunk, write a chunk. Neither side ever
// holds the body whole; a slow client makes the write wait for credit, which
// stops the reading, which holds the client's upload back.
void echo(Request request) {
    canopy::Response response = request.response();
    std::optional<uint64_t> length = request.contentLength();
    std::string length_text = length ? std::to_string(*length) : std::string();
    Status result = response.init(200, 2);
    if (result == Status::Ok) {
        std::optional<std::string_view> type = request.findHeader("Content-Type");
        result = response.addHeader("Content-Type", type.value_or("application/octet-stream"));
    }
    if (result == Status::Ok && length) {
        // Known in advance: the router frames the response exactly; without
        // it (a chunked upload) the router chunks the response too.
        result = response.addHeader("Content-Length", length_text);
    }
    std::array<std::byte, kEchoChunk> buffer;
    while (result == Status::Ok) {
        size_t got = 0;
        result = request.read(buffer, got);
        if (result != Status::Ok || got == 0) {
            break;
        }
        result = response.write(std::span(buffer).first(got));
    }
    // Ok ends the response (sending the head if the body was empty); anything
    // else (the client left, the router aborted) aborts it.
    (void)request.done(result == Status::Ok ? Status::Ok : Status::Error);
}

// The request's fields as `name: value` lines, then its headers indented.
std::string describe(const Request& request) {
    std::string local(request.localAddress());
    if (request.localPort() != 0) {
        bool ipv6 = local.find(':') != std::string::npos;
        local = (ipv6 ? "[" + local + "]" : local) + ":" + std::to_string(request.localPort());
    }
    std::string text;
    auto line = [&text](std::string_view name, std::string_view value) {
        text.append(name).append(": ").append(value).append("\n");
    };
    line("method", request.method());
    line("target", request.target());
    line("path", request.path());
    line("query", request.query());
    line("version", request.version());
    line("remote", request.remote());
    line("local", local);
    line("server name", request.serverName());
    line("tls", request.tls() ? "yes" : "no");
    text.append("headers:\n");
    for (size_t index = 0; index < request.headerCount(); ++index) {
        Header field = request.header(index);
        text.append("  ");
        line(field.name, field.value);
    }
    return text;
}

void showHeaders(Request request) {
    respondText(request, 200, describe(request));
}

// The WebSocket requests each context holds open, so that quitting can close
// them: the loop only returns once its context's requests are done, and a
// WebSocket stays open until the client leaves.
class WebSocketSessions {
  public:
    void add(canopy_request_t* request, canopy_context_t* context) {
        std::lock_guard lock(mutex_);
        open_.emplace(request, context);
    }
    void remove(canopy_request_t* request) {
        std::lock_guard lock(mutex_);
        open_.erase(request);
    }
    // Forgets and returns the sessions of `context`.
    std::vector<canopy_request_t*> takeAll(canopy_context_t* context) {
        std::lock_guard lock(mutex_);
        std::vector<canopy_request_t*> taken;
        for (auto entry = open_.begin(); entry != open_.end();) {
            if (entry->second == context) {
                taken.push_back(entry->first);
                entry = open_.erase(entry);
            } else {
                ++entry;
            }
        }
        return taken;
    }

  private:
    std::mutex mutex_;  // contexts run on several threads
    std::unordered_map<canopy_request_t*, canopy_context_t*> open_;
};

void acceptWebSocket(Request request, WebSocketSessions& sessions) {
    if (!request.isWebSocketHandshake()) {
        respondText(request, 426, "This endpoint speaks WebSocket: send an upgrade request.\n",
                    Header{"Upgrade", "websocket"});
        return;
    }
    if (request.acceptWebSocket() != Status::Ok) {
        (void)request.done(Status::Error);
        return;
    }
    // Kept open past this handler: frames arrive in onFrame.
    sessions.add(request.get(), canopy_request_context(request.get()));
    request.release();
}

// The payload that answers a close frame: its status code (RFC 6455 5.5.1),
// without the reason.
std::span<const std::byte> closeReply(std::span<const std::byte> payload) {
    return payload.size() >= 2 ? payload.first(2) : std::span<const std::byte>();
}

void onFrame(const canopy::WebSocketFrame& frame, WebSocketSessions& sessions) {
    // The upgraded request, owned again for this call; release() keeps it
    // open, anything else finishes it when `request` goes out of scope.
    Request request(frame.request);
    switch (frame.opcode) {
        case Opcode::Text:
        case Opcode::Binary:
        case Opcode::Continuation:
            // Fragments are echoed as they come, so a message keeps its shape.
            if (request.sendFrame(frame.opcode, frame.fin, frame.payload) == Status::Ok) {
                request.release();
                return;
            }
            break;
        case Opcode::Close:
            (void)request.sendFrame(Opcode::Close, true, closeReply(frame.payload));
            sessions.remove(request.get());
            (void)request.done(Status::Ok);
            return;
        case Opcode::Ping:
        case Opcode::Pong:
            // The router answers pings itself.
            request.release();
            return;
    }
    sessions.remove(request.get());
    (void)request.done(Status::Error);
}

// Quitting: tell each client of this context the server is going away
// (1001), then finish the request so that the context's loop can return.
void closeSessions(canopy_context_t* context, WebSocketSessions& sessions) {
    static constexpr std::array<std::byte, 2> kGoingAway{std::byte{0x03}, std::byte{0xe9}};
    for (canopy_request_t* open : sessions.takeAll(context)) {
        Request request(open);
        (void)request.sendFrame(Opcode::Close, true, kGoingAway);
        (void)request.done(Status::Ok);
    }
}

void route(Request request, WebSocketSessions& sessions) {
    std::string_view path = request.path();
    if (path == "/") {
        greet(std::move(request));
    } else if (path == "/echo") {
        echo(std::move(request));
    } else if (path == "/ws") {
        acceptWebSocket(std::move(request), sessions);
    } else if (path == "/self") {
        sendSelf(std::move(request));
    } else if (path == "/headers") {
        showHeaders(std::move(request));
    } else {
        respondText(request, 404, "Not Found\n");
    }
}

}  // namespace

canopy::AppOptions makeAppOptions() {
    auto sessions = std::make_shared<WebSocketSessions>();
    canopy::AppOptions options;
    options.on_request = [sessions](Request request) { route(std::move(request), *sessions); };
    options.on_frame = [sessions](const canopy::WebSocketFrame& frame) {
        onFrame(frame, *sessions);
    };
    // The router gave up on a request kept open (a WebSocket whose client
    // left): it is still ours to finish.
    options.on_close = [sessions](canopy_request_t* request) {
        sessions->remove(request);
        (void)Request(request).done(Status::Error);
    };
    options.on_quit = [sessions](canopy_context_t* context) { closeSessions(context, *sessions); };
    return options;
}

CommandLine parseCommandLine(std::span<const char* const> arguments) {
    CommandLine result;
    for (size_t index = 0; index < arguments.size(); ++index) {
        std::string_view argument = arguments[index];
        if (argument == "--help" || argument == "-h") {
            result.help = true;
            continue;
        }
        std::string_view value;
        if (argument == "--threads") {
            if (index + 1 == arguments.size()) {
                result.error = "--threads needs a number";
                return result;
            }
            value = arguments[++index];
        } else if (argument.starts_with("--threads=")) {
            value = argument.substr(std::string_view("--threads=").size());
        } else {
            result.error = "unknown argument \"" + std::string(argument) + "\"";
            return result;
        }
        unsigned threads = 0;
        auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), threads);
        if (error != std::errc() || end != value.data() + value.size() || threads == 0 ||
            threads > kMaxThreads) {
            result.error = "--threads takes a number from 1 to " + std::to_string(kMaxThreads) +
                           ", not \"" + std::string(value) + "\"";
            return result;
        }
        result.threads = threads;
    }
    return result;
}

std::string usage(std::string_view program) {
    std::string text = "Usage: ";
    text.append(program).append(
        " [--threads N]\n"
        "\n"
        "A hello application for Canopy. canopyd starts it for an application of\n"
        "type \"external\" and passes the attachment to the router in CANOPY_APP_INIT;\n"
        "it does not run on its own.\n"
        "\n"
        "  --threads N   serve on N threads (default 1). The router offers each\n"
        "                process the application's \"threads\" slots; threads\n"
        "                beyond them are not started.\n"
        "  --help        print this and exit\n");
    return text;
}

Status serve(const canopy::App& app, unsigned threads) {
    std::vector<canopy::Context> extra;
    for (unsigned index = 1; index < threads; ++index) {
        canopy::Context context;
        Status created = app.createContext(context);
        if (created != Status::Ok) {
            std::string message = "serving on " + std::to_string(index) + " of " +
                                  std::to_string(threads) +
                                  " threads: no more context slots from the router (" +
                                  canopy::describe(created) + ")";
            canopy_app_log(app.get(), kLogWarn, message.c_str());
            break;
        }
        extra.push_back(std::move(context));
    }

    std::vector<Status> results(extra.size(), Status::Ok);
    std::vector<std::thread> runners;
    runners.reserve(extra.size());
    auto run = [&app](canopy::Context& context, Status& result) {
        result = context.run();
        if (result != Status::Ok) {
            std::string message =
                std::string("a serving thread failed (") + canopy::describe(result) + "); quitting";
            canopy_app_log(app.get(), kLogError, message.c_str());
            app.quit();
        }
    };
    for (size_t index = 0; index < extra.size(); ++index) {
        runners.emplace_back(run, std::ref(extra[index]), std::ref(results[index]));
    }
    canopy::Context main_context = app.mainContext();
    Status result = Status::Ok;
    run(main_context, result);
    for (std::thread& runner : runners) {
        runner.join();
    }
    // Extra contexts are freed here (after their last run), before the app.
    for (Status extra_result : results) {
        if (result == Status::Ok) {
            result = extra_result;
        }
    }
    return result;
}

}  // namespace hello
