#include "core/base/check.h"

#include <cstdlib>

#include "core/base/log.h"

namespace canopy {

void checkFailed(const char* file, int line, const char* condition, std::string_view message) {
    log::alert("internal error at {}:{}: {} ({})", file, line, message, condition);
    std::abort();
}

}  // namespace canopy
