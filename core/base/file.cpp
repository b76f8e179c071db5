#include "core/base/file.h"

#include <fmt/format.h>

#include <fstream>
#include <sstream>

namespace canopy {

Result<std::string> readFile(const std::filesystem::path& path) {
    std::ifstream stream(path, std::ios::binary);
    if (!stream) {
        return systemError(fmt::format("cannot read \"{}\"", path.string()));
    }
    std::ostringstream content;
    content << stream.rdbuf();
    if (stream.bad()) {
        return systemError(fmt::format("cannot read \"{}\"", path.string()));
    }
    return content.str();
}

}  // namespace canopy
