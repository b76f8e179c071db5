// The gateway against real libcanopy apps in forked worker processes,
// attached with the attachment ApplicationChannel produces. Children report
// through their exit status only.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "attachment.h"
#include "canopy/app.hpp"
#include "canopy/transport/channel.h"
#include "canopy/transport/stream.h"
#include "core/gateway/application_channel.h"
#include "core/gateway/exchange.h"
#include "core/gateway/port_message.h"

namespace canopy::gateway {
namespace {

constexpr uint8_t byteAt(uint64_t offset) {
    return static_cast<uint8_t>((offset * 131) ^ (offset >> 11));
}

long residentKib() {
    FILE* file = std::fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (file != nullptr && std::fgets(line, sizeof line, file) != nullptr) {
        if (std::sscanf(line, "VmRSS: %ld kB", &kib) == 1) {
            break;
        }
    }
    if (file != nullptr) {
        std::fclose(file);
    }
    return kib;
}

// The app every libcanopy worker runs.
void handle(canopy::Request request) {
    std::string_view path = request.path();
    if (path == "/hello") {
        (void)request.respond(200, {{"Content-Type", "text/plain"}}, "hello\n");
    } else if (path == "/fields") {
        std::string out;
        out += std::string(request.method()) + "|" + std::string(request.target()) + "|" +
               std::string(request.path()) + "|" + std::string(request.query()) + "|" +
               std::string(request.version()) + "|" + std::string(request.remote()) + "|" +
               std::string(request.localAddress()) + "|" + std::string(request.serverName()) + "|" +
               std::string(request.appTarget()) + "|" + (request.tls() ? "tls" : "plain") + "\n";
        for (size_t index = 0; index < request.headerCount(); ++index) {
            auto header = request.header(index);
            out += std::string(header.name) + ": " + std::string(header.value) + "\n";
        }
        (void)request.respond(201, {{"X-Reply", "yes"}}, out);
    } else if (path == "/upload") {
        // Checks every byte: the body must arrive whole and in order.
        std::byte buffer[20000];
        uint64_t total = 0;
        bool good = true;
        size_t got = 0;
        while (request.read(buffer, got) == canopy::Status::Ok && got > 0) {
            for (size_t index = 0; index < got; ++index) {
                good &= static_cast<uint8_t>(buffer[index]) == byteAt(total + index);
            }
            total += got;
        }
        (void)request.respond(200, {}, std::to_string(total) + (good ? " good" : " bad"));
    } else if (path == "/download") {
        uint64_t size = std::stoull(std::string(request.query()));
        auto response = request.response();
        (void)response.init(200);
        (void)response.addHeader("Content-Length", std::to_string(size));
        std::vector<std::byte> piece(50000);
        for (uint64_t sent = 0; sent < size;) {
            size_t length = static_cast<size_t>(std::min<uint64_t>(piece.size(), size - sent));
            for (size_t index = 0; index < length; ++index) {
                piece[index] = static_cast<std::byte>(byteAt(sent + index));
            }
            if (response.write(std::span(piece.data(), length)) != canopy::Status::Ok) {
                (void)request.done(canopy::Status::Error);
                return;
            }
            sent += length;
        }
        (void)request.done();
    } else if (path == "/file") {
        int fd = ::memfd_create("gateway-test-file", 0);
        const char text[] = "0123456789abcdef";
        (void)::write(fd, text, sizeof text - 1);
        auto response = request.response();
        (void)response.init(200);
        (void)response.write(std::string_view("head:"));
        (void)response.sendFile(fd, 4, 8);
        ::close(fd);  // the router has its own
        (void)request.done();
    } else if (path == "/die") {
        ::_exit(3);  // mid-request, holding it
    } else if (path == "/slowpid") {
        ::usleep(20000);  // long enough that an idle worker takes the next one
        (void)request.respond(200, {}, std::to_string(::getpid()));
    } else if (path == "/pid") {
        (void)request.respond(200, {}, std::to_string(::getpid()));
    } else if (path == "/fail") {
        (void)request.done(canopy::Status::Error);
    } else if (request.isWebSocketHandshake() && request.acceptWebSocket() == canopy::Status::Ok) {
        request.release();  // frames follow
    } else {
        (void)request.respond(404, {}, "");
    }
}

int runApp(const std::string& attachment) {
    canopy::AppOptions options;
    options.attachment = attachment.c_str();
    options.on_request = handle;
    options.on_frame = [](const canopy::WebSocketFrame& frame) {
        canopy::Request request(frame.request);
        (void)request.sendFrame(frame.opcode, frame.fin, frame.payload);
        if (frame.opcode != canopy::Opcode::Close) {
            request.release();
        }
    };
    canopy::App app;
    if (canopy::App::init(std::move(options), app) != canopy::Status::Ok) {
        return 10;
    }
    return app.mainContext().run() == canopy::Status::Ok ? 0 : 11;
}

struct Collected {
    bool ok = false;
    Failure failure = Failure::None;
    int status = 0;
    ResponseHead head;
    std::string body;
    uint64_t body_bytes = 0;
    bool body_good = true;  // every byte matched byteAt (generated bodies)
};

class GatewayTest : public ::testing::Test {
  protected:
    void SetUp() override { create({}); }

