#pragma once

#include <filesystem>
#include <string>

#include "core/base/result.h"

namespace canopy {

// The whole content of a file; the error names the file and the reason.
Result<std::string> readFile(const std::filesystem::path& path);

}  // namespace canopy
