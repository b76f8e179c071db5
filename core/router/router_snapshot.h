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
#include <vector>

#include "core/base/result.h"
#include "core/http/mime_types.h"
#include "core/json/value.h"
#include "core/router/access_log.h"
#include "core/router/upstreams.h"
#include "core/routing/forwarded.h"
#include "core/routing/route_table.h"
#include "core/routing/template.h"
#include "core/tls/server_context.h"

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
    // A TLS listener: its `tls` object, and the contexts built from it once
    // the router has the certificates (before the snapshot is published).
    std::optional<tls::ServerSettings> tls_settings;
    std::shared_ptr<const tls::ServerContext> tls;
};

// One application as the router runs it. Two specs with the same `conf`
// text are the same application: a reconfiguration keeps its processes.
struct ApplicationSpec {
    std::string name;
    std::string conf;  // the application's object as JSON text
    uint32_t max_processes = 1;
    uint32_t spare_processes = 1;
    std::chrono::seconds idle_timeout{15};
    std::chrono::milliseconds request_timeout{0};  // limits.timeout; 0: none
    uint64_t request_limit = 0;                    // limits.requests; 0: none
    uint64_t shm_limit = 0;                        // limits.shm; 0: the default
    uint32_t threads = 1;                          // serving threads per process
    // The names of `targets`, in configuration order; a pass that names no
    // target goes to the first (config-schema §3.4).
    std::vector<std::string> targets;
};

struct RouterSnapshot {
    HttpSettings http;
    unsigned listen_threads = 1;
    std::map<std::string, ListenerSnapshot, std::less<>> listeners;
    routing::RouteTable routes;
    std::string server;                     // the Server header's value
    http::MimeTypes mime_types;             // built-in + settings.http.static.mime_types
    std::shared_ptr<AccessLog> access_log;  // null: no access log
    std::map<std::string, std::shared_ptr<const ApplicationSpec>, std::less<>> applications;
    // `upstreams`: their balancing state is the one part that changes after
    // publication (upstreams.h), behind each group's lock.
    std::map<std::string, std::shared_ptr<UpstreamGroup>, std::less<>> upstreams;

    // Compiles a validated tree. Refuses what this router cannot serve, with
    // the reason the controller passes on to the user. TLS listeners get
    // their contexts later (attachTls): the bundles come from main.
    static Result<std::shared_ptr<RouterSnapshot>> build(const json::Value& tree);

    // The certificate names the TLS listeners use, each once.
    std::vector<std::string> certificateNames() const;
    // Builds every TLS listener's contexts from `bundles` (name -> PEM).
    // Refuses a bundle or a conf_command OpenSSL does not take, saying why.
    Result<void> attachTls(const std::map<std::string, std::string, std::less<>>& bundles);
};

}  // namespace canopy
