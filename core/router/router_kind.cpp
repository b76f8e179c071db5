#include "core/router/router_kind.h"

#include <array>

#include "core/base/log.h"
#include "core/process/child_context.h"
#include "core/process/credentials.h"

namespace canopy {
namespace {

constexpr std::array<std::string_view, 1> kRouterPeers = {"controller"};

Result<ProcessState> routerSetup(ChildContext& child) {
    if (auto dropped = dropPrivileges(child.settings().unprivileged); !dropped) {
        return dropped.error();
    }
    return ProcessState::Ready;
}

int routerStart(ChildContext& child) {
    log::info("router started");
    return child.run();
}

}  // namespace

const ProcessKind kRouterKind = {
    .name = "router",
    .title = "canopy: router",
    .boot = BootRole::Service,
    .restart = RestartPolicy::Always,
    .setup = routerSetup,
    .start = routerStart,
    .peers = kRouterPeers,
};

}  // namespace canopy
