#pragma once

// Logging for a language module (header only, C++17): lines go to the host's
// log through the task setup() or start() was given, and to stderr with the
// module's prefix before a task is known. Any thread: host_log is
// thread-safe and the task is held atomically.

#include <unistd.h>

#include <atomic>
#include <string>
#include <string_view>

#include "canopy/module.h"

namespace canopy {

class ModuleLog {
  public:
    // `prefix` names the module on stderr ("python: ..."); it must outlive
    // the log (a string literal).
    explicit ModuleLog(const char* prefix) : prefix_(prefix) {}

    // The task of setup(), then of start().
    void attach(canopy_task_t* task) { task_.store(task); }

    void line(canopy_log_level_t level, std::string_view message) const {
        canopy_task_t* task = task_.load();
        if (task != nullptr && task->host_log != nullptr) {
            task->host_log(task, level, std::string(message).c_str());
            return;
        }
        std::string text = std::string(prefix_) + ": ";
        text.append(message);
        text += '\n';
        (void)!::write(2, text.data(), text.size());
    }

    // A multi-line text one line at a time; empty lines are skipped.
    void lines(canopy_log_level_t level, std::string_view text) const {
        while (!text.empty()) {
            size_t end = text.find('\n');
            std::string_view one = text.substr(0, end);
            if (!one.empty()) {
                line(level, one);
            }
            if (end == std::string_view::npos) {
                break;
            }
            text.remove_prefix(end + 1);
        }
    }

  private:
    const char* prefix_;
    std::atomic<canopy_task_t*> task_{nullptr};
};

}  // namespace canopy
