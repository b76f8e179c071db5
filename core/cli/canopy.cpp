// canopy: the command-line client of canopyd's control API (docs/cli.md).

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>

#include "core/base/build_info.h"
#include "core/cli/command_line.h"
#include "core/cli/commands.h"
#include "core/cli/config_edit.h"
#include "core/cli/control_address.h"
#include "core/cli/control_client.h"
#include "core/cli/exit_codes.h"

int main(int argc, char** argv) {
    using namespace canopy::cli;
    ParsedCommandLine parsed = parseCommandLine(argc, argv, std::cout, std::cerr);
    if (!parsed.invocation) {
        return parsed.exit_code;
    }
    const Invocation& invocation = *parsed.invocation;

    ControlChoice choice = chooseControlAddress(invocation.control, std::getenv("CANOPY_CONTROL"),
                                                canopy::build::kDefaultControl);
    if (invocation.verbose) {
        std::cerr << "canopy: control socket " << choice.address << " (" << choice.source << ")\n";
    }
    // A year is "forever" and keeps now() + timeout from overflowing.
    constexpr double kLongestTimeoutSeconds = 365.0 * 24 * 3600;
    auto timeout = std::chrono::milliseconds(static_cast<int64_t>(
        std::min(invocation.timeout_seconds, kLongestTimeoutSeconds) * 1000.0 + 0.5));
    auto client = ControlClient::create(choice.address, timeout);
    if (!client) {
        std::cerr << "canopy: " << client.error().message << "\n";
        return kExitUsage;
    }
    client->setAlsoTried(choice.also_tried);

    CommandContext context{*client, std::cin, std::cout, std::cerr, invocation.verbose};
    switch (invocation.command) {
        case Command::ConfigGet:
            return configGet(context, invocation.path);
        case Command::ConfigPut:
            return configWrite(context, "PUT", invocation.path, invocation.file,
                               invocation.dry_run);
        case Command::ConfigPost:
            return configWrite(context, "POST", invocation.path, invocation.file,
                               invocation.dry_run);
        case Command::ConfigDelete:
            return configDelete(context, invocation.path, invocation.dry_run);
        case Command::ConfigEdit:
            return configEdit(context, invocation.path, editSettingsFromEnvironment());
        case Command::Status:
            return showStatus(context, invocation.json);
        case Command::Runtimes:
            return showRuntimes(context, invocation.json);
        case Command::Restart:
            return restartApplication(context, invocation.application);
    }
    return kExitUsage;
}
