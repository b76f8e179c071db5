#pragma once

// Main's side of application processes: one prototype per application
// generation, started when the router first asks for a worker of it; the
// requests that wait for it; the workers it reported, so that a kill request
// can only hit a real worker. See core/application/README.md.

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/unique_fd.h"
#include "core/port/message.h"

namespace canopy {

class MainContext;
struct Process;

class ApplicationSupervisor {
  public:
    explicit ApplicationSupervisor(MainContext& main) : main_(main) {}
    ApplicationSupervisor(const ApplicationSupervisor&) = delete;
    ApplicationSupervisor& operator=(const ApplicationSupervisor&) = delete;

    // From the router. Every start request gets one Reply on its stream:
    // {"pid"} or {"error"}.
    void requestStart(Process& requester, Message& message);
    void killWorker(Process& requester, Message& message);
    void retire(Process& requester, Message& message);

    // From prototypes.
    void prototypeReady(Process& prototype);
    void prototypeReplied(Process& prototype, Message& message);
    void workerExited(Process& prototype, Message& message);
    void prototypeExited(Process& prototype, int wait_status);

    // The workers of `app` main knows of (reported started, not yet exited).
    std::vector<pid_t> workers(std::string_view app) const;
    // Called for every worker exit a prototype reports (for status and tests).
    using WorkerExitListener = std::function<void(const std::string& app, pid_t, int wait_status)>;
    void onWorkerExit(WorkerExitListener listener) { worker_exit_listener_ = std::move(listener); }

    // Any process main forked exited: if it asked for prototypes, they are
    // retired, since their workers served it alone.
    void processExited(pid_t pid);
    // An orphan main reaped: a worker whose prototype died.
    void orphanExited(pid_t pid, int wait_status);

  private:
    struct PendingStart {
        pid_t requester = -1;
        uint32_t stream = 0;
        std::string payload;
        std::vector<UniqueFd> fds;
    };
    struct Prototype {
        std::string app;
        uint64_t generation = 0;
        pid_t requester = -1;  // -1 once the requester exited
        pid_t pid = -1;        // -1 once the prototype exited
        bool ready = false;
        bool retired = false;
        std::vector<PendingStart> waiting;           // until the prototype is READY
        std::map<uint32_t, PendingStart> forwarded;  // at the prototype, by stream
        std::set<pid_t> workers;
    };

    Prototype* find(pid_t requester, std::string_view app, uint64_t generation);
    Prototype* findByPid(pid_t pid);
    void forward(Prototype& prototype, PendingStart start);
    void answer(const PendingStart& start, std::string_view payload);
    void fail(const std::string& app, const PendingStart& start, const std::string& reason);
    void failAll(Prototype& prototype, const std::string& reason);
    void sendRetire(const Prototype& prototype);

    MainContext& main_;
    std::list<Prototype> prototypes_;  // stable addresses
    // Workers whose prototype died, by pid; main reaps them as orphans.
    std::map<pid_t, std::string> orphaned_workers_;
    uint32_t next_stream_ = 1;
    WorkerExitListener worker_exit_listener_;
};

}  // namespace canopy
