#pragma once

// The hello application: an "external" program that canopyd starts, built on
// the SDK's C++ layer (<canopy/app.hpp>) and nothing else of Canopy's. This
// header is what main.cpp and the unit tests share; see README.md for what
// each endpoint does.
//
//   GET /       "Hello, world!\n", text/plain
//   /echo       the request body streamed back, chunk by chunk, any size
//   /ws         a WebSocket echo (text, binary, close)
//   /headers    the request's fields and headers as text
//   otherwise   404

#include <canopy/app.hpp>
#include <span>
#include <string>
#include <string_view>

namespace hello {

// The body of `GET /`.
inline constexpr std::string_view kGreeting = "Hello, world!\n";

// The most serving threads `--threads` accepts. The router offers each
// process as many context slots as the application's `threads` setting;
// serve() uses what it gets.
inline constexpr unsigned kMaxThreads = 256;

// The handlers of the application, for canopy::App::init. Each call returns
// a fresh set with its own state (the WebSocket sessions open per context),
// so several apps in one process (tests) do not share anything. Handlers
// run on the thread serving the request's context. `attachment` is left
// null: the library reads CANOPY_APP_INIT.
canopy::AppOptions makeAppOptions();

// What the command line asked for.
struct CommandLine {
    unsigned threads = 1;
    bool help = false;
    std::string error;  // not empty: bad usage, say it and exit 2
};

// Parses the arguments after the program name: `--threads N` (or
// `--threads=N`, 1 to kMaxThreads) and `--help`.
CommandLine parseCommandLine(std::span<const char* const> arguments);

// The text `--help` prints.
std::string usage(std::string_view program);

// Serves requests on `threads` contexts — the app's main context on the
// calling thread and threads - 1 more, each on a thread of its own — until
// the app quits (the router's quit message, canopy_app_quit, a closed
// router socket), then joins them. When the router offers fewer context
// slots than asked, it serves on those it got and logs it. A context that
// fails makes the whole app quit, so that canopyd can start a fresh
// process. Returns Ok after a graceful quit, else the first failure.
canopy::Status serve(const canopy::App& app, unsigned threads);

}  // namespace hello
