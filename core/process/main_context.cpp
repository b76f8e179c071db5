#include "core/process/main_context.h"

#include "core/process/process_manager.h"

namespace canopy {

MainContext::MainContext(boost::asio::io_context& io, RuntimeSettings settings)
    : io_(io),
      settings_(std::move(settings)),
      processes_(std::make_unique<ProcessManager>(*this)) {}

MainContext::~MainContext() = default;

}  // namespace canopy
