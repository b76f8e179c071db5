#include "core/cli/control_address.h"

#include <sys/stat.h>

namespace canopy::cli {
namespace {

constexpr std::string_view kDevelopmentSocket = "run/control.sock";

bool exists(const std::string& path) {
    struct stat info {};
    return ::stat(path.c_str(), &info) == 0;
}

}  // namespace

ControlChoice chooseControlAddress(const std::optional<std::string>& flag, const char* environment,
                                   std::string_view compiled_default) {
    if (flag) {
        return {*flag, "--control", ""};
    }
    if (environment != nullptr && *environment != '\0') {
        return {environment, "$CANOPY_CONTROL", ""};
    }
    std::string chosen(compiled_default);
    if (chosen.starts_with("unix:/") && !exists(chosen.substr(5)) &&
        exists(std::string(kDevelopmentSocket))) {
        // A relative path on purpose: a deep working directory would not fit
        // in sun_path, and the client accepts it.
        return {"unix:" + std::string(kDevelopmentSocket),
                "./" + std::string(kDevelopmentSocket) + ", since the default " + chosen +
                    " does not exist",
                ""};
    }
    return {chosen, "the default",
            chosen.starts_with("unix:/") ? "./" + std::string(kDevelopmentSocket) : ""};
}

}  // namespace canopy::cli
