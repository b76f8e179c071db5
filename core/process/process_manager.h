#pragma once

// Main's side of the process model: forks processes of any kind, drives them
// through CREATING -> CREATED -> READY, dispatches their messages, connects
// peers, reaps them, restarts them by policy and stops them all.
// Single-threaded: everything runs on main's event loop.

#include <sys/types.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/result.h"
#include "core/process/main_context.h"
#include "core/process/process.h"

namespace canopy {

class ProcessManager {
  public:
    explicit ProcessManager(MainContext& main);
    ~ProcessManager();
    ProcessManager(const ProcessManager&) = delete;
    ProcessManager& operator=(const ProcessManager&) = delete;

    // Starts the table's kinds in order (on-demand ones excepted), waiting
    // for each run-to-completion kind to exit before starting the next.
    // `booted` runs once every boot kind was started. The table is also where
    // main looks for the services kinds offer to other kinds
    // (ProcessKind::main_services).
    void boot(std::span<const ProcessKind* const> kinds, std::function<void()> booted = {});

    // Forks one process of `kind`. `data` is what this process is started
    // for (the kind's prefork sees it in process.data and may rewrite it).
    // The returned record lives until the process is reaped.
    Result<Process*> start(const ProcessKind& kind, std::string data = {});

    // Sends QUIT to every process, waits up to `deadline` for all to exit,
    // kills the rest, then calls `done`. No process is restarted after this.
    void stopAll(std::chrono::milliseconds deadline, std::function<void()> done);
    bool stopping() const { return stopping_; }

    // Sends a message to every process that is READY.
    void broadcast(MessageType type, std::string_view payload = {}, std::span<const int> fds = {});

    std::vector<Process*> processes() const;
    Process* find(pid_t pid) const;

    // Also reap children main did not fork: processes orphaned by their
    // parent (an application worker whose prototype died) and handed to main
    // because it is a child subreaper or pid 1. Off by default, because
    // waiting for any pid would steal the exit of a child someone else in
    // this process forked (tests do). On from the start when main is pid 1.
    void reapOrphans(bool enabled) { reaps_orphans_ = enabled; }
    bool reapsOrphans() const { return reaps_orphans_; }

    // Observers, for logs and tests.
    using StateListener = std::function<void(const Process&, ProcessState)>;
    void onStateChange(StateListener listener) { state_listeners_.push_back(std::move(listener)); }
    using ExitListener = std::function<void(const ProcessKind&, pid_t, int wait_status)>;
    void onExit(ExitListener listener) { exit_listeners_.push_back(std::move(listener)); }
    // An orphan main reaped (see reapOrphans).
    using OrphanListener = std::function<void(pid_t, int wait_status)>;
    void onOrphanExit(OrphanListener listener) { orphan_listeners_.push_back(std::move(listener)); }

    // Messages from a process that neither the generic rules nor its kind's
    // main handlers take are passed here (tests use it); otherwise logged.
    using MessageListener = std::function<void(Process&, Message&)>;
    void onUnhandledMessage(MessageListener listener) { unhandled_listener_ = std::move(listener); }

  private:
    struct Entry {
        std::unique_ptr<Process> process;
        std::unique_ptr<boost::asio::posix::stream_descriptor> readiness;
    };

    void watchSignals();
    void waitForChildSignal();
    void watchPort(Entry& entry);
    void drainPort(pid_t pid);
    void dispatch(Process& process, Message& message);
    void setState(Process& process, ProcessState state);
    void connectPeers(Process& process);
    void reapChildren();
    void handleExit(pid_t pid, int wait_status);
    void handleOrphanExit(pid_t pid, int wait_status);
    bool dispatchService(Process& process, Message& message);
    void scheduleRestart(const ProcessKind& kind, std::chrono::steady_clock::time_point started);
    void continueBoot();
    void finishStopIfDone();
    [[noreturn]] void runChild(Process& process, Port child_port);

    MainContext& main_;
    std::map<pid_t, Entry> entries_;
    uint64_t next_id_ = 1;
    std::unique_ptr<boost::asio::posix::stream_descriptor> signal_watch_;

    std::vector<const ProcessKind*> boot_kinds_;
    size_t boot_next_ = 0;
    pid_t boot_waiting_for_ = -1;
    std::function<void()> booted_;

    // Consecutive quick deaths per kind, for restart back-off.
    std::map<const ProcessKind*, unsigned> quick_deaths_;
    std::vector<std::unique_ptr<boost::asio::steady_timer>> restart_timers_;

    bool reaps_orphans_ = false;

    bool stopping_ = false;
    std::function<void()> stopped_;
    std::unique_ptr<boost::asio::steady_timer> stop_timer_;

    std::vector<StateListener> state_listeners_;
    std::vector<ExitListener> exit_listeners_;
    std::vector<OrphanListener> orphan_listeners_;
    MessageListener unhandled_listener_;
};

}  // namespace canopy
