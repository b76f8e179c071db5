// canopyd: the Canopy application server daemon.

#include <iostream>

#include "core/base/process_title.h"
#include "core/main/kinds.h"
#include "core/main/main_process.h"
#include "core/main/options.h"

int main(int argc, char** argv) {
    auto command_line = canopy::parseCommandLine(argc, argv, std::cout, std::cerr);
    if (!command_line.options) {
        return command_line.exit_code;
    }
    if (command_line.options->list_modules) {
        return canopy::listModules(*command_line.options, canopy::coreKinds(), std::cout);
    }
    canopy::initProcessTitle(argc, argv);
    return canopy::runDaemon(*command_line.options, canopy::coreKinds(), argc, argv);
}