    void create(ApplicationOptions options) {
        options.segments.chunk_count = 64;  // 1 MiB segments
        options.app_shm_budget = size_t{16} << 20;
        options.channel.queue_capacity = std::max<uint32_t>(options.channel.queue_capacity, 8);
        options.channel.stream_slots = 256;
        options.channel.max_consumers = 8;
        auto created = ApplicationChannel::create(options);
        ASSERT_TRUE(created);
        channel_ = std::move(*created);
    }

    void TearDown() override {
        channel_.reset();  // sends Quit
        for (pid_t pid : children_) {
            int status = 0;
            for (int waited = 0; waited < 100; ++waited) {
                pid_t reaped = ::waitpid(pid, &status, WNOHANG);
                if (reaped == pid || reaped < 0) {  // exited, or reaped by the test
                    pid = -1;
                    break;
                }
                ::usleep(20000);
            }
            if (pid > 0) {
                ::kill(pid, SIGKILL);
                ::waitpid(pid, &status, 0);
            }
        }
    }

    pid_t spawn(const std::function<int(const std::string&)>& app = runApp) {
        auto launch = channel_->addWorker();
        EXPECT_TRUE(launch);
        std::fflush(nullptr);
        pid_t pid = ::fork();
        if (pid == 0) {
            int code = 97;
            try {
                code = launch->inheritInChild() ? app(launch->attachment) : 96;
            } catch (...) {
                code = 98;
            }
            ::_exit(code);
        }
        children_.push_back(pid);
        return pid;  // the launch's descriptors close here: the worker holds them now
    }

    // Runs the channel's loop until `done` or the timeout.
    bool pumpUntil(const std::function<bool()>& done, int timeout_ms = 20000) {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
        for (;;) {
            channel_->process();
            if (done()) {
                return true;
            }
            if (std::chrono::steady_clock::now() > deadline) {
                return false;
            }
            pollfd poll_fd{channel_->fd(), POLLIN, 0};
            ::poll(&poll_fd, 1, 50);
        }
    }

    std::unique_ptr<Exchange> submit(const RequestInfo& info, std::string_view preread = {}) {
        auto exchange = channel_->submit(info, std::as_bytes(std::span(preread)), [] {});
        EXPECT_TRUE(exchange);
        return exchange ? std::move(*exchange) : nullptr;
    }

    static RequestInfo get(std::string_view target) {
        RequestInfo info;
        info.method = "GET";
        info.target = target;
        info.path = target.substr(0, target.find('?'));
        info.query = target.find('?') == std::string_view::npos
                         ? std::string_view()
                         : target.substr(target.find('?') + 1);
        info.remote = "10.0.0.1";
        info.local_address = "10.0.0.2";
        info.local_port = 8080;
        info.server_name = "example.com";
        info.content_length = 0;
        return info;
    }

