#include <gtest/gtest.h>

#include <string>
#include <thread>

#include "canopy/app.hpp"
#include "canopy/testing/fake_router.hpp"

namespace canopy {
namespace {

using testing::FakeRequest;
using testing::FakeRouter;

// The C++ layer end to end: RAII types, string_view fields, span bodies.
TEST(AppCppTest, HelloAndEchoThroughTheCppLayer) {
    FakeRouter router;
    std::string attachment = router.attachment();
    AppOptions options;
    options.attachment = attachment.c_str();
    options.on_request = [](Request request) {
        if (request.path() == "/echo") {
            std::string body;
            std::byte buffer[1000];
            size_t got = 0;
            while (request.read(buffer, got) == Status::Ok && got > 0) {
                body.append(reinterpret_cast<const char*>(buffer), got);
            }
            (void)request.respond(200, {{"Content-Type", "application/octet-stream"}}, body);
            return;
        }
        if (request.path() == "/throw") {
            throw std::runtime_error("handler failed");
        }
        std::string greeting = "hello from ";
        greeting += request.serverName();
        greeting += request.tls() ? " over tls" : "";
        (void)request.respond(200, {{"Content-Type", "text/plain"}}, greeting);
    };
    App app;
    ASSERT_EQ(App::init(std::move(options), app), Status::Ok);
    std::thread runner([&] { EXPECT_EQ(app.mainContext().run(), Status::Ok); });

    FakeRequest hello;
    hello.server_name = "canopy.test";
    EXPECT_EQ(router.wait(router.submit(hello)).body, "hello from canopy.test");

    FakeRequest echo;
    echo.method = "POST";
    echo.target = "/echo";
    echo.body = std::string(50000, 'e');
    auto echoed = router.wait(router.submit(echo));
    EXPECT_EQ(echoed.body, echo.body);
    EXPECT_EQ(echoed.header("Content-Type"), "application/octet-stream");

    FakeRequest failing;
    failing.target = "/throw";
    EXPECT_TRUE(router.wait(router.submit(failing)).aborted);  // the exception stayed inside

    app.quit();
    runner.join();
}

TEST(AppCppTest, AWebSocketEchoWithTheCppLayer) {
    FakeRouter router;
    std::string attachment = router.attachment();
    AppOptions options;
    options.attachment = attachment.c_str();
    options.on_request = [](Request request) {
        if (request.isWebSocketHandshake() && request.acceptWebSocket() == Status::Ok) {
            request.release();  // stays open; frames follow
        }
    };
    options.on_frame = [](const WebSocketFrame& frame) {
        Request request(frame.request);
        (void)request.sendFrame(frame.opcode, frame.fin, frame.payload);
        if (frame.opcode != Opcode::Close) {
            request.release();
        }  // else: done when `request` goes out of scope
    };
    App app;
    ASSERT_EQ(App::init(std::move(options), app), Status::Ok);
    std::thread runner([&] { EXPECT_EQ(app.mainContext().run(), Status::Ok); });
    FakeRequest request;
    request.headers = {{"Upgrade", "websocket"},
                       {"Connection", "Upgrade"},
                       {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}};
    request.websocket = true;
    auto id = router.submit(request);
    router.sendFrame(id, CANOPY_WS_TEXT, true, "one");
    router.sendFrame(id, CANOPY_WS_CLOSE, true, "");
    auto response = router.wait(id);
    EXPECT_TRUE(response.upgraded);
    ASSERT_EQ(response.frames.size(), 2U);
    EXPECT_EQ(response.frames[0].payload, "one");
    app.quit();
    runner.join();
}

}  // namespace
}  // namespace canopy
