#include "core/base/log.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <ctime>

namespace canopy::log {
namespace {

std::atomic<Level> current_level{Level::Info};

constexpr std::array<std::string_view, 6> kLevelNames = {"alert",  "error", "warn",
                                                         "notice", "info",  "debug"};

}  // namespace

std::string_view levelName(Level line_level) {
    return kLevelNames[static_cast<size_t>(line_level)];
}

std::optional<Level> parseLevel(std::string_view name) {
    for (size_t index = 0; index < kLevelNames.size(); ++index) {
        if (kLevelNames[index] == name) {
            return static_cast<Level>(index);
        }
    }
    return std::nullopt;
}

void setLevel(Level new_level) {
    current_level.store(new_level, std::memory_order_relaxed);
}

Level level() {
    return current_level.load(std::memory_order_relaxed);
}

std::string formatLine(Level line_level, std::string_view message) {
    std::time_t now = std::time(nullptr);
    std::tm local{};
    localtime_r(&now, &local);
    std::array<char, 32> stamp{};
    size_t stamp_length = std::strftime(stamp.data(), stamp.size(), "%Y/%m/%d %H:%M:%S", &local);
    // getpid() is not cached by glibc across fork, so children log their own pid.
    return fmt::format("{} [{}] {}#{} {}\n", std::string_view(stamp.data(), stamp_length),
                       levelName(line_level), ::getpid(), static_cast<long>(::syscall(SYS_gettid)),
                       message);
}

void write(Level line_level, std::string_view message) {
    if (!enabled(line_level)) {
        return;
    }
    std::string line = formatLine(line_level, message);
    const char* data = line.data();
    size_t remaining = line.size();
    int saved_errno = errno;
    while (remaining > 0) {
        ssize_t written = ::write(STDERR_FILENO, data, remaining);
        if (written < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;  // nowhere left to report a failing log
        }
        data += written;
        remaining -= static_cast<size_t>(written);
    }
    errno = saved_errno;
}

}  // namespace canopy::log
