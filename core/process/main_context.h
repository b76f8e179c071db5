#pragma once

// Everything main's side of a kind may use: the event loop, the settings,
// the module registry, the process manager and per-kind state.

#include <any>
#include <boost/asio/io_context.hpp>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "core/module/module_registry.h"
#include "core/process/runtime_settings.h"

namespace canopy {

class ProcessManager;

class MainContext {
  public:
    MainContext(boost::asio::io_context& io, RuntimeSettings settings);
    ~MainContext();
    MainContext(const MainContext&) = delete;
    MainContext& operator=(const MainContext&) = delete;

    boost::asio::io_context& io() { return io_; }
    const RuntimeSettings& settings() const { return settings_; }
    ModuleRegistry& modules() { return modules_; }
    ProcessManager& processes() { return *processes_; }

    // State a kind acquires in its init hook and uses in prefork and
    // shutdown, keyed by kind name. Returns nullptr when absent or of
    // another type.
    template <typename T>
    T* kindState(std::string_view kind) {
        auto found = kind_state_.find(std::string(kind));
        if (found == kind_state_.end()) {
            return nullptr;
        }
        auto* state = std::any_cast<std::shared_ptr<T>>(&found->second);
        return state == nullptr ? nullptr : state->get();
    }
    template <typename T>
    T& setKindState(std::string_view kind, std::shared_ptr<T> state) {
        T& stored = *state;
        kind_state_[std::string(kind)] = std::move(state);
        return stored;
    }
    void clearKindState(std::string_view kind) { kind_state_.erase(std::string(kind)); }

  private:
    boost::asio::io_context& io_;
    RuntimeSettings settings_;
    ModuleRegistry modules_;
    std::unique_ptr<ProcessManager> processes_;
    std::map<std::string, std::any> kind_state_;
};

}  // namespace canopy
