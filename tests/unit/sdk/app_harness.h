#pragma once

// Runs an app built on <canopy/app.h> against the fake router: the app's
// contexts serve on their own threads, the test drives the router.

#include <gtest/gtest.h>

#include <cstdio>
#include <functional>
#include <thread>
#include <vector>

#include "canopy/app.h"
#include "canopy/testing/fake_router.hpp"

namespace canopy::sdk_test {

// What the C callbacks reach through the app's user data.
struct Handlers {
    std::function<void(canopy_request_t*)> request;
    std::function<void(const canopy_websocket_frame_t*)> frame;
    std::function<void(canopy_request_t*)> close;
};

inline Handlers& handlersOf(canopy_request_t* request) {
    return *static_cast<Handlers*>(
        canopy_app_user_data(canopy_context_app(canopy_request_context(request))));
}

inline void onRequest(canopy_request_t* request) {
    handlersOf(request).request(request);
}

inline void onFrame(const canopy_websocket_frame_t* frame) {
    handlersOf(frame->request).frame(frame);
}

inline void onClose(canopy_request_t* request) {
    if (handlersOf(request).close) {
        handlersOf(request).close(request);
    }
    canopy_request_done(request, CANOPY_ERROR);
}

class AppHarness {
  public:
    explicit AppHarness(testing::FakeRouterOptions options = {}) : router(options) {}
    ~AppHarness() { stop(); }

    // Initialises the app and runs `contexts` contexts on their threads.
    void start(int contexts = 1) {
        canopy_app_init_t init{};
        init.size = sizeof init;
        init.abi_major = CANOPY_APP_ABI_MAJOR;
        init.abi_minor = CANOPY_APP_ABI_MINOR;
        init.request_handler = &onRequest;
        init.websocket_handler = handlers.frame ? &onFrame : nullptr;
        init.close_handler = &onClose;
        init.user_data = &handlers;
        std::string attachment = router.attachment();
        init.attachment = attachment.c_str();
        ASSERT_EQ(canopy_app_init(&init, &app), CANOPY_OK);
        run_results.assign(static_cast<size_t>(contexts), -1);
        for (int index = 0; index < contexts; ++index) {
            canopy_context_t* context = canopy_app_main_context(app);
            if (index > 0) {
                ASSERT_EQ(canopy_context_create(app, &context), CANOPY_OK);
                extra.push_back(context);
            }
            threads.emplace_back([this, context, index] {
                run_results[static_cast<size_t>(index)] = canopy_run(context);
            });
        }
    }

    // Quits gracefully and joins every context's thread.
    void stop() {
        if (app == nullptr) {
            return;
        }
        canopy_app_quit(app);
        for (auto& thread : threads) {
            thread.join();
        }
        threads.clear();
        for (canopy_context_t* context : extra) {
            canopy_context_free(context);
        }
        extra.clear();
        canopy_app_free(app);
        app = nullptr;
    }

    testing::FakeRouter router;
    Handlers handlers;
    canopy_app_t* app = nullptr;
    std::vector<std::thread> threads;
    std::vector<canopy_context_t*> extra;
    std::vector<int> run_results;
};

inline std::string text(canopy_str_t value) {
    return std::string(value.data, value.length);
}

// Resident set size of this process in KiB.
inline long residentKib() {
    FILE* file = std::fopen("/proc/self/status", "r");
    if (file == nullptr) {
        return -1;
    }
    char line[256];
    long kib = -1;
    while (std::fgets(line, sizeof line, file) != nullptr) {
        if (std::sscanf(line, "VmRSS: %ld kB", &kib) == 1) {
            break;
        }
    }
    std::fclose(file);
    return kib;
}

}  // namespace canopy::sdk_test
