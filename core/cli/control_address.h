#pragma once

// Which control socket `canopy` talks to: --control, else $CANOPY_CONTROL,
// else canopyd's compiled-in default, else ./run/control.sock (`make run`).

#include <optional>
#include <string>
#include <string_view>

namespace canopy::cli {

struct ControlChoice {
    std::string address;     // unix:PATH, unix:@NAME or ADDRESS:PORT
    std::string source;      // why this one, for -v: "--control", "$CANOPY_CONTROL", ...
    std::string also_tried;  // another socket looked for and not found, for errors, or ""
};

// `flag` is --control when given, `environment` the value of
// $CANOPY_CONTROL (nullptr or empty when unset), `compiled_default`
// canopyd's default. The fallback to ./run/control.sock applies only to the
// compiled default, and only when its socket file does not exist: an
// explicit choice is never second-guessed.
ControlChoice chooseControlAddress(const std::optional<std::string>& flag, const char* environment,
                                   std::string_view compiled_default);

}  // namespace canopy::cli
