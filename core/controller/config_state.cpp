#include "core/controller/config_state.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <ctime>
#include <fstream>
#include <sstream>

#include "core/base/file.h"
#include "core/base/unique_fd.h"

namespace canopy {

std::filesystem::path storedConfigPath(const std::filesystem::path& state_dir) {
    return state_dir / "conf.json";
}

Result<std::optional<std::string>> readStoredConfig(const std::filesystem::path& state_dir) {
    auto path = storedConfigPath(state_dir);
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
        return std::optional<std::string>{};
    }
    auto content = readFile(path);
    if (!content) {
        return content.error();
    }
    return std::optional<std::string>(std::move(*content));
}

Result<void> writeStoredConfig(const std::filesystem::path& state_dir, std::string_view text) {
    auto path = storedConfigPath(state_dir);
    auto temporary = state_dir / "conf.json.tmp";
    UniqueFd file(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!file) {
        return systemError(fmt::format("cannot create \"{}\"", temporary.string()));
    }
    size_t written = 0;
    while (written < text.size()) {
        ssize_t chunk = ::write(file.get(), text.data() + written, text.size() - written);
        if (chunk < 0) {
            if (errno == EINTR) {
                continue;
            }
            Error error = systemError(fmt::format("cannot write \"{}\"", temporary.string()));
            ::unlink(temporary.c_str());
            return error;
        }
        written += static_cast<size_t>(chunk);
    }
    if (::fsync(file.get()) != 0) {
        Error error = systemError(fmt::format("cannot sync \"{}\"", temporary.string()));
        ::unlink(temporary.c_str());
        return error;
    }
    file.reset();
    if (::rename(temporary.c_str(), path.c_str()) != 0) {
        Error error = systemError(fmt::format("cannot replace \"{}\"", path.string()));
        ::unlink(temporary.c_str());
        return error;
    }
    UniqueFd directory(::open(state_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (directory) {
        ::fsync(directory.get());
    }
    return {};
}

Result<std::filesystem::path> setAsideStoredConfig(const std::filesystem::path& state_dir) {
    auto path = storedConfigPath(state_dir);
    std::time_t now = std::time(nullptr);
    std::tm local{};
    localtime_r(&now, &local);
    char stamp[32];
    std::strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &local);
    auto aside = state_dir / fmt::format("conf.json.invalid-{}", stamp);
    if (::rename(path.c_str(), aside.c_str()) != 0) {
        return systemError(fmt::format("cannot move \"{}\" aside", path.string()));
    }
    return aside;
}

}  // namespace canopy
