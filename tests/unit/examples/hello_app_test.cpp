// The external C++ example against the SDK's fake router: its handlers run
// in this process (hello::makeAppOptions, hello::serve), and the built
// program runs in a child that gets the attachment in CANOPY_APP_INIT, as
// canopyd passes it.

#include "hello_app.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "canopy/testing/fake_router.hpp"

namespace hello {
namespace {

using canopy::Status;
using canopy::testing::bodyByte;
using canopy::testing::FakeRequest;
using canopy::testing::FakeResponse;
using canopy::testing::FakeRouter;
using canopy::testing::FakeRouterOptions;

// The hello app on `threads` contexts, served by hello::serve on a thread of
// its own, attached to a fake router.
class HelloApp {
  public:
    explicit HelloApp(unsigned threads = 1, FakeRouterOptions options = {}) : router(options) {
        std::string attachment = router.attachment();
        canopy::AppOptions app_options = makeAppOptions();
        app_options.attachment = attachment.c_str();
        init_status = canopy::App::init(std::move(app_options), app);
        if (init_status == Status::Ok) {
            server = std::thread([this, threads] { serve_status = serve(app, threads); });
        }
    }
    ~HelloApp() {
        if (server.joinable()) {
            app.quit();
            server.join();
        }
    }
    HelloApp(const HelloApp&) = delete;
    HelloApp& operator=(const HelloApp&) = delete;

    FakeResponse get(const std::string& target, const std::string& method = "GET") {
        FakeRequest request;
        request.method = method;
        request.target = target;
        return router.wait(router.submit(request));
    }

    // The router's quit message; serve() returns once every context is done.
    Status quitAndJoin() {
        router.quit();
        server.join();
        return serve_status;
    }

