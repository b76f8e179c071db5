#include "core/base/result.h"

#include <fmt/format.h>

#include <cstring>

namespace canopy {

Error systemError(std::string_view what, int error_number) {
    return Error{fmt::format("{}: {}", what, std::strerror(error_number)), error_number};
}

}  // namespace canopy
