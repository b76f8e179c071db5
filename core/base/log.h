#pragma once

// The server log: one line per event, in the format Unit's tools parse:
//   YYYY/MM/DD HH:MM:SS [level] PID#TID message
// Every process writes to its standard error, which main points at the log
// file; each line is one write(2), so lines of concurrent processes never mix.
// Thread-safe.

#include <fmt/format.h>

#include <optional>
#include <string_view>

namespace canopy::log {

enum class Level { Alert = 0, Error, Warn, Notice, Info, Debug };

std::string_view levelName(Level level);
std::optional<Level> parseLevel(std::string_view name);

// Lines above this level are dropped. Default: Info.
void setLevel(Level level);
Level level();
inline bool enabled(Level line_level) {
    return line_level <= level();
}

// Formats one line without writing it; exposed for tests.
std::string formatLine(Level level, std::string_view message);

void write(Level level, std::string_view message);

template <typename... Args>
void alert(fmt::format_string<Args...> format, Args&&... args) {
    write(Level::Alert, fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
void error(fmt::format_string<Args...> format, Args&&... args) {
    write(Level::Error, fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
void warn(fmt::format_string<Args...> format, Args&&... args) {
    write(Level::Warn, fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
void notice(fmt::format_string<Args...> format, Args&&... args) {
    write(Level::Notice, fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
void info(fmt::format_string<Args...> format, Args&&... args) {
    if (enabled(Level::Info)) {
        write(Level::Info, fmt::format(format, std::forward<Args>(args)...));
    }
}
template <typename... Args>
void debug(fmt::format_string<Args...> format, Args&&... args) {
    if (enabled(Level::Debug)) {
        write(Level::Debug, fmt::format(format, std::forward<Args>(args)...));
    }
}

}  // namespace canopy::log
