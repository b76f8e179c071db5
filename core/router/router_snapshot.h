#pragma once

// One configuration as the router's workers serve it: compiled once when the
// controller applies a tree, immutable afterwards, shared by all threads.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "core/base/result.h"
#include "core/json/value.h"
#include "core/router/access_log.h"
#include "core/routing/forwarded.h"
#include "core/routing/route_table.h"
#include "core/routing/template.h"

namespace canopy {

struct HttpSettings {
    std::chrono::seconds header_read_timeout{30};
    std::chrono::seconds body_read_timeout{30};
    std::chrono::seconds send_timeout{30};
    std::chrono::seconds idle_timeout{180};
    size_t large_header_buffer_size = 8192;
    size_t large_header_buffers = 4;
    uint64_t max_body_size = 8 * 1024 * 1024;
    bool discard_unsafe_fields = true;
    bool server_version = true;
};

struct ListenerSnapshot {
    std::string address;
    std::optional<routing::Template> pass;
    std::optional<routing::ForwardedRule> forwarded;  // trusted proxies' headers
    int backlog = -1;
};

struct RouterSnapshot {
    HttpSettings http;
    unsigned listen_threads = 1;
    std::map<std::string, ListenerSnapshot, std::less<>> listeners;
    routing::RouteTable routes;
    std::string server;                     // the Server header's value
    std::shared_ptr<AccessLog> access_log;  // null: no access log

    // Compiles a validated tree. Refuses what this router cannot serve, with
    // the reason the controller passes on to the user.
    static Result<std::shared_ptr<const RouterSnapshot>> build(const json::Value& tree);
};

}  // namespace canopy
