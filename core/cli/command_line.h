#pragma once

// The command line of `canopy`: global options, then a command.
//
//   canopy [--control ADDRESS] [--timeout SECONDS] [-v] COMMAND ...
//   canopy config get [PATH] | put [--dry-run] PATH FILE|- | post ... |
//                 delete [--dry-run] PATH | edit [PATH]
//   canopy status [--json] | runtimes [--json] | restart APP

#include <optional>
#include <ostream>
#include <string>

namespace canopy::cli {

enum class Command {
    ConfigGet,
    ConfigPut,
    ConfigPost,
    ConfigDelete,
    ConfigEdit,
    Status,
    Runtimes,
    Restart
};

struct Invocation {
    Command command = Command::Status;
    std::optional<std::string> control;  // --control, when given
    double timeout_seconds = 60;
    bool verbose = false;
    std::string path;  // config commands, in the natural form of config_path.h
    std::string file;  // put/post: a file name or "-"
    std::string application;
    bool dry_run = false;
    bool json = false;
};

struct ParsedCommandLine {
    std::optional<Invocation> invocation;  // absent: exit with exit_code
    int exit_code = 0;
};

// Parses argv; --help and --version print on `out` (exit code 0), usage
// errors on `err` (kExitUsage).
ParsedCommandLine parseCommandLine(int argc, const char* const* argv, std::ostream& out,
                                   std::ostream& err);

}  // namespace canopy::cli