    FakeRouter router;
    canopy::App app;
    Status init_status = Status::Error;
    Status serve_status = Status::Error;
    std::thread server;
};

FakeRequest webSocketRequest() {
    FakeRequest request;
    request.target = "/ws";
    request.headers = {{"Host", "localhost"},
                       {"Upgrade", "websocket"},
                       {"Connection", "Upgrade"},
                       {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
                       {"Sec-WebSocket-Version", "13"}};
    request.websocket = true;
    return request;
}

TEST(HelloAppTest, GreetsOnTheRoot) {
    HelloApp hello;
    ASSERT_EQ(hello.init_status, Status::Ok);
    FakeResponse response = hello.get("/");
    EXPECT_TRUE(response.complete);
    EXPECT_EQ(response.status, 200);
    EXPECT_EQ(response.header("Content-Type"), "text/plain");
    EXPECT_EQ(response.header("Content-Length"), "14");
    EXPECT_EQ(response.body, "Hello, world!\n");
    EXPECT_EQ(response.body, kGreeting);

    FakeResponse head = hello.get("/", "HEAD");
    EXPECT_EQ(head.status, 200);
    EXPECT_EQ(head.header("Content-Length"), "14");

    FakeResponse post = hello.get("/", "POST");
    EXPECT_EQ(post.status, 405);
    EXPECT_EQ(post.header("Allow"), "GET, HEAD");
    EXPECT_EQ(hello.quitAndJoin(), Status::Ok);
}

TEST(HelloAppTest, AnythingElseIsNotFound) {
    HelloApp hello;
    ASSERT_EQ(hello.init_status, Status::Ok);
    for (const char* target : {"/nope", "/echo/", "/hello", "/headers/x", "/ws/"}) {
        FakeResponse response = hello.get(target);
        EXPECT_EQ(response.status, 404) << target;
        EXPECT_EQ(response.body, "Not Found\n") << target;
        EXPECT_EQ(response.header("Content-Type"), "text/plain") << target;
    }
    EXPECT_EQ(hello.quitAndJoin(), Status::Ok);
}

// 10 MiB in, the same 10 MiB out, byte for byte, chunk by chunk.
TEST(HelloAppTest, EchoStreamsTenMebibytesBackByteExact) {
    HelloApp hello;
    ASSERT_EQ(hello.init_status, Status::Ok);
    constexpr uint64_t kSize = uint64_t{10} << 20;
    FakeRequest request;
    request.method = "POST";
    request.target = "/echo";
    request.headers = {{"Content-Type", "application/x-canopy-test"}};
    request.generated_body_size = kSize;
    FakeResponse response = hello.router.wait(hello.router.submit(request));
    EXPECT_TRUE(response.complete);
    EXPECT_EQ(response.status, 200);
    EXPECT_EQ(response.header("Content-Type"), "application/x-canopy-test");
    EXPECT_EQ(response.header("Content-Length"), std::to_string(kSize));
    ASSERT_EQ(response.body.size(), kSize);
    size_t mismatches = 0;
    for (uint64_t offset = 0; offset < kSize; ++offset) {
        mismatches += static_cast<uint8_t>(response.body[offset]) != bodyByte(offset);
    }
    EXPECT_EQ(mismatches, 0U);
    // Written a transport chunk at a time (16 KiB), never as one piece.
    EXPECT_GE(response.chunk_entries, kSize / (16 * 1024));
    EXPECT_EQ(hello.quitAndJoin(), Status::Ok);
    EXPECT_EQ(hello.router.routerChunksInUse(), 0U);
}

// A slow client and a small credit: the echo waits for the client instead
// of buffering, and still delivers everything.
TEST(HelloAppTest, EchoKeepsPaceWithASlowClient) {
    FakeRouterOptions options;
    options.stream_credit = 2;
    options.client_delay = std::chrono::microseconds(200);
    HelloApp hello(1, options);
    ASSERT_EQ(hello.init_status, Status::Ok);
    FakeRequest request;
    request.method = "PUT";
    request.target = "/echo";
    request.body = std::string(1 << 20, 'x');
    request.body[12345] = 'y';
    FakeResponse response = hello.router.wait(hello.router.submit(request));
    EXPECT_TRUE(response.complete);
    EXPECT_EQ(response.body, request.body);
    EXPECT_EQ(hello.quitAndJoin(), Status::Ok);
}

TEST(HelloAppTest, EchoOfAnEmptyBodyAndWithoutAContentType) {
    HelloApp hello;
    ASSERT_EQ(hello.init_status, Status::Ok);
    FakeResponse empty = hello.get("/echo", "POST");
    EXPECT_TRUE(empty.complete);
    EXPECT_EQ(empty.status, 200);
    EXPECT_EQ(empty.header("Content-Type"), "application/octet-stream");
    EXPECT_EQ(empty.header("Content-Length"), "0");
    EXPECT_EQ(empty.body, "");

    FakeRequest small;
    small.method = "POST";
    small.target = "/echo?any=query";
    small.body = "ping";
    small.preread = false;
    FakeResponse echoed = hello.router.wait(hello.router.submit(small));
    EXPECT_EQ(echoed.body, "ping");
    EXPECT_EQ(echoed.header("Content-Type"), "application/octet-stream");
    EXPECT_EQ(hello.quitAndJoin(), Status::Ok);
}

TEST(HelloAppTest, EchoGivesUpWhenTheClientLeaves) {
    FakeRouterOptions options;
    options.stream_credit = 2;
    HelloApp hello(1, options);
    ASSERT_EQ(hello.init_status, Status::Ok);
    FakeRequest request;
    request.method = "POST";
    request.target = "/echo";
    request.generated_body_size = uint64_t{64} << 20;
    auto id = hello.router.submit(request);
    hello.router.abortRequest(id);
    FakeResponse response = hello.router.wait(id);
    EXPECT_FALSE(response.complete);
    // The app is free again: the next request is served.
    EXPECT_EQ(hello.get("/").body, kGreeting);
    EXPECT_EQ(hello.quitAndJoin(), Status::Ok);
}

TEST(HelloAppTest, HeadersDescribesTheRequest) {
    HelloApp hello;
    ASSERT_EQ(hello.init_status, Status::Ok);
    FakeRequest request;
    request.method = "PUT";
    request.target = "/headers?a=1&b=%20";
    request.version = "HTTP/1.0";
    request.remote = "192.0.2.7";
    request.local_address = "::1";
    request.local_port = 8443;
    request.server_name = "example.test";
    request.tls = true;
    request.headers = {{"Host", "example.test:8443"}, {"X-Repeat", "1"}, {"x-repeat", "2"}};
    request.body = "ignored";
    FakeResponse response = hello.router.wait(hello.router.submit(request));
    EXPECT_EQ(response.status, 200);
    EXPECT_EQ(response.header("Content-Type"), "text/plain");
    EXPECT_EQ(response.body,
              "method: PUT\n"
              "target: /headers?a=1&b=%20\n"
              "path: /headers\n"
              "query: a=1&b=%20\n"
              "version: HTTP/1.0\n"
              "remote: 192.0.2.7\n"
              "local: [::1]:8443\n"
              "server name: example.test\n"
              "tls: yes\n"
              "headers:\n"
              "  Host: example.test:8443\n"
              "  X-Repeat: 1\n"
              "  x-repeat: 2\n");

    FakeResponse plain = hello.get("/headers");
    EXPECT_NE(plain.body.find("local: 127.0.0.1:8080\n"), std::string::npos) << plain.body;
    EXPECT_NE(plain.body.find("query: \n"), std::string::npos) << plain.body;
    EXPECT_NE(plain.body.find("tls: no\n"), std::string::npos) << plain.body;
    EXPECT_EQ(hello.quitAndJoin(), Status::Ok);
}

TEST(HelloAppTest, WebSocketEchoesTextBinaryFragmentsAndClose) {
    HelloApp hello;
    ASSERT_EQ(hello.init_status, Status::Ok);
    auto id = hello.router.submit(webSocketRequest());
    hello.router.sendFrame(id, CANOPY_WS_TEXT, true, "hello");
    auto frames = hello.router.waitFrames(id, 1);
    ASSERT_EQ(frames.size(), 1U);
    EXPECT_EQ(frames[0].opcode, CANOPY_WS_TEXT);
    EXPECT_EQ(frames[0].payload, "hello");

    std::string binary(100 * 1024, '\0');  // spans several chunks both ways
    for (size_t index = 0; index < binary.size(); ++index) {
        binary[index] = static_cast<char>(index * 7);
    }
    hello.router.sendFrame(id, CANOPY_WS_BINARY, true, binary);
    hello.router.sendFrame(id, CANOPY_WS_TEXT, false, "frag");
    hello.router.sendFrame(id, CANOPY_WS_CONTINUATION, true, "mented");
    hello.router.sendFrame(id, CANOPY_WS_PING, true, "are you there");
    hello.router.sendFrame(id, CANOPY_WS_CLOSE, true, std::string("\x03\xe8") + "bye");
    FakeResponse response = hello.router.wait(id);
    EXPECT_TRUE(response.complete);
    EXPECT_TRUE(response.upgraded);
    EXPECT_EQ(response.status, 101);
    ASSERT_EQ(response.frames.size(), 5U);  // the ping is the router's to answer
    EXPECT_EQ(response.frames[1].opcode, CANOPY_WS_BINARY);
    EXPECT_EQ(response.frames[1].payload, binary);
    EXPECT_EQ(response.frames[2].opcode, CANOPY_WS_TEXT);
    EXPECT_FALSE(response.frames[2].fin);
    EXPECT_EQ(response.frames[2].payload, "frag");
    EXPECT_EQ(response.frames[3].opcode, CANOPY_WS_CONTINUATION);
    EXPECT_TRUE(response.frames[3].fin);
    EXPECT_EQ(response.frames[3].payload, "mented");
    EXPECT_EQ(response.frames[4].opcode, CANOPY_WS_CLOSE);
    EXPECT_EQ(response.frames[4].payload, "\x03\xe8");  // the code, not the reason
    EXPECT_EQ(hello.quitAndJoin(), Status::Ok);
}

TEST(HelloAppTest, WebSocketWithoutAnUpgradeIsRefused) {
    HelloApp hello;
    ASSERT_EQ(hello.init_status, Status::Ok);
    FakeResponse response = hello.get("/ws");
    EXPECT_EQ(response.status, 426);
    EXPECT_EQ(response.header("Upgrade"), "websocket");
    EXPECT_FALSE(response.upgraded);
    EXPECT_EQ(hello.quitAndJoin(), Status::Ok);
}

TEST(HelloAppTest, WebSocketWhoseClientLeftIsFinished) {
    HelloApp hello;
    ASSERT_EQ(hello.init_status, Status::Ok);
    auto id = hello.router.submit(webSocketRequest());
    hello.router.sendFrame(id, CANOPY_WS_TEXT, true, "one");
    ASSERT_EQ(hello.router.waitFrames(id, 1).size(), 1U);
    hello.router.abortRequest(id);
    EXPECT_FALSE(hello.router.wait(id).complete);
    // Nothing is left open: quitting does not wait for the session.
    EXPECT_EQ(hello.quitAndJoin(), Status::Ok);
}

// A WebSocket stays open as long as its client wants; quitting closes it
// with 1001 (going away) so that the process can exit.
TEST(HelloAppTest, QuittingClosesOpenWebSockets) {
    HelloApp hello(2);
    ASSERT_EQ(hello.init_status, Status::Ok);
    std::vector<FakeRouter::RequestId> sockets;
    for (int index = 0; index < 3; ++index) {
        sockets.push_back(hello.router.submit(webSocketRequest()));
        hello.router.sendFrame(sockets.back(), CANOPY_WS_TEXT, true, "still here");
        ASSERT_EQ(hello.router.waitFrames(sockets.back(), 1).size(), 1U);
    }
    hello.router.quit();
    for (auto id : sockets) {
        FakeResponse response = hello.router.wait(id);
        EXPECT_TRUE(response.complete);
        ASSERT_EQ(response.frames.size(), 2U);
        EXPECT_EQ(response.frames[1].opcode, CANOPY_WS_CLOSE);
        EXPECT_EQ(response.frames[1].payload, "\x03\xe9");
    }
    hello.server.join();
    EXPECT_EQ(hello.serve_status, Status::Ok);
}

TEST(HelloAppTest, ServesOnSeveralThreads) {
    FakeRouterOptions options;
    options.contexts = 3;
    HelloApp hello(3, options);
    ASSERT_EQ(hello.init_status, Status::Ok);
    std::vector<FakeRouter::RequestId> ids;
    for (int index = 0; index < 30; ++index) {
        FakeRequest request;
        request.method = "POST";
        request.target = "/echo";
        request.body = std::string(40000, static_cast<char>('a' + index % 26));
        ids.push_back(hello.router.submit(request));
    }
    for (int index = 0; index < 30; ++index) {
        FakeResponse response = hello.router.wait(ids[static_cast<size_t>(index)]);
        EXPECT_EQ(response.body, std::string(40000, static_cast<char>('a' + index % 26)));
    }
    // serve() took every slot the router offered: none is left.
    canopy::Context extra;
    EXPECT_EQ(hello.app.createContext(extra), Status::NoMemory);
    EXPECT_EQ(hello.quitAndJoin(), Status::Ok);
}

TEST(HelloAppTest, MoreThreadsThanSlotsServesOnTheSlotsThereAre) {
    FakeRouterOptions options;
    options.contexts = 2;
    HelloApp hello(5, options);
    ASSERT_EQ(hello.init_status, Status::Ok);
    EXPECT_EQ(hello.get("/").body, kGreeting);
    EXPECT_EQ(hello.get("/").body, kGreeting);
    EXPECT_EQ(hello.quitAndJoin(), Status::Ok);
}

TEST(HelloAppTest, AClosedRouterSocketEndsServing) {
    HelloApp hello(2);
    ASSERT_EQ(hello.init_status, Status::Ok);
    EXPECT_EQ(hello.get("/").body, kGreeting);
    hello.router.closePort();
    hello.server.join();
    EXPECT_EQ(hello.serve_status, Status::Ok);
}

// ---- The command line -------------------------------------------------------

CommandLine parse(std::vector<const char*> arguments) {
    return parseCommandLine(arguments);
}

TEST(HelloCommandLineTest, ThreadsDefaultToOne) {
    CommandLine none = parse({});
    EXPECT_EQ(none.threads, 1U);
    EXPECT_FALSE(none.help);
    EXPECT_EQ(none.error, "");
}

TEST(HelloCommandLineTest, ThreadsInBothSpellings) {
    EXPECT_EQ(parse({"--threads", "4"}).threads, 4U);
    EXPECT_EQ(parse({"--threads=8"}).threads, 8U);
    EXPECT_EQ(parse({"--threads", "2", "--threads", "3"}).threads, 3U);
    EXPECT_EQ(parse({"--threads", "256"}).threads, 256U);
    EXPECT_TRUE(parse({"--help"}).help);
    EXPECT_TRUE(parse({"-h"}).help);
}

TEST(HelloCommandLineTest, BadUsageIsExplained) {
    EXPECT_EQ(parse({"--threads"}).error, "--threads needs a number");
    EXPECT_EQ(parse({"--threads", "0"}).error, "--threads takes a number from 1 to 256, not \"0\"");
    EXPECT_NE(parse({"--threads", "257"}).error, "");
    EXPECT_NE(parse({"--threads", "-1"}).error, "");
    EXPECT_NE(parse({"--threads", "2x"}).error, "");
    EXPECT_NE(parse({"--threads="}).error, "");
    EXPECT_EQ(parse({"--verbose"}).error, "unknown argument \"--verbose\"");
    EXPECT_NE(usage("canopy-hello-cpp").find("--threads N"), std::string::npos);
}

// ---- The program, as canopyd starts it ----------------------------------------

// The descriptors an attachment names ("socket=5 ... consumers=0:9,1:10").
std::vector<int> attachmentDescriptors(const std::string& attachment) {
    std::vector<int> fds;
    std::istringstream words(attachment);
    std::string word;
    while (words >> word) {
        size_t equals = word.find('=');
        std::string key = word.substr(0, equals);
        std::string value = word.substr(equals + 1);
        if (key == "socket" || key == "channel" || key == "queue" || key == "router") {
            fds.push_back(std::stoi(value));
        } else if (key == "consumers") {
            std::istringstream slots(value);
            std::string slot;
            while (std::getline(slots, slot, ',')) {
                fds.push_back(std::stoi(slot.substr(slot.find(':') + 1)));
            }
        }
    }
    return fds;
}

// canopy-hello-cpp in a child process, attached to `router` the way canopyd
// attaches it: the attachment's descriptors inherited, their numbers in
// CANOPY_APP_INIT.
class HelloProcess {
  public:
    HelloProcess(FakeRouter& router, std::vector<std::string> arguments) {
        std::string attachment = router.attachment();
        std::vector<int> fds = attachmentDescriptors(attachment);
        // Everything the child needs is built before fork(): after it, only
        // async-signal-safe calls.
        arguments.insert(arguments.begin(), CANOPY_HELLO_EXECUTABLE);
        std::vector<char*> argv;
        for (std::string& argument : arguments) {
            argv.push_back(argument.data());
        }
        argv.push_back(nullptr);
        std::string variable = std::string(CANOPY_APP_INIT_ENV) + "=" + attachment;
        std::vector<char*> envp{variable.data(), nullptr};
        pid_ = ::fork();
        if (pid_ == 0) {
            for (int fd : fds) {
                ::fcntl(fd, F_SETFD, 0);  // inherited across exec
            }
            ::execve(argv[0], argv.data(), envp.data());
            ::_exit(127);
        }
        for (int fd : fds) {
            ::close(fd);  // the child's now
        }
        pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
    }
    ~HelloProcess() {
        if (pid_ > 0 && !exit_status_) {
            ::kill(pid_, SIGKILL);
            (void)exitStatus(10000);
        }
        if (pidfd_ >= 0) {
            ::close(pidfd_);
        }
    }
    HelloProcess(const HelloProcess&) = delete;
    HelloProcess& operator=(const HelloProcess&) = delete;

    pid_t pid() const { return pid_; }

    // The exit status once the child exits within `timeout_ms`.
    std::optional<int> exitStatus(int timeout_ms) {
        if (!exit_status_) {
            pollfd ready{pidfd_, POLLIN, 0};
            if (::poll(&ready, 1, timeout_ms) == 1) {
                int status = 0;
                if (::waitpid(pid_, &status, 0) == pid_) {
                    exit_status_ = status;
                }
            }
        }
        return exit_status_;
    }

  private:
    pid_t pid_ = -1;
    int pidfd_ = -1;
    std::optional<int> exit_status_;
};

TEST(HelloProgramTest, ServesAndQuitsWhenTheRouterSaysSo) {
    FakeRouter router;
    HelloProcess program(router, {"--threads", "2"});
    EXPECT_EQ(router.wait(router.submit({})).body, kGreeting);
    FakeRequest echo;
    echo.method = "POST";
    echo.target = "/echo";
    echo.generated_body_size = 3 << 20;
    FakeResponse echoed = router.wait(router.submit(echo));
    ASSERT_EQ(echoed.body.size(), size_t{3} << 20);
    EXPECT_EQ(static_cast<uint8_t>(echoed.body[1000000]), bodyByte(1000000));
    router.quit();
    std::optional<int> status = program.exitStatus(10000);
    ASSERT_TRUE(status.has_value());
    EXPECT_TRUE(WIFEXITED(*status));
    EXPECT_EQ(WEXITSTATUS(*status), 0);
}

TEST(HelloProgramTest, SigtermIsAGracefulQuit) {
    FakeRouter router;
    HelloProcess program(router, {});
    auto id = router.submit(webSocketRequest());
    router.sendFrame(id, CANOPY_WS_TEXT, true, "hi");
    ASSERT_EQ(router.waitFrames(id, 1).size(), 1U);
    ASSERT_EQ(::kill(program.pid(), SIGTERM), 0);
    FakeResponse response = router.wait(id);
    ASSERT_EQ(response.frames.size(), 2U);
    EXPECT_EQ(response.frames[1].payload, "\x03\xe9");
    std::optional<int> status = program.exitStatus(10000);
    ASSERT_TRUE(status.has_value());
    EXPECT_TRUE(WIFEXITED(*status));
    EXPECT_EQ(WEXITSTATUS(*status), 0);
}

// Runs the program with `arguments` and no attachment; its exit code and
// what it printed on stdout and stderr.
struct ProgramRun {
    int code = -1;
    std::string output;
};

ProgramRun runWithoutAttachment(const std::string& arguments) {
    std::string command =
        "env -u " CANOPY_APP_INIT_ENV " " CANOPY_HELLO_EXECUTABLE " " + arguments + " 2>&1";
    ProgramRun run;
    FILE* pipe = ::popen(command.c_str(), "r");
    if (pipe == nullptr) {
        return run;
    }
    char buffer[4096];
    size_t got = 0;
    while ((got = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) {
        run.output.append(buffer, got);
    }
    int status = ::pclose(pipe);
    run.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return run;
}

TEST(HelloProgramTest, SaysWhatIsWrongOnItsOwn) {
    ProgramRun help = runWithoutAttachment("--help");
    EXPECT_EQ(help.code, 0);
    EXPECT_NE(help.output.find("Usage: "), std::string::npos) << help.output;

    ProgramRun bad = runWithoutAttachment("--threads nine");
    EXPECT_EQ(bad.code, 2);
    EXPECT_NE(bad.output.find("--threads takes a number"), std::string::npos) << bad.output;

    ProgramRun alone = runWithoutAttachment("");
    EXPECT_EQ(alone.code, 1);
    EXPECT_NE(alone.output.find("cannot attach to the router"), std::string::npos) << alone.output;
    EXPECT_NE(alone.output.find("CANOPY_APP_INIT"), std::string::npos) << alone.output;
}

}  // namespace
}  // namespace hello
