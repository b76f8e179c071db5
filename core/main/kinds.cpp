#include "core/main/kinds.h"

#include <array>

#include "core/application/prototype_kind.h"
#include "core/controller/controller_kind.h"
#include "core/discovery/discovery_kind.h"
#include "core/router/router_kind.h"

namespace canopy {

std::span<const ProcessKind* const> coreKinds() {
    // Discovery runs to completion first, so the controller validates against
    // a complete module list; the router follows the controller, its peer.
    // Prototypes start only when the router asks for application processes.
    static const std::array<const ProcessKind*, 4> kinds = {&kDiscoveryKind, &kControllerKind,
                                                            &kRouterKind, &kPrototypeKind};
    return kinds;
}

}  // namespace canopy
