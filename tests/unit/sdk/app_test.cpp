#include "canopy/app.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "app_harness.h"

extern "C" int canopy_c_abi_run(const char* attachment);

namespace canopy::sdk_test {
namespace {

using testing::FakeRequest;
using testing::FakeRouterOptions;

void respond(canopy_request_t* request, uint16_t status, std::string_view body) {
    canopy_response_init(request, status, 1);
    canopy_response_add_header(request, "Content-Type", 12, "text/plain", 10);
    canopy_response_write(request, body.data(), body.size());
    canopy_request_done(request, CANOPY_OK);
}

// A flag one thread raises and another waits for, with a deadline.
class Signal {
  public:
    void raise() {
        std::lock_guard lock(mutex_);
        raised_ = true;
        condition_.notify_all();
    }
    bool wait(std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
        std::unique_lock lock(mutex_);
        return condition_.wait_for(lock, timeout, [&] { return raised_; });
    }

  private:
    std::mutex mutex_;
    std::condition_variable condition_;
    bool raised_ = false;
};

TEST(AppTest, HelloResponse) {
    AppHarness harness;
    harness.handlers.request = [](canopy_request_t* request) {
        respond(request, 200, "hello, canopy\n");
    };
    harness.start();
    auto response = harness.router.wait(harness.router.submit({}));
    EXPECT_TRUE(response.complete);
    EXPECT_EQ(response.status, 200);
    EXPECT_EQ(response.header("content-type"), "text/plain");
    EXPECT_EQ(response.body, "hello, canopy\n");
    EXPECT_EQ(harness.router.readyMessages(), 1U);
    harness.stop();
    EXPECT_EQ(harness.run_results[0], CANOPY_OK);
    EXPECT_EQ(harness.router.routerChunksInUse(), 0U);  // the head came back
}

TEST(AppTest, ARequestDoneWithoutAResponseIsAnEmpty200) {
    AppHarness harness;
    harness.handlers.request = [](canopy_request_t* request) {
        EXPECT_EQ(canopy_request_done(request, CANOPY_OK), CANOPY_OK);
    };
    harness.start();
    auto response = harness.router.wait(harness.router.submit({}));
    EXPECT_TRUE(response.complete);
    EXPECT_EQ(response.status, 200);
    EXPECT_EQ(response.header("Content-Type"), "text/plain");
    EXPECT_EQ(response.body, "");
}

TEST(AppTest, AFailedRequestAbortsItsResponse) {
    AppHarness harness;
    harness.handlers.request = [](canopy_request_t* request) {
        EXPECT_EQ(canopy_request_done(request, CANOPY_ERROR), CANOPY_OK);
    };
    harness.start();
    auto response = harness.router.wait(harness.router.submit({}));
    EXPECT_TRUE(response.aborted);
    EXPECT_FALSE(response.complete);
}

TEST(AppTest, RequestFields) {
    AppHarness harness;
    struct Seen {
        std::string method, target, path, query, version, remote, local, server, app_target;
        uint16_t port = 0;
        int tls = 0;
        int64_t length = 0;
        std::vector<std::pair<std::string, std::string>> headers;
        std::string cookie;
        int missing = 0;
    } seen;
    harness.handlers.request = [&](canopy_request_t* request) {
        seen.method = text(canopy_request_method(request));
        seen.target = text(canopy_request_target(request));
        seen.path = text(canopy_request_path(request));
        seen.query = text(canopy_request_query(request));
        seen.version = text(canopy_request_version(request));
        seen.remote = text(canopy_request_remote(request));
        seen.local = text(canopy_request_local_address(request));
        seen.server = text(canopy_request_server_name(request));
        seen.app_target = text(canopy_request_app_target(request));
        seen.port = canopy_request_local_port(request);
        seen.tls = canopy_request_tls(request);
        seen.length = canopy_request_content_length(request);
        for (size_t index = 0; index < canopy_request_header_count(request); ++index) {
            canopy_str_t name;
            canopy_str_t value;
            ASSERT_EQ(canopy_request_header(request, index, &name, &value), CANOPY_OK);
            seen.headers.emplace_back(text(name), text(value));
        }
        canopy_str_t name;
        EXPECT_EQ(canopy_request_header(request, 99, &name, nullptr), CANOPY_INVALID);
        canopy_str_t cookie;
        EXPECT_EQ(canopy_request_find_header(request, "COOKIE", 6, &cookie), CANOPY_OK);
        seen.cookie = text(cookie);
        seen.missing = canopy_request_find_header(request, "X-None", 6, &cookie);
        respond(request, 204, "");
    };
    harness.start();
    FakeRequest request;
    request.method = "POST";
    request.target = "/a%20b/c?x=1&y";
    request.path = "/a b/c";
    request.version = "HTTP/1.0";
    request.remote = "unix:/run/client.sock";
    request.local_address = "10.0.0.7";
    request.local_port = 8443;
    request.server_name = "example.org";
    request.app_target = "admin";
    request.tls = true;
    request.headers = {
        {"Host", "Example.org:8443"}, {"X-Trace", "1"}, {"Cookie", "a=b"}, {"X-Trace", "2"}};
    request.body = "abc";
    auto response = harness.router.wait(harness.router.submit(request));
    EXPECT_EQ(response.status, 204);
    EXPECT_EQ(seen.method, "POST");
    EXPECT_EQ(seen.target, "/a%20b/c?x=1&y");
    EXPECT_EQ(seen.path, "/a b/c");
    EXPECT_EQ(seen.query, "x=1&y");
    EXPECT_EQ(seen.version, "HTTP/1.0");
    EXPECT_EQ(seen.remote, "unix:/run/client.sock");
    EXPECT_EQ(seen.local, "10.0.0.7");
    EXPECT_EQ(seen.port, 8443);
    EXPECT_EQ(seen.server, "example.org");
    EXPECT_EQ(seen.app_target, "admin");
    EXPECT_EQ(seen.tls, 1);
    EXPECT_EQ(seen.length, 3);
    EXPECT_EQ(seen.headers, request.headers);  // in order, repeats kept
    EXPECT_EQ(seen.cookie, "a=b");
    EXPECT_EQ(seen.missing, CANOPY_NOT_FOUND);
}

TEST(AppTest, ATenMibBodyIsReadInPiecesAtFlatMemory) {
    constexpr uint64_t kSize = uint64_t{10} << 20;
    AppHarness harness;
    uint64_t total = 0;
    uint64_t mismatches = 0;
    size_t reads = 0;
    long growth_kib = -1;
    harness.handlers.request = [&](canopy_request_t* request) {
        EXPECT_EQ(canopy_request_content_length(request), static_cast<int64_t>(kSize));
        long before = residentKib();
        std::vector<uint8_t> buffer(64 * 1024);
        for (;;) {
            size_t got = 0;
            ASSERT_EQ(canopy_request_read(request, buffer.data(), buffer.size(), &got), CANOPY_OK);
            if (got == 0) {
                break;
            }
            for (size_t index = 0; index < got; ++index) {
                mismatches += buffer[index] != testing::bodyByte(total + index);
            }
            total += got;
            ++reads;
        }
        growth_kib = residentKib() - before;
        size_t got = 99;
        EXPECT_EQ(canopy_request_read(request, buffer.data(), buffer.size(), &got), CANOPY_OK);
        EXPECT_EQ(got, 0U);  // the end stays the end
        respond(request, 200, std::to_string(total));
    };
    harness.start();
    FakeRequest request;
    request.method = "PUT";
    request.generated_body_size = kSize;
    auto response = harness.router.wait(harness.router.submit(request));
    EXPECT_EQ(response.body, std::to_string(kSize));
    EXPECT_EQ(total, kSize);
    EXPECT_EQ(mismatches, 0U);
    EXPECT_GT(reads, 100U);  // partial reads, not one big one
    // Neither side holds more than a stream's credit of chunks: the body
    // never sits in memory whole (10 MiB).
    EXPECT_LT(growth_kib, 3 * 1024);
    harness.stop();
    EXPECT_EQ(harness.router.routerChunksInUse(), 0U);
}

TEST(AppTest, AStreamedResponseIsHeldBackByASlowClient) {
    FakeRouterOptions options;
    options.client_delay = std::chrono::microseconds(300);
    options.stream_credit = 4;
    AppHarness harness(options);
    constexpr int kChunks = 200;
    std::atomic<uint64_t> id{0};
    Signal submitted;
    uint64_t max_lead = 0;
    int write_errors = 0;
    harness.handlers.request = [&](canopy_request_t* request) {
        submitted.wait();
        canopy_response_init(request, 200, 0);
        canopy_response_send_headers(request);  // entry 1
        std::string chunk(16 * 1024, 'x');
        for (int index = 0; index < kChunks; ++index) {
            chunk[0] = static_cast<char>('a' + index % 26);
            write_errors += canopy_response_write(request, chunk.data(), chunk.size()) != CANOPY_OK;
            // Entries written (head + chunks) minus what the client took.
            uint64_t written = static_cast<uint64_t>(index) + 2;
            uint64_t lead = written - harness.router.releasedEntries(id.load());
            max_lead = std::max(max_lead, lead);
        }
        canopy_request_done(request, CANOPY_OK);
    };
    harness.start();
    id = harness.router.submit({});
    submitted.raise();
    auto response = harness.router.wait(id);
    EXPECT_TRUE(response.complete);
    EXPECT_EQ(write_errors, 0);
    ASSERT_EQ(response.body.size(), size_t{kChunks} * 16 * 1024);
    for (int index = 0; index < kChunks; ++index) {
        EXPECT_EQ(response.body[size_t(index) * 16 * 1024], static_cast<char>('a' + index % 26));
    }
    EXPECT_EQ(response.chunk_entries, size_t{kChunks} + 1);
    // The writer never got ahead of the client by more than the credit.
    EXPECT_LE(max_lead, options.stream_credit);
    EXPECT_GE(max_lead, options.stream_credit - 1);  // and it did fill it
}

TEST(AppTest, AFileIsHandedOverForSendfile) {
    AppHarness harness;
    const std::string content = "0123456789 a file the router sends with sendfile\n";
    int send_rc = -1;
    int bad_range = -1;
    harness.handlers.request = [&](canopy_request_t* request) {
        char path[] = "/tmp/canopy-sdk-file-XXXXXX";
        int fd = ::mkstemp(path);
        ASSERT_GE(fd, 0);
        ::unlink(path);
        ASSERT_EQ(::write(fd, content.data(), content.size()),
                  static_cast<ssize_t>(content.size()));
        canopy_response_init(request, 200, 1);
        canopy_response_add_header(request, "Content-Type", 12, "text/plain", 10);
        canopy_response_write(request, "head:", 5);
        bad_range = canopy_response_send_file(request, fd, 5, content.size());
        send_rc = canopy_response_send_file(request, fd, 11, content.size() - 11);
        ::close(fd);  // the router has its own descriptor now
        canopy_request_done(request, CANOPY_OK);
    };
    harness.start();
    auto response = harness.router.wait(harness.router.submit({}));
    EXPECT_EQ(send_rc, CANOPY_OK);
    EXPECT_EQ(bad_range, CANOPY_INVALID);
    EXPECT_EQ(response.file_entries, 1U);
    EXPECT_EQ(response.body, "head:" + content.substr(11));
}

TEST(AppTest, TwoContextsServeConcurrently) {
    FakeRouterOptions options;
    options.contexts = 2;
    AppHarness harness(options);
    std::mutex mutex;
    std::condition_variable condition;
    int inside = 0;
    int max_inside = 0;
    std::vector<std::thread::id> threads;
    harness.handlers.request = [&](canopy_request_t* request) {
        {
            // Both requests must be inside a handler at once: each waits for
            // the other, which only a second context can provide.
            std::unique_lock lock(mutex);
            ++inside;
            max_inside = std::max(max_inside, inside);
            threads.push_back(std::this_thread::get_id());
            condition.notify_all();
            condition.wait_for(lock, std::chrono::seconds(20), [&] { return max_inside >= 2; });
            --inside;
        }
        respond(request, 200, text(canopy_request_path(request)));
    };
    harness.start(2);
    FakeRequest first;
    first.target = "/one";
    FakeRequest second;
    second.target = "/two";
    auto one = harness.router.submit(first);
    auto two = harness.router.submit(second);
    EXPECT_EQ(harness.router.wait(one).body, "/one");
    EXPECT_EQ(harness.router.wait(two).body, "/two");
    EXPECT_EQ(max_inside, 2);
    ASSERT_EQ(threads.size(), 2U);
    EXPECT_NE(threads[0], threads[1]);
    // Only two slots were offered: a third context is refused.
    canopy_context_t* third = nullptr;
    EXPECT_EQ(canopy_context_create(harness.app, &third), CANOPY_NO_MEMORY);
    harness.stop();
    EXPECT_EQ(harness.run_results, (std::vector<int>{CANOPY_OK, CANOPY_OK}));
}

TEST(AppTest, QuitLetsTheRequestInFlightFinish) {
    AppHarness harness;
    Signal started;
    std::string body;
    harness.handlers.request = [&](canopy_request_t* request) {
        started.raise();
        char buffer[4096];
        size_t got = 0;
        while (canopy_request_read(request, buffer, sizeof buffer, &got) == CANOPY_OK && got > 0) {
            body.append(buffer, got);
        }
        EXPECT_EQ(canopy_app_quitting(canopy_context_app(canopy_request_context(request))), 1);
        respond(request, 200, "finished " + std::to_string(body.size()));
    };
    harness.start();
    FakeRequest request;
    request.method = "POST";
    request.body = std::string(200 * 1024, 'q');
    request.preread = false;
    auto id = harness.router.submit(request);
    ASSERT_TRUE(started.wait());
    // The handler waits for the body the router has not sent yet.
    harness.router.quit();
    auto response = harness.router.wait(id);
    EXPECT_TRUE(response.complete);
    EXPECT_EQ(response.body, "finished 204800");
    // The loop returns by itself once the request is done.
    harness.threads[0].join();
    harness.threads.clear();
    EXPECT_EQ(harness.run_results[0], CANOPY_OK);
}

TEST(AppTest, MisuseReturnsErrorCodes) {
    AppHarness harness;
    std::vector<int> codes;
    canopy_request_t* finished = nullptr;
    harness.handlers.request = [&](canopy_request_t* request) {
        codes.push_back(canopy_response_write(request, "x", 1));  // before init
        codes.push_back(canopy_response_send_headers(request));   // before init
        codes.push_back(canopy_response_init(request, 42, 0));    // bad status
        codes.push_back(canopy_response_init(request, 200, 2));   // ok
        codes.push_back(canopy_response_add_header(request, "", 0, "v", 1));
        codes.push_back(canopy_response_add_header(request, "Bad Name", 8, "v", 1));
        codes.push_back(canopy_response_add_header(request, "X-A", 3, "a\r\nb", 4));
        codes.push_back(canopy_response_add_header(request, "X-A", 3, "fine", 4));  // ok
        codes.push_back(canopy_response_write(request, "body", 4));  // ok, sends headers
        codes.push_back(canopy_response_add_header(request, "X-B", 3, "late", 4));  // after body
        codes.push_back(canopy_response_send_headers(request));                     // twice
        codes.push_back(canopy_response_init(request, 500, 0));                     // after headers
        codes.push_back(canopy_websocket_accept(request));                          // no handshake
        codes.push_back(canopy_websocket_send(request, CANOPY_WS_TEXT, 1, "x", 1));
        codes.push_back(canopy_request_done(request, CANOPY_OK));  // ok
        codes.push_back(canopy_request_done(request, CANOPY_OK));  // double done
        codes.push_back(canopy_response_write(request, "x", 1));   // after done
        size_t got = 0;
        char byte;
        codes.push_back(canopy_request_read(request, &byte, 1, &got));  // after done
        codes.push_back(canopy_response_send_file(request, 0, 0, 1));   // after done
        codes.push_back(canopy_request_read(nullptr, &byte, 1, &got));  // no request
        finished = request;
    };
    harness.start();
    auto response = harness.router.wait(harness.router.submit({}));
    EXPECT_TRUE(response.complete);
    EXPECT_EQ(response.header("X-A"), "fine");
    EXPECT_FALSE(response.header("X-B"));
    EXPECT_EQ(response.body, "body");
    harness.stop();  // the handler goes on after done: join it before looking
    std::vector<int> expected = {CANOPY_STATE,   CANOPY_STATE,   CANOPY_INVALID, CANOPY_OK,
                                 CANOPY_INVALID, CANOPY_INVALID, CANOPY_INVALID, CANOPY_OK,
                                 CANOPY_OK,      CANOPY_STATE,   CANOPY_STATE,   CANOPY_STATE,
                                 CANOPY_STATE,   CANOPY_STATE,   CANOPY_OK,      CANOPY_STATE,
                                 CANOPY_STATE,   CANOPY_STATE,   CANOPY_STATE,   CANOPY_INVALID};
    EXPECT_EQ(codes, expected);
    EXPECT_NE(finished, nullptr);
    EXPECT_STREQ(canopy_strerror(CANOPY_STATE), "out of order");
}

TEST(AppTest, InitRefusesWhatItCannotUse) {
    canopy_app_t* app = nullptr;
    EXPECT_EQ(canopy_app_init(nullptr, &app), CANOPY_INVALID);
    canopy_app_init_t init{};
    init.size = sizeof init;
    init.abi_major = CANOPY_APP_ABI_MAJOR;
    init.attachment = "canopy-app=1";
    EXPECT_EQ(canopy_app_init(&init, &app), CANOPY_INVALID);  // no request handler
    init.request_handler = &onRequest;
    EXPECT_EQ(canopy_app_init(&init, &app), CANOPY_INVALID);  // no descriptors
    init.attachment = "canopy-app=2 socket=3";
    EXPECT_EQ(canopy_app_init(&init, &app), CANOPY_UNSUPPORTED);
    init.abi_major = CANOPY_APP_ABI_MAJOR + 1;
    EXPECT_EQ(canopy_app_init(&init, &app), CANOPY_UNSUPPORTED);
    init.abi_major = CANOPY_APP_ABI_MAJOR;
    init.attachment = nullptr;
    ::unsetenv(CANOPY_APP_INIT_ENV);
    EXPECT_EQ(canopy_app_init(&init, &app), CANOPY_INVALID);  // nothing in the environment
    EXPECT_EQ(app, nullptr);
}

TEST(AppTest, TheAttachmentComesFromTheEnvironment) {
    testing::FakeRouter router;
    std::string attachment = router.attachment();
    ::setenv(CANOPY_APP_INIT_ENV, attachment.c_str(), 1);
    canopy_app_init_t init{};
    init.size = sizeof init;
    init.abi_major = CANOPY_APP_ABI_MAJOR;
    init.request_handler = [](canopy_request_t* request) {
        canopy_request_done(request, CANOPY_OK);
    };
    canopy_app_t* app = nullptr;
    ASSERT_EQ(canopy_app_init(&init, &app), CANOPY_OK);
    EXPECT_EQ(std::getenv(CANOPY_APP_INIT_ENV), nullptr);  // not for the app's children
    std::thread runner([&] { EXPECT_EQ(canopy_run(canopy_app_main_context(app)), CANOPY_OK); });
    EXPECT_EQ(router.wait(router.submit({})).status, 200);
    router.closePort();  // the router went away: the app quits
    runner.join();
    canopy_app_free(app);
}

TEST(AppTest, RequestLimitEndsTheLoop) {
    FakeRouterOptions options;
    options.request_limit = 2;
    AppHarness harness(options);
    harness.handlers.request = [](canopy_request_t* request) { respond(request, 200, "n"); };
    harness.start();
    EXPECT_EQ(harness.router.wait(harness.router.submit({})).status, 200);
    EXPECT_EQ(harness.router.wait(harness.router.submit({})).status, 200);
    harness.threads[0].join();  // returns without being told
    harness.threads.clear();
    EXPECT_EQ(harness.run_results[0], CANOPY_OK);
}

TEST(AppTest, TheCAbiWorksFromC) {
    testing::FakeRouter router;
    std::string attachment = router.attachment();
    int rc = -1;
    std::thread runner([&] { rc = canopy_c_abi_run(attachment.c_str()); });
    FakeRequest request;
    request.method = "POST";
    request.target = "/from-c?q";
    request.body = "ping";
    auto response = router.wait(router.submit(request));
    EXPECT_EQ(response.status, 201);
    EXPECT_EQ(response.header("X-Language"), "C11");
    EXPECT_EQ(response.body, "POST /from-c ping");
    router.quit();
    runner.join();
    EXPECT_EQ(rc, 0);
}

TEST(AppTest, WebSocketFramesTravelBothWays) {
    AppHarness harness;
    std::vector<std::string> received;
    harness.handlers.request = [](canopy_request_t* request) {
        ASSERT_EQ(canopy_request_is_websocket_handshake(request), 1);
        canopy_response_init(request, 101, 1);
        canopy_response_add_header(request, "Sec-WebSocket-Protocol", 22, "echo", 4);
        ASSERT_EQ(canopy_websocket_accept(request), CANOPY_OK);
        // Kept open: frames arrive through the websocket handler.
    };
    harness.handlers.frame = [&](const canopy_websocket_frame_t* frame) {
        std::string payload(reinterpret_cast<const char*>(frame->payload), frame->payload_length);
        received.push_back(payload);
        canopy_websocket_send(frame->request, frame->opcode, frame->fin, payload.data(),
                              payload.size());
        if (frame->opcode == CANOPY_WS_CLOSE) {
            canopy_request_done(frame->request, CANOPY_OK);
        }
    };
    harness.start();
    FakeRequest request;
    request.headers = {{"Upgrade", "websocket"},
                       {"Connection", "Upgrade"},
                       {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}};
    request.websocket = true;
    auto id = harness.router.submit(request);
    harness.router.sendFrame(id, CANOPY_WS_TEXT, true, "hello");
    auto frames = harness.router.waitFrames(id, 1);
    ASSERT_EQ(frames.size(), 1U);
    EXPECT_EQ(frames[0].payload, "hello");
    std::string big(100 * 1024, 'b');  // spans chunks both ways
    harness.router.sendFrame(id, CANOPY_WS_BINARY, true, big);
    harness.router.sendFrame(id, CANOPY_WS_CLOSE, true, "\x03\xe8");
    auto response = harness.router.wait(id);
    EXPECT_TRUE(response.complete);
    EXPECT_TRUE(response.upgraded);
    EXPECT_EQ(response.status, 101);
    EXPECT_EQ(response.header("Sec-WebSocket-Protocol"), "echo");
    ASSERT_EQ(response.frames.size(), 3U);
    EXPECT_EQ(response.frames[1].opcode, CANOPY_WS_BINARY);
    EXPECT_EQ(response.frames[1].payload, big);
    EXPECT_EQ(response.frames[2].opcode, CANOPY_WS_CLOSE);
    EXPECT_EQ(received.size(), 3U);
}

TEST(AppTest, AClientThatLeavesMakesWritesFail) {
    AppHarness harness;
    Signal writing;
    Signal aborted;
    int last = CANOPY_OK;
    harness.handlers.request = [&](canopy_request_t* request) {
        canopy_response_init(request, 200, 0);
        std::string chunk(16 * 1024, 'z');
        writing.raise();
        // Blocks once the credit is spent, until the router closes the stream.
        while ((last = canopy_response_write(request, chunk.data(), chunk.size())) == CANOPY_OK) {
        }
        canopy_request_done(request, CANOPY_OK);
        aborted.raise();
    };
    harness.start();
    auto id = harness.router.submit({});
    ASSERT_TRUE(writing.wait());
    harness.router.abortRequest(id);
    ASSERT_TRUE(aborted.wait());
    EXPECT_EQ(last, CANOPY_CLOSED);
}

}  // namespace
}  // namespace canopy::sdk_test
