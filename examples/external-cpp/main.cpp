// canopy-hello-cpp: the hello application as a program canopyd starts for
// an application of type "external". The handlers are in hello_app.cpp;
// this file parses the command line, attaches to the router, turns SIGTERM
// and SIGINT into a graceful quit, and serves.

#include <signal.h>

#include <atomic>
#include <cstdio>
#include <span>
#include <utility>

#include "hello_app.h"

namespace {

// What the signal handler may reach: an atomic pointer (lock-free, so
// async-signal-safe) to the app while it serves.
std::atomic<canopy_app_t*> serving_app{nullptr};

extern "C" void quitOnSignal(int /*signal*/) {
    if (canopy_app_t* app = serving_app.load()) {
        canopy_app_quit(app);  // async-signal-safe: contexts finish what they hold and return
    }
}

void handleQuitSignals() {
    struct sigaction action {};
    action.sa_handler = &quitOnSignal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &action, nullptr);
    sigaction(SIGINT, &action, nullptr);
}

}  // namespace

int main(int argc, char** argv) {
    const char* program = argc > 0 ? argv[0] : "canopy-hello-cpp";
    std::span<const char* const> arguments(argv + (argc > 0 ? 1 : 0),
                                           static_cast<size_t>(argc > 0 ? argc - 1 : 0));
    hello::CommandLine command_line = hello::parseCommandLine(arguments);
    if (!command_line.error.empty()) {
        std::fprintf(stderr, "%s: %s\n\n%s", program, command_line.error.c_str(),
                     hello::usage(program).c_str());
        return 2;
    }
    if (command_line.help) {
        std::fputs(hello::usage(program).c_str(), stdout);
        return 0;
    }

    // Reads CANOPY_APP_INIT, attaches to the router and tells it we are ready.
    canopy::App app;
    canopy::Status status = canopy::App::init(hello::makeAppOptions(), app);
    if (status != canopy::Status::Ok) {
        std::fprintf(stderr,
                     "%s: cannot attach to the router (%s). canopyd starts this program "
                     "with CANOPY_APP_INIT set; see examples/external-cpp/README.md\n",
                     program, canopy::describe(status));
        return 1;
    }
    serving_app.store(app.get());
    handleQuitSignals();

    status = hello::serve(app, command_line.threads);

    // Every serving thread has joined: a handler can only run on this thread
    // now, and not while it stores, so none sees the app being freed.
    serving_app.store(nullptr);
    return status == canopy::Status::Ok ? 0 : 1;
}
