#pragma once

// The prototype's own setup (process-model spec §4.2 step 2): what runs in
// the child between fork and READY, once per application generation. Every
// worker is forked from the result, so what is done here is done once.

#include <canopy/module.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/result.h"
#include "core/base/unique_fd.h"
#include "core/process/runtime_settings.h"

namespace canopy {

// What main hands a prototype in process.data; its prefork resolves the
// module so the child needs no registry.
struct PrototypeData {
    std::string app;
    uint64_t generation = 0;
    nlohmann::json conf;      // the application's object
    std::string module_file;  // the module's .canopy.so; empty: the built-in `external`
};
std::string serializePrototypeData(const PrototypeData& data);
Result<PrototypeData> parsePrototypeData(std::string_view text);

// The host's side of module hooks: log lines carry the application's name;
// during setup the last error a module logged is kept for the reason main
// reports. host_log may be called from any thread, hence the lock.
struct ModuleHost {
    std::string app;
    std::mutex lock;
    bool in_setup = false;   // under `lock`
    std::string last_error;  // under `lock`
};

// A prototype after setup: everything a worker needs. Lives in the
// prototype (and, copied by fork, in each worker) until the process exits;
// module hooks keep pointers into it, so it never moves.
struct PreparedApplication {
    std::string app;
    uint64_t generation = 0;
    std::string conf_json;  // the application's object, as module hooks get it

    const canopy_module_t* module = nullptr;  // null: an external program
    std::string executable;                   // external: the program, resolved
    std::vector<std::string> arguments;       // external: argv[1...]

    // The application's `stdout`/`stderr` files, made the worker's 1 and 2;
    // invalid means the daemon's log. Kept apart from the prototype's own 1
    // and 2 so that the prototype's log lines stay in the daemon's log.
    UniqueFd stdout_file;
    UniqueFd stderr_file;

    ModuleHost host;
    canopy_task_t task{};
    canopy_app_conf_t module_conf{};
};

// Sets the prototype up, in order: load the module (external: none), apply
// `environment`, run the module's setup(), open `stdout`/`stderr`, change to
// `working_directory`, switch to `user`/`group` (default: `daemon_user`,
// absent when canopyd is not root), and for `external` check `executable`.
// The error is the reason main reports ("user \"x\" not found").
Result<std::unique_ptr<PreparedApplication>> prepareApplication(
    const PrototypeData& data, const std::optional<Credentials>& daemon_user);

}  // namespace canopy