    // Reads the whole response; `client_delay` slows each release.
    Collected collect(Exchange& exchange, bool check_bytes = false,
                      std::chrono::microseconds client_delay = {}) {
        Collected out;
        const ResponseHead* head = nullptr;
        bool ended = pumpUntil([&] {
            if (head == nullptr) {
                auto got = exchange.readHead();
                if (!got) {
                    return got.code() != Errc::WouldBlock;
                }
                head = *got;
                out.head = *head;
                out.status = head->status;
            }
            for (;;) {
                auto piece = exchange.nextPiece();
                if (!piece) {
                    out.ok = piece.code() == Errc::Closed;
                    return piece.code() != Errc::WouldBlock;
                }
                std::string bytes;
                if (piece->isFile()) {
                    bytes.resize(piece->file_length);
                    ssize_t got = ::pread(piece->file_fd, bytes.data(), bytes.size(),
                                          static_cast<off_t>(piece->file_offset));
                    bytes.resize(got < 0 ? 0 : static_cast<size_t>(got));
                } else {
                    bytes.assign(reinterpret_cast<const char*>(piece->data.data()),
                                 piece->data.size());
                }
                if (check_bytes) {
                    for (size_t index = 0; index < bytes.size(); ++index) {
                        out.body_good &=
                            static_cast<uint8_t>(bytes[index]) == byteAt(out.body_bytes + index);
                    }
                } else {
                    out.body += bytes;
                }
                out.body_bytes += bytes.size();
                if (client_delay.count() > 0) {
                    std::this_thread::sleep_for(client_delay);
                }
                EXPECT_TRUE(exchange.releasePiece());
            }
        });
        EXPECT_TRUE(ended) << "response timed out";
        out.failure = exchange.failure();
        return out;
    }

