#pragma once

// The configuration as stored in the state directory: `conf.json`, compact,
// rewritten atomically after every accepted change. Only main touches the
// state directory; the controller asks it to.

#include <filesystem>
#include <optional>
#include <string>

#include "core/base/result.h"

namespace canopy {

// The configuration a fresh install answers with.
inline constexpr std::string_view kDefaultConfiguration =
    R"({"listeners":{},"routes":[],"applications":{}})";

std::filesystem::path storedConfigPath(const std::filesystem::path& state_dir);

// The stored configuration's text, std::nullopt when there is none.
Result<std::optional<std::string>> readStoredConfig(const std::filesystem::path& state_dir);

// Writes `text` to conf.json: temporary file, fsync, rename, fsync of the
// directory, so a crash leaves the old or the new file, never a mix.
Result<void> writeStoredConfig(const std::filesystem::path& state_dir, std::string_view text);

// Renames an unusable conf.json aside (conf.json.invalid-<time>) so the
// daemon can start with the empty configuration without losing it.
Result<std::filesystem::path> setAsideStoredConfig(const std::filesystem::path& state_dir);

}  // namespace canopy
