#pragma once

// Validation of a whole configuration tree (/config) before anything is
// applied: every key, type and range of Unit 1.35's tree, the cross
// references between its parts, application types against the modules that
// discovery found, and each application's language keys against its
// module's JSON Schema. The core knows no language: everything that is not a
// common application key is the module's business.

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config/validation_error.h"
#include "core/json/value.h"
#include "core/module/module_registry.h"

namespace canopy::config {

// Optional parts of the build. A key that needs a missing part is refused
// with "... built without ... support", as Unit does.
struct BuildFeatures {
    bool regex = true;       // "~" patterns (PCRE2)
    bool tls = false;        // listeners.*.tls
    bool isolation = true;   // applications.*.isolation (namespaces, rootfs, cgroups)
    bool openat2 = true;     // share "chroot", "follow_symlinks", "traverse_mounts"
    bool njs = false;        // settings.js_module, backtick template literals
    bool telemetry = false;  // settings.telemetry (OpenTelemetry)
    // Content encodings settings.http.compression may name.
    std::vector<std::string> compression_encodings = {"gzip", "deflate"};
};

// What validation consults besides the tree. Not owned; must outlive the call.
struct ValidationContext {
    // Modules discovery found; nullptr means none.
    const ModuleRegistry* modules = nullptr;
    // True when a certificate bundle of that name is stored; unset means none is.
    std::function<bool(std::string_view)> certificate_exists;
    // True when an njs module of that name is stored; unset means none is.
    std::function<bool(std::string_view)> js_module_exists;
    BuildFeatures features;
};

// Validates `root`, the complete new /config tree. Returns the first problem
// found (message for the "detail" of `400 Invalid configuration.`, path of
// the offending value). Not detected here, as in Unit (they fail when the
// router applies the tree): a listener without "pass", a route step without
// "action", bind failures. Pure function; safe from any thread.
ValidationResult validateConfiguration(const json::Value& root, const ValidationContext& context);

// The module serving an application `type` ("python", "python 3",
// "python3.11", "go" for "external"), or nullptr. Exposed for the router and
// /status, which must agree with validation.
const ModuleInfo* findModule(const ModuleRegistry* modules, std::string_view type);

}  // namespace canopy::config
