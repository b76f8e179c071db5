#pragma once

// canopyd's command line, compatible with unitd's options.

#include <iosfwd>
#include <optional>
#include <string>

namespace canopy {

struct Options {
    bool no_daemon = false;
    std::string control;
    std::string control_mode = "0600";
    std::string control_user;
    std::string control_group;
    std::string modules_dir;
    std::string state_dir;
    std::string tmp_dir;
    std::string pid_file;
    std::string log_file;
    std::string log_level = "info";
    std::string config_file;
    std::string user;
    std::string group;
    bool list_modules = false;  // --modules: print the runtimes and exit
    bool json = false;          // --json with --modules
};

struct CommandLine {
    std::optional<Options> options;  // absent: exit with exit_code
    int exit_code = 0;
};

// Parses argv. --help and --version print to `out`/`err` and give an exit
// code; a bad option prints one line to `err` and gives exit code 1.
CommandLine parseCommandLine(int argc, const char* const* argv, std::ostream& out,
                             std::ostream& err);

// The text of --version: version, compiler, build type, features.
std::string versionText();

}  // namespace canopy
