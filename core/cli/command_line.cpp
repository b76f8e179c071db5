#include "core/cli/command_line.h"

#include <fmt/format.h>

#include <CLI/CLI.hpp>

#include "core/base/build_info.h"
#include "core/cli/exit_codes.h"

namespace canopy::cli {
namespace {

constexpr const char* kDescription =
    "canopy: the command-line client of canopyd's control API.\n"
    "The control socket is --control, else $CANOPY_CONTROL, else the default\n"
    "(and ./run/control.sock when the default does not exist).\n"
    "Exit codes: 0 success, 1 the API answered an error, 2 usage error,\n"
    "3 no canopyd answered.";

constexpr const char* kPathHelp =
    "path under /config, as in the tree: listeners/*:8080, routes/0/action; "
    "a '/' inside a key as \\/ or in double quotes";

}  // namespace

ParsedCommandLine parseCommandLine(int argc, const char* const* argv, std::ostream& out,
                                   std::ostream& err) {
    Invocation invocation;
    CLI::App app{kDescription, "canopy"};
    app.get_formatter()->column_width(30);
    app.require_subcommand(1);
    app.fallthrough();

    bool show_version = false;
    std::string control;
    app.add_flag("--version", show_version, "print the version and the default control socket");
    auto* control_option = app.add_option(
        "--control", control,
        fmt::format("control socket: unix:PATH, unix:@NAME or ADDRESS:PORT (default {})",
                    build::kDefaultControl));
    app.add_option("--timeout", invocation.timeout_seconds,
                   "seconds to wait for an answer (default 60)")
        ->check(CLI::PositiveNumber);
    app.add_flag("-v,--verbose", invocation.verbose,
                 "say which socket is used, and each request and its status, on stderr");

    auto* config = app.add_subcommand("config", "read and change the configuration");
    config->require_subcommand(1);
    config->fallthrough();

    auto* get = config->add_subcommand("get", "print the configuration, or the value at PATH");
    get->add_option("PATH", invocation.path, kPathHelp);

    auto addWrite = [&](const char* name, const char* description) {
        auto* command = config->add_subcommand(name, description);
        command->add_option("PATH", invocation.path, kPathHelp)->required();
        command->add_option("FILE", invocation.file, "JSON file to send, or - for stdin")
            ->required();
        command->add_flag("--dry-run", invocation.dry_run,
                          "validate only (?dry_run=1): change nothing");
        return command;
    };
    auto* put = addWrite("put", "create or replace the value at PATH (/ for the whole tree)");
    auto* post = addWrite("post", "append to the array at PATH");
    auto* remove = config->add_subcommand("delete", "remove the value at PATH");
    remove->add_option("PATH", invocation.path, kPathHelp)->required();
    remove->add_flag("--dry-run", invocation.dry_run, "validate only (?dry_run=1): change nothing");
    auto* edit = config->add_subcommand(
        "edit", "edit the configuration, or the value at PATH, in $VISUAL or $EDITOR");
    edit->add_option("PATH", invocation.path, kPathHelp);

    auto* status = app.add_subcommand("status", "connections, requests and applications");
    status->add_flag("--json", invocation.json, "print the API's JSON");
    auto* runtimes = app.add_subcommand("runtimes", "the language runtimes canopyd found");
    runtimes->add_flag("--json", invocation.json, "print the API's JSON");
    auto* restart = app.add_subcommand("restart", "restart an application's processes");
    restart->add_option("APP", invocation.application, "the application's name")->required();

    try {
        // --version answers alone, even without a command.
        for (int i = 1; i < argc; ++i) {
            if (std::string_view(argv[i]) == "--version") {
                out << fmt::format("canopy version: {}\ndefault control socket: {}\n",
                                   build::kVersion, build::kDefaultControl);
                return {std::nullopt, kExitSuccess};
            }
            if (std::string_view(argv[i]) == "--") {
                break;
            }
        }
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
        out << app.help();
        return {std::nullopt, kExitSuccess};
    } catch (const CLI::ParseError& failure) {
        err << "canopy: " << failure.what() << "\n"
            << "Run canopy --help, or canopy COMMAND --help, for the usage.\n";
        return {std::nullopt, kExitUsage};
    }

    if (control_option->count() > 0) {
        invocation.control = control;
    }
    if (get->parsed()) {
        invocation.command = Command::ConfigGet;
    } else if (put->parsed()) {
        invocation.command = Command::ConfigPut;
    } else if (post->parsed()) {
        invocation.command = Command::ConfigPost;
    } else if (remove->parsed()) {
        invocation.command = Command::ConfigDelete;
    } else if (edit->parsed()) {
        invocation.command = Command::ConfigEdit;
    } else if (status->parsed()) {
        invocation.command = Command::Status;
    } else if (runtimes->parsed()) {
        invocation.command = Command::Runtimes;
    } else if (restart->parsed()) {
        invocation.command = Command::Restart;
    }
    return {std::move(invocation), kExitSuccess};
}

}  // namespace canopy::cli
