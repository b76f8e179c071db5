#include "core/main/options.h"

#include <canopy/module.h>
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <ostream>

#include "core/base/build_info.h"

namespace canopy {

std::string versionText() {
    // Features arrive with the subsystems that provide them (regex: PCRE2 in
    // routes); each is listed
    // with + or - so scripts can test for one.
    return fmt::format(
        "canopy version: {}\n"
        "compiler: {}\n"
        "build type: {}, C++20, prefix {}\n"
        "module ABI: {}.{}\n"
        "features: +tls +regex -isolation\n",
        build::kVersion, build::kCompiler, build::kBuildType, build::kInstallPrefix,
        CANOPY_MODULE_ABI_MAJOR, CANOPY_MODULE_ABI_MINOR);
}

CommandLine parseCommandLine(int argc, const char* const* argv, std::ostream& out,
                             std::ostream& err) {
    Options options;
    options.control = build::kDefaultControl;
    options.modules_dir = build::kDefaultModulesDir;
    options.state_dir = build::kDefaultStateDir;
    options.tmp_dir = build::kDefaultTmpDir;
    options.pid_file = build::kDefaultPidFile;
    options.log_file = build::kDefaultLogFile;
    options.user = build::kDefaultUser;

    CLI::App app{"canopyd: the Canopy application server", "canopyd"};
    app.get_formatter()->column_width(34);
    bool show_version = false;
    std::string deprecated_state;
    std::string deprecated_tmp;

    app.add_flag("--version", show_version, "print the version, compiler and features, and exit");
    app.add_flag("--no-daemon", options.no_daemon, "run in the foreground");
    app.add_option("--control", options.control, "control API socket: unix:PATH or ADDRESS:PORT")
        ->capture_default_str();
    app.add_option("--control-mode", options.control_mode,
                   "permissions of a Unix control socket (octal)")
        ->capture_default_str();
    app.add_option("--control-user", options.control_user, "owner of a Unix control socket");
    app.add_option("--control-group", options.control_group, "group of a Unix control socket");
    app.add_option("--user", options.user, "user of the non-privileged processes")
        ->capture_default_str();
    app.add_option("--group", options.group,
                   "group of the non-privileged processes (default: the user's group)");
    app.add_option("--pid", options.pid_file, "pid file")->capture_default_str();
    app.add_option("--log", options.log_file, "log file")->capture_default_str();
    app.add_option("--log-level", options.log_level,
                   "lowest level logged: alert, error, warn, notice, info, debug")
        ->capture_default_str()
        ->check(CLI::IsMember({"alert", "error", "warn", "notice", "info", "debug"}));
    app.add_option("--modulesdir", options.modules_dir, "directory of language modules")
        ->capture_default_str();
    app.add_option("--statedir", options.state_dir,
                   "directory of the state (configuration, certificates)")
        ->capture_default_str();
    app.add_option("--tmpdir", options.tmp_dir, "directory of temporary files")
        ->capture_default_str();
    app.add_option("--config", options.config_file,
                   "configuration applied at start while the state directory holds none");
    app.add_option("--state", deprecated_state, "deprecated alias of --statedir");
    app.add_option("--tmp", deprecated_tmp, "deprecated alias of --tmpdir");
    auto* list = app.add_flag("--modules", options.list_modules,
                              "list the language runtimes in the modules directory and exit");
    app.add_flag("--json", options.json, "with --modules: print JSON")->needs(list);

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
        out << app.help();
        return {std::nullopt, 0};
    } catch (const CLI::ParseError& failure) {
        err << "canopyd: " << failure.what() << "\n"
            << "Run canopyd --help for the options.\n";
        return {std::nullopt, 1};
    }
    if (show_version) {
        err << versionText();  // unitd prints its version to stderr too
        return {std::nullopt, 0};
    }
    if (!deprecated_state.empty()) {
        err << "canopyd: --state is deprecated, use --statedir\n";
        options.state_dir = deprecated_state;
    }
    if (!deprecated_tmp.empty()) {
        err << "canopyd: --tmp is deprecated, use --tmpdir\n";
        options.tmp_dir = deprecated_tmp;
    }
    return {std::move(options), 0};
}

}  // namespace canopy
