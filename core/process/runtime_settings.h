#pragma once

// What main learned from its command line that processes of every kind need.

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>

namespace canopy {

struct Credentials {
    std::string user;
    std::string group;
    uid_t uid = 0;
    gid_t gid = 0;
};

struct RuntimeSettings {
    std::filesystem::path modules_dir;
    std::filesystem::path state_dir;
    std::filesystem::path tmp_dir;
    std::filesystem::path log_file;                // empty: log to the inherited stderr
    std::filesystem::path pid_file;                // empty: no pid file
    std::filesystem::path initial_config;          // --config: used while the state has none
    std::string control_address;                   // "unix:/path" or "address:port"
    unsigned control_mode = 0600;                  // permissions of a Unix control socket
    uid_t control_owner = static_cast<uid_t>(-1);  // -1: leave as created
    gid_t control_group = static_cast<gid_t>(-1);
    // Credentials that discovery, controller and router switch to; absent when
    // main is not root and so cannot switch.
    std::optional<Credentials> unprivileged;
};

}  // namespace canopy