    std::unique_ptr<ApplicationChannel> channel_;
    std::vector<pid_t> children_;
};

TEST_F(GatewayTest, Hello) {
    spawn();
    auto exchange = submit(get("/hello"));
    Collected response = collect(*exchange);
    EXPECT_TRUE(response.ok);
    EXPECT_EQ(response.status, 200);
    ASSERT_EQ(response.head.fields.size(), 1U);
    EXPECT_EQ(response.head.fields[0].first, "Content-Type");
    EXPECT_EQ(response.body, "hello\n");
    exchange.reset();
    // The app frees the head chunk when it finishes, just after the end.
    EXPECT_TRUE(pumpUntil([&] { return channel_->routerChunksInUse() == 0; }, 3000));
}

TEST_F(GatewayTest, WorkerSaysReady) {
    WorkerId ready = 0;
    channel_->setWorkerObserver([&](WorkerId worker, WorkerEvent event) {
        if (event == WorkerEvent::Ready) {
            ready = worker;
        }
    });
    spawn();
    EXPECT_TRUE(pumpUntil([&] { return ready != 0; }));
    EXPECT_TRUE(channel_->workerReady(ready));
}

TEST_F(GatewayTest, AWorkerThatCannotServeSaysWhy) {
    WorkerId exited = 0;
    std::string reason;
    bool ready = false;
    channel_->setWorkerObserver([&](WorkerId worker, WorkerEvent event) {
        if (event == WorkerEvent::Ready) {
            ready = true;
        } else {
            exited = worker;
            // Readable while the Exited event runs.
            reason = channel_->workerStartFailure(worker);
        }
    });
    spawn([](const std::string& attachment) {
        return canopy_app_start_failed(attachment.c_str(),
                                       "lifespan startup failed:\nthe database is unreachable") ==
                       CANOPY_OK
                   ? 0
                   : 1;
    });
    EXPECT_TRUE(pumpUntil([&] { return exited != 0; }));
    EXPECT_FALSE(ready);
    // One line: control characters became spaces.
    EXPECT_EQ(reason, "lifespan startup failed: the database is unreachable");
    EXPECT_EQ(channel_->workerStartFailure(exited), "");  // forgotten with the worker
}

TEST_F(GatewayTest, AStartFailureTextIsCutAtItsLimit) {
    std::string reason;
    bool exited = false;
    channel_->setWorkerObserver([&](WorkerId worker, WorkerEvent event) {
        if (event == WorkerEvent::Exited) {
            exited = true;
            reason = channel_->workerStartFailure(worker);
        }
    });
    spawn([](const std::string& attachment) {
        std::string longer(5000, 'x');
        return canopy_app_start_failed(attachment.c_str(), longer.c_str()) == CANOPY_OK ? 0 : 1;
    });
    EXPECT_TRUE(pumpUntil([&] { return exited; }));
    EXPECT_EQ(reason, std::string(transport::kStartFailureMax, 'x'));
}

TEST_F(GatewayTest, AStartFailureNeedsAReasonAndAnAttachment) {
    EXPECT_EQ(canopy_app_start_failed("canopy-app=1 socket=3", nullptr), CANOPY_INVALID);
    EXPECT_EQ(canopy_app_start_failed("canopy-app=9 socket=3", "why"), CANOPY_UNSUPPORTED);
    EXPECT_EQ(canopy_app_start_failed("not an attachment", "why"), CANOPY_INVALID);
}

TEST_F(GatewayTest, RequestFieldsRoundTrip) {
    spawn();
    RequestInfo info = get("/fields?a=1&b=%20");
    info.method = "POST";
    info.tls = true;
    info.app_target = "admin";
    info.headers = {{"Host", "example.com"}, {"X-Twice", "1"}, {"X-Twice", "2"}};
    auto exchange = submit(info);
    Collected response = collect(*exchange);
    EXPECT_TRUE(response.ok);
    EXPECT_EQ(response.status, 201);
    EXPECT_EQ(
        response.body,
        "POST|/fields?a=1&b=%20|/fields|a=1&b=%20|HTTP/1.1|10.0.0.1|10.0.0.2|example.com|admin|"
        "tls\n"
        "Host: example.com\nX-Twice: 1\nX-Twice: 2\n");
}

TEST_F(GatewayTest, TenMibRequestBodyStreamsAtFlatMemory) {
    spawn();
    constexpr uint64_t kSize = uint64_t{10} << 20;
    RequestInfo info = get("/upload");
    info.method = "POST";
    info.content_length = kSize;
    info.body_complete = false;
    // The first 5000 bytes came with the head, as the engine would pass them.
    std::string preread(5000, '\0');
    for (size_t index = 0; index < preread.size(); ++index) {
        preread[index] = static_cast<char>(byteAt(index));
    }
    auto exchange = submit(info, preread);
    uint64_t sent = preread.size();
    std::vector<std::byte> buffer(64 * 1024);
    size_t most_chunks = 0;
    long rss_before = residentKib();
    bool done = pumpUntil([&] {
        while (sent < kSize) {
            size_t length = static_cast<size_t>(std::min<uint64_t>(buffer.size(), kSize - sent));
            for (size_t index = 0; index < length; ++index) {
                buffer[index] = static_cast<std::byte>(byteAt(sent + index));
            }
            auto written = exchange->writeBody(std::span(buffer.data(), length));
            if (!written) {
                EXPECT_EQ(written.code(), Errc::WouldBlock);
                break;
            }
            sent += *written;
            most_chunks = std::max(most_chunks, channel_->routerChunksInUse());
        }
        if (sent == kSize) {
            EXPECT_TRUE(exchange->finishBody());
            return true;
        }
        return false;
    });
    ASSERT_TRUE(done);
    Collected response = collect(*exchange);
    EXPECT_EQ(response.body, std::to_string(kSize) + " good");
    // Credit (8) plus the head chunk: the body never piles up in the router.
    EXPECT_LE(most_chunks, 10U);
    EXPECT_LT(residentKib() - rss_before, 8 * 1024);
    exchange.reset();
    // The app frees the head chunk when it finishes, just after the end.
    EXPECT_TRUE(pumpUntil([&] { return channel_->routerChunksInUse() == 0; }, 3000));
}

TEST_F(GatewayTest, TenMibResponseWithASlowClient) {
    spawn();
    auto exchange = submit(get("/download?10485760"));
    const ResponseHead* head = nullptr;
    ASSERT_TRUE(pumpUntil([&] {
        auto got = exchange->readHead();
        head = got ? *got : nullptr;
        return head != nullptr;
    }));
    EXPECT_EQ(head->status, 200);
    // The client stalls: the app may run ahead by the credit only.
    uint32_t held = 0;
    pumpUntil(
        [&] {
            while (exchange->nextPiece()) {
                ++held;
            }
            return false;
        },
        300);
    EXPECT_EQ(held, channel_->options().channel.stream_credit);
    for (uint32_t index = 0; index < held; ++index) {
        ASSERT_TRUE(exchange->releasePiece());
    }
    // The head's chunk may have carried body bytes: count from scratch.
    Collected rest = collect(*exchange, false, std::chrono::microseconds(200));
    EXPECT_TRUE(rest.ok);
    EXPECT_GT(rest.body_bytes, uint64_t{9} << 20);
}

TEST_F(GatewayTest, TenMibResponseBytesAreExact) {
    spawn();
    auto exchange = submit(get("/download?10485760"));
    Collected response = collect(*exchange, true);
    EXPECT_TRUE(response.ok);
    EXPECT_EQ(response.body_bytes, uint64_t{10} << 20);
    EXPECT_TRUE(response.body_good);
}

TEST_F(GatewayTest, SendFileHandsOverTheDescriptor) {
    spawn();
    auto exchange = submit(get("/file"));
    Collected response = collect(*exchange);
    EXPECT_TRUE(response.ok);
    EXPECT_EQ(response.body, "head:456789ab");
}

TEST_F(GatewayTest, TwoWorkersTakeFromOneQueue) {
    pid_t first = spawn();
    pid_t second = spawn();
    std::vector<std::unique_ptr<Exchange>> exchanges;
    for (int index = 0; index < 20; ++index) {
        exchanges.push_back(submit(get("/slowpid")));
    }
    std::map<std::string, int> served;
    for (auto& exchange : exchanges) {
        Collected response = collect(*exchange);
        EXPECT_TRUE(response.ok);
        ++served[response.body];
    }
    EXPECT_EQ(served.size(), 2U);
    EXPECT_TRUE(served.count(std::to_string(first)) && served.count(std::to_string(second)));
}

TEST_F(GatewayTest, AWorkerDyingMidRequestFailsOnlyItsRequest) {
    pid_t doomed = spawn();
    // Only the doomed worker exists: it takes /die.
    auto dying = submit(get("/die"));
    Collected failed = collect(*dying);
    EXPECT_FALSE(failed.ok);
    EXPECT_EQ(failed.failure, Failure::WorkerDied);
    EXPECT_EQ(dying->errorStatus(), 502);
    int status = 0;
    EXPECT_EQ(::waitpid(doomed, &status, 0), doomed);
    EXPECT_EQ(WEXITSTATUS(status), 3);
    dying.reset();
    EXPECT_EQ(channel_->counters().worker_deaths, 1U);
    EXPECT_EQ(channel_->routerChunksInUse(), 0U);  // its head chunk came back at once
    // Another worker (reusing the consumer slot) keeps serving.
    spawn();
    auto next = submit(get("/hello"));
    Collected response = collect(*next);
    EXPECT_TRUE(response.ok);
    EXPECT_EQ(response.body, "hello\n");
}

TEST_F(GatewayTest, AWorkerDyingWhileReadingABodyReturnsItsChunks) {
    spawn([](const std::string& attachment) {
        canopy::AppOptions options;
        options.attachment = attachment.c_str();
        options.on_request = [](canopy::Request request) {
            std::byte buffer[1000];
            size_t got = 0;
            (void)request.read(buffer, got);  // takes a chunk, then dies holding it
            ::_exit(4);
        };
        canopy::App app;
        if (canopy::App::init(std::move(options), app) != canopy::Status::Ok) {
            return 10;
        }
        return app.mainContext().run() == canopy::Status::Ok ? 0 : 11;
    });
    spawn();
    RequestInfo info = get("/upload");
    info.method = "POST";
    info.content_length = 1 << 20;
    info.body_complete = false;
    auto exchange = submit(info);
    std::vector<std::byte> zeros(1 << 20);
    size_t sent = 0;
    pumpUntil(
        [&] {
            auto written = exchange->writeBody(std::span(zeros).subspan(sent));
            if (written) {
                sent += *written;
            }
            if (sent == zeros.size()) {
                EXPECT_TRUE(exchange->finishBody());
                return true;
            }
            return exchange->ended() || (written.code() == Errc::Aborted);
        },
        3000);
    Collected response = collect(*exchange);
    // Either worker may have taken it; the healthy one answers "bad" (zeros).
    if (!response.ok) {
        EXPECT_EQ(response.failure, Failure::WorkerDied);
        exchange.reset();
        EXPECT_TRUE(pumpUntil([&] { return channel_->routerChunksInUse() == 0; }, 3000));
    }
    auto next = submit(get("/hello"));
    Collected hello = collect(*next);
    if (!hello.ok) {
        // The dying worker took it: the next one goes to the healthy worker.
        next = submit(get("/hello"));
        hello = collect(*next);
    }
    EXPECT_EQ(hello.body, "hello\n");
}

TEST_F(GatewayTest, AnAppAbortBeforeTheHeadIs503) {
    spawn();
    auto exchange = submit(get("/fail"));
    Collected response = collect(*exchange);
    EXPECT_FALSE(response.ok);
    EXPECT_EQ(response.failure, Failure::AppAborted);
    EXPECT_EQ(exchange->errorStatus(), 503);
}

TEST_F(GatewayTest, AClientLeavingAbortsTheStream) {
    spawn();
    auto exchange = submit(get("/download?104857600"));
    ASSERT_TRUE(pumpUntil([&] { return exchange->readHead().ok(); }));
    exchange->abort();
    exchange.reset();
    // The app saw CLOSED and finished the request: it answers the next one.
    auto next = submit(get("/hello"));
    EXPECT_EQ(collect(*next).body, "hello\n");
}

TEST_F(GatewayTest, AFullQueueKeepsRequestsInTheRouter) {
    channel_.reset();
    ApplicationOptions options;
    options.channel.queue_capacity = 8;
    create(options);
    // No worker yet: 20 requests, 8 fit the queue, the rest wait.
    std::vector<std::unique_ptr<Exchange>> exchanges;
    for (int index = 0; index < 20; ++index) {
        exchanges.push_back(submit(get("/hello")));
    }
    EXPECT_EQ(channel_->counters().waiting, 12U);
    spawn();
    for (auto& exchange : exchanges) {
        EXPECT_EQ(collect(*exchange).body, "hello\n");
    }
    EXPECT_EQ(channel_->counters().waiting, 0U);
}

TEST_F(GatewayTest, WebSocketEcho) {
    spawn();
    RequestInfo info = get("/ws");
    info.headers = {{"Upgrade", "websocket"},
                    {"Connection", "Upgrade"},
                    {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
                    {"Sec-WebSocket-Version", "13"}};
    info.websocket = true;
    auto exchange = submit(info);
    const ResponseHead* head = nullptr;
    ASSERT_TRUE(pumpUntil([&] {
        auto got = exchange->readHead();
        head = got ? *got : nullptr;
        return head != nullptr || (!got && got.code() != Errc::WouldBlock);
    }));
    ASSERT_NE(head, nullptr);
    EXPECT_TRUE(head->upgrade);
    EXPECT_EQ(head->status, 101);
    std::string big(100000, 'x');
    ASSERT_TRUE(exchange->sendFrame(0x81, std::as_bytes(std::span(std::string_view("one")))));
    std::vector<WebSocketFrame> frames;
    bool big_sent = false;
    bool close_sent = false;
    ASSERT_TRUE(pumpUntil([&] {
        if (!big_sent) {
            big_sent = exchange->sendFrame(0x82, std::as_bytes(std::span(big))).ok();
        } else if (!close_sent) {
            close_sent = exchange->sendFrame(0x88, {}).ok();
        }
        for (;;) {
            auto frame = exchange->nextFrame();
            if (!frame) {
                return frame.code() == Errc::Closed;
            }
            frames.push_back(std::move(*frame));
        }
    }));
    ASSERT_EQ(frames.size(), 3U);
    EXPECT_EQ(frames[0].opcode(), 1);
    EXPECT_EQ(frames[0].payload, "one");
    EXPECT_EQ(frames[1].payload, big);
    EXPECT_EQ(frames[2].opcode(), 8);
}

// A worker that speaks the raw transport and writes garbage where the
// response head record belongs. The router must refuse each response and
// keep going.
int hostileApp(const std::string& text) {
    namespace tp = canopy::transport;
    auto attachment = canopy::app::parseAttachment(text);
    if (!attachment) {
        return 20;
    }
    auto channel = tp::Channel::attach(
        attachment->channel, tp::FileDescriptor(attachment->channel_fd),
        tp::FileDescriptor(attachment->queue_fd), tp::FileDescriptor(attachment->router_fd),
        attachment->consumers[0].index, tp::FileDescriptor(attachment->consumers[0].event_fd));
    if (!channel) {
        return 21;
    }
    tp::Party self = tp::consumerParty(attachment->consumers[0].index);
    int socket = attachment->socket_fd;
    tp::SegmentTable router_segments;
    tp::SegmentPool pool(attachment->segments, tp::holderOf(self), attachment->shm_budget);
    if (!pool.reserve(1) ||
        !sendPortMessage(socket, PortMessageType::AppSegment, 0, pool.table().find(0)->fd())) {
        return 22;
    }
    std::mt19937 random(11);
    for (uint64_t round = 0;; ++round) {
        for (;;) {
            auto message = receivePortMessage(socket);
            if (message.code() == tp::Errc::Closed) {
                return 0;
            }
            if (!message) {
                break;
            }
            if (message->type == PortMessageType::Quit) {
                return 0;
            }
            if (message->type == PortMessageType::RouterSegment) {
                (void)router_segments.attach(message->id, std::move(message->fd),
                                             attachment->segments);
            }
        }
        bool quit = false;
        auto taken = (*channel)->takeRequest(router_segments, 100, socket, [&] {
            while (auto message = receivePortMessage(socket)) {
                if (message->type == PortMessageType::RouterSegment) {
                    (void)router_segments.attach(message->id, std::move(message->fd),
                                                 attachment->segments);
                }
                quit = quit || message->type == PortMessageType::Quit;
            }
        });
        if (quit) {
            return 0;
        }
        if (!taken) {
            continue;
        }
        tp::releaseHead(router_segments, *taken);
        tp::StreamWriter writer(**channel,
                                {taken->response_stream, taken->response_stream_generation}, self,
                                pool.table());
        std::string bytes;
        switch (round % 6) {
            case 0:  // random bytes
                bytes.resize(3000);
                for (char& c : bytes) {
                    c = static_cast<char>(random());
                }
                break;
            case 1: {  // a head with CRLF in a value (response splitting)
                bytes = encodeResponseHead({200, false, {{"X", "a\r\nSet-Cookie: x"}}});
                break;
            }
            case 2: {  // a length claiming 1 GiB
                bytes = encodeResponseHead({200, false, {}});
                uint32_t huge = 1U << 30;
                std::memcpy(bytes.data() + 4, &huge, 4);
                break;
            }
            case 3: {  // field lengths overrunning the record
                bytes = encodeResponseHead({200, false, {{"A", "b"}}});
                uint32_t huge = 0xFFFFFFF0;
                std::memcpy(bytes.data() + 18, &huge, 4);
                break;
            }
            case 4: {  // an upgrade nobody asked for
                bytes = encodeResponseHead({101, true, {}});
                break;
            }
            default: {  // a file entry with an unknown token after a good head
                bytes = encodeResponseHead({200, false, {}});
                break;
            }
        }
        auto chunk = pool.allocate();
        if (!chunk) {
            return 23;
        }
        auto room = pool.table().find(chunk->segment)->chunk(chunk->index);
        std::memcpy(room.data(), bytes.data(), std::min(bytes.size(), room.size()));
        chunk->length = static_cast<uint32_t>(std::min(bytes.size(), room.size()));
        (void)writer.writeChunk(*chunk);
        if (round % 6 == 5) {
            (void)writer.writeFile(12345, 0, 10);
        }
        // A chunk ref into nowhere, then the end.
        tp::ChunkRef bogus{7, 99999, 1, 100};
        (void)writer.writeChunk(bogus);
        (void)writer.finish();
    }
}

TEST_F(GatewayTest, GarbageInTheResponseHeadNeverCrashesTheRouter) {
    spawn(hostileApp);
    for (int round = 0; round < 12; ++round) {
        auto exchange = submit(get("/x"));
        Collected response = collect(*exchange);
        EXPECT_FALSE(response.ok) << "round " << round;
        EXPECT_EQ(response.failure, Failure::ProtocolError) << "round " << round;
        EXPECT_EQ(exchange->errorStatus(), 502);
    }
    EXPECT_GE(channel_->counters().protocol_errors, 12U);
    // The hostile worker quits when asked; an honest one serves on.
    channel_->quitWorker(1);
    EXPECT_TRUE(pumpUntil([&] { return !channel_->workerAlive(1); }));
    spawn();
    bool honest = false;
    for (int attempt = 0; attempt < 20 && !honest; ++attempt) {
        auto exchange = submit(get("/hello"));
        Collected response = collect(*exchange);
        honest = response.ok;
        if (!honest) {
            std::fprintf(stderr, "attempt %d: %s\n", attempt, failureName(response.failure));
        }
    }
    EXPECT_TRUE(honest);
}

}  // namespace
}  // namespace canopy::gateway
