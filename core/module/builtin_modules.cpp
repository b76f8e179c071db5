#include "core/module/builtin_modules.h"

#include <canopy/module.h>

#include "core/base/build_info.h"

namespace canopy {
namespace {

// The keys an external application adds to the common ones; the other
// application keys (user, environment, ...) are the validator's. `threads`
// gives each process that many serving contexts (the program must start as
// many, e.g. the example's --threads).
constexpr std::string_view kExternalSchema = R"({
    "type": "object",
    "properties": {
        "executable": {"type": "string"},
        "arguments": {"type": "array", "items": {"type": "string"}},
        "threads": {"type": "integer", "minimum": 1, "maximum": 256}
    },
    "required": ["executable"],
    "additionalProperties": false
})";

}  // namespace

std::vector<ModuleInfo> builtinModules() {
    ModuleInfo external;
    external.type = std::string(kExternalType);
    external.version = build::kVersion;
    external.description = "external programs linked with libcanopy";
    external.abi_major = CANOPY_MODULE_ABI_MAJOR;
    external.abi_minor = CANOPY_MODULE_ABI_MINOR;
    external.schema = nlohmann::json::parse(kExternalSchema);
    external.builtin = true;
    return {external};
}

}  // namespace canopy
