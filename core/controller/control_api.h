#pragma once

// The control API's logic, apart from sockets and processes so it can be
// tested with a fake backend: paths and methods of /config, /status,
// /certificates and /control, validation before anything changes, one change
// at a time, ETag/If-Match and dry runs.

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "core/base/result.h"
#include "core/config/validator.h"
#include "core/controller/control_http.h"
#include "core/json/value.h"
#include "core/module/module_registry.h"

namespace canopy {

// An error with the short title Unit answers in "error" and a detail.
struct ApiError {
    std::string title;
    std::string detail;
};

// What the controller needs from the other processes. Callbacks run on the
// controller's event loop.
class ControlBackend {
  public:
    virtual ~ControlBackend() = default;
    // The router builds a new runtime configuration from the whole tree, or
    // says why it cannot.
    virtual void apply(const std::string& tree, std::function<void(Result<void>)> done) = 0;
    // Main writes the accepted tree to the state directory.
    virtual void store(const std::string& tree, std::function<void(Result<void>)> done) = 0;
    // Main validates and stores a PEM bundle; answers its info object.
    virtual void storeCertificate(const std::string& name, const std::string& pem,
                                  std::function<void(Result<json::Value>, ApiError)> done) = 0;
    virtual void deleteCertificate(const std::string& name,
                                   std::function<void(Result<void>, ApiError)> done) = 0;
    // The router's counters: {"connections", "requests", "applications"}.
    virtual void status(std::function<void(Result<json::Value>)> done) = 0;
    virtual void restartApplication(const std::string& name,
                                    std::function<void(Result<void>)> done) = 0;
};

class ControlApi {
  public:
    ControlApi(ControlBackend& backend, ModuleRegistry modules, json::Value configuration,
               json::Value certificates);

    // Answers one request, now or after the changes queued before it.
    void handle(ControlRequest request, ControlResponder respond);

    // Pushes the current tree to a (re)started router. Requests wait until it
    // was accepted; if the router refuses the stored tree, the controller
    // falls back to the empty configuration, as Unit does.
    void routerConnected();
    void routerLost();

    const json::Value& configuration() const { return configuration_; }
    std::string etag() const;

  private:
    struct Job {
        ControlRequest request;
        ControlResponder respond;
    };

    void runQueue();
    void finishJob(ControlResponder& respond, ControlResponse response);
    void handleNow(Job& job);

    void handleConfig(Job& job, const std::vector<std::string>& path, bool dry_run);
    void handleStatus(Job& job, const std::vector<std::string>& path);
    void handleCertificates(Job& job, const std::vector<std::string>& path);
    void handleControl(Job& job, const std::vector<std::string>& path);
    void handleRoot(Job& job);

    // Validates `tree`, then (unless dry) applies and stores it.
    void change(Job& job, json::Value tree, bool dry_run);
    Result<void> validate(const json::Value& tree, std::string* location) const;

    ControlBackend& backend_;
    ModuleRegistry modules_;
    json::Value configuration_;
    json::Value certificates_;  // name -> info
    std::deque<Job> queue_;
    bool busy_ = false;
    bool router_ready_ = false;
};

// What validation accepts in this build: the features it really serves. The
// controller uses it for API changes and main for the stored tree, so both
// always agree.
config::ValidationContext validationContextFor(const ModuleRegistry& modules,
                                               const json::Value& certificates);

// Helpers shared with tests.
ControlResponse successResponse(std::string_view message);
ControlResponse errorResponse(int status, std::string_view title, std::string_view detail = {});

}  // namespace canopy
