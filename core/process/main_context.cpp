#include "core/process/main_context.h"

#include "core/module/builtin_modules.h"
#include "core/process/process_manager.h"

namespace canopy {

MainContext::MainContext(boost::asio::io_context& io, RuntimeSettings settings)
    : io_(io), settings_(std::move(settings)), processes_(std::make_unique<ProcessManager>(*this)) {
    // Before discovery reports: the built-in types need no module file.
    for (auto& module : builtinModules()) {
        modules_.addBuiltin(std::move(module));
    }
}

MainContext::~MainContext() = default;

}  // namespace canopy
