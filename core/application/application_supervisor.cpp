#include "core/application/application_supervisor.h"

#include <fmt/format.h>
#include <sys/wait.h>

#include <algorithm>
#include <csignal>

#include "core/application/prototype_kind.h"
#include "core/application/start_request.h"
#include "core/application/worker_launch.h"
#include "core/base/log.h"
#include "core/process/main_context.h"
#include "core/process/process.h"
#include "core/process/process_manager.h"

namespace canopy {
namespace {

std::string describeEnd(int wait_status) {
    if (WIFSIGNALED(wait_status)) {
        return fmt::format("was killed by signal {}", WTERMSIG(wait_status));
    }
    return fmt::format("exited with code {}", WEXITSTATUS(wait_status));
}

std::vector<int> rawFds(const std::vector<UniqueFd>& fds) {
    std::vector<int> raw;
    for (const auto& fd : fds) {
        raw.push_back(fd.get());
    }
    return raw;
}

}  // namespace

ApplicationSupervisor::Prototype* ApplicationSupervisor::find(pid_t requester, std::string_view app,
                                                              uint64_t generation) {
    for (auto& prototype : prototypes_) {
        if (prototype.requester == requester && prototype.app == app &&
            prototype.generation == generation) {
            return &prototype;
        }
    }
    return nullptr;
}

ApplicationSupervisor::Prototype* ApplicationSupervisor::findByPid(pid_t pid) {
    for (auto& prototype : prototypes_) {
        if (prototype.pid == pid) {
            return &prototype;
        }
    }
    return nullptr;
}

void ApplicationSupervisor::answer(const PendingStart& start, std::string_view payload) {
    Process* requester = main_.processes().find(start.requester);
    if (requester == nullptr || !requester->port.valid()) {
        return;  // it exited; nobody waits for the answer
    }
    if (auto sent = requester->port.send(MessageType::Reply, payload, {}, start.stream); !sent) {
        log::warn("cannot answer the {} process {}: {}", requester->kind->name, start.requester,
                  sent.error().message);
    }
}

void ApplicationSupervisor::fail(const std::string& app, const PendingStart& start,
                                 const std::string& reason) {
    log::error("cannot start a process of application \"{}\": {}", app, reason);
    answer(start, startFailedReply(reason));
}

void ApplicationSupervisor::failAll(Prototype& prototype, const std::string& reason) {
    if (!prototype.waiting.empty() || !prototype.forwarded.empty()) {
        log::error("cannot start a process of application \"{}\": {}", prototype.app, reason);
    }
    std::string reply = startFailedReply(reason);
    for (const auto& start : prototype.waiting) {
        answer(start, reply);
    }
    for (const auto& [stream, start] : prototype.forwarded) {
        answer(start, reply);
    }
    prototype.waiting.clear();
    prototype.forwarded.clear();
}

void ApplicationSupervisor::requestStart(Process& requester, Message& message) {
    PendingStart start{requester.pid, message.stream, std::move(message.payload),
                       std::move(message.fds)};
    auto request = parseStartRequest(start.payload, start.fds.size());
    if (!request) {
        log::error("the {} process {} sent an application start request main refuses: {}",
                   requester.kind->name, requester.pid, request.error().message);
        answer(start, startFailedReply(request.error().message));
        return;
    }
    Prototype* prototype = find(requester.pid, request->app, request->generation);
    if (prototype != nullptr && prototype->retired) {
        fail(request->app, start,
             fmt::format("generation {} of the application was retired", request->generation));
        return;
    }
    if (prototype == nullptr) {
        auto started = main_.processes().start(kPrototypeKind, start.payload);
        if (!started) {
            fail(request->app, start, started.error().message);
            return;
        }
        prototype = &prototypes_.emplace_back();
        prototype->app = request->app;
        prototype->generation = request->generation;
        prototype->requester = requester.pid;
        prototype->pid = (*started)->pid;
        log::debug("application \"{}\" generation {}: prototype {} started", prototype->app,
                   prototype->generation, prototype->pid);
    }
    if (!prototype->ready) {
        prototype->waiting.push_back(std::move(start));
        return;
    }
    forward(*prototype, std::move(start));
}

void ApplicationSupervisor::forward(Prototype& prototype, PendingStart start) {
    Process* process = main_.processes().find(prototype.pid);
    if (process == nullptr || !process->port.valid()) {
        fail(prototype.app, start, "the application's prototype process exited");
        return;
    }
    uint32_t stream = next_stream_++;
    if (next_stream_ == 0) {
        next_stream_ = 1;
    }
    auto fds = rawFds(start.fds);
    if (auto sent = process->port.send(MessageType::AppProcessStart, start.payload, fds, stream);
        !sent) {
        fail(prototype.app, start,
             "cannot reach the application's prototype process: " + sent.error().message);
        return;
    }
    // The prototype has its own copies now; the payload is no longer needed.
    start.fds.clear();
    start.payload.clear();
    prototype.forwarded.emplace(stream, std::move(start));
}

void ApplicationSupervisor::prototypeReady(Process& process) {
    Prototype* prototype = findByPid(process.pid);
    if (prototype == nullptr) {
        return;
    }
    prototype->ready = true;
    auto waiting = std::move(prototype->waiting);
    prototype->waiting.clear();
    for (auto& start : waiting) {
        if (main_.processes().stopping()) {
            fail(prototype->app, start, "the daemon is stopping");
        } else {
            forward(*prototype, std::move(start));
        }
    }
}

void ApplicationSupervisor::prototypeReplied(Process& process, Message& message) {
    Prototype* prototype = findByPid(process.pid);
    if (prototype == nullptr || !prototype->forwarded.contains(message.stream)) {
        log::warn("the prototype process {} answered a request main did not send", process.pid);
        return;
    }
    auto found = prototype->forwarded.find(message.stream);
    PendingStart start = std::move(found->second);
    prototype->forwarded.erase(found);
    if (auto pid = startedPid(message.payload)) {
        prototype->workers.insert(*pid);
    } else {
        log::error("cannot start a process of application \"{}\": {}", prototype->app,
                   message.payload);
    }
    answer(start, message.payload);
}

void ApplicationSupervisor::workerExited(Process& process, Message& message) {
    auto report = parseWorkerExited(message.payload);
    Prototype* prototype = findByPid(process.pid);
    if (!report || prototype == nullptr) {
        log::warn("the prototype process {} sent a worker exit main cannot use: {}", process.pid,
                  report ? std::string("unknown prototype") : report.error().message);
        return;
    }
    if (prototype->workers.erase(report->pid) > 0 && worker_exit_listener_) {
        worker_exit_listener_(prototype->app, report->pid, report->status);
    }
}

std::vector<pid_t> ApplicationSupervisor::workers(std::string_view app) const {
    std::vector<pid_t> known;
    for (const auto& prototype : prototypes_) {
        if (prototype.app == app) {
            known.insert(known.end(), prototype.workers.begin(), prototype.workers.end());
        }
    }
    for (const auto& [pid, owner] : orphaned_workers_) {
        if (owner == app) {
            known.push_back(pid);
        }
    }
    return known;
}

void ApplicationSupervisor::prototypeExited(Process& process, int wait_status) {
    Prototype* prototype = findByPid(process.pid);
    if (prototype == nullptr) {
        return;
    }
    std::string reason;
    if (!process.setup_error.empty()) {
        reason = process.setup_error;
    } else if (main_.processes().stopping()) {
        reason = "the daemon is stopping";
    } else {
        reason = "the application's prototype process " + describeEnd(wait_status);
    }
    bool expected = prototype->retired || main_.processes().stopping();
    if (!expected && process.setup_error.empty()) {
        log::alert(
            "the prototype of application \"{}\" {}; its {} process(es) are left to the router",
            prototype->app, describeEnd(wait_status), prototype->workers.size());
    }
    failAll(*prototype, reason);
    // Main hears of these workers again only if it reaps orphans; else a
    // pid it kept could be reused by an unrelated process.
    if (main_.processes().reapsOrphans()) {
        for (pid_t worker : prototype->workers) {
            orphaned_workers_[worker] = prototype->app;
        }
    }
    prototype->workers.clear();
    prototype->pid = -1;
    prototype->ready = false;
    // A retired generation stays refused as long as its requester lives;
    // anything else may be started afresh.
    if (!prototype->retired || prototype->requester < 0) {
        prototypes_.remove_if([&](const Prototype& entry) { return &entry == prototype; });
    }
}

void ApplicationSupervisor::sendRetire(const Prototype& prototype) {
    Process* process = main_.processes().find(prototype.pid);
    if (process == nullptr || !process->port.valid()) {
        return;
    }
    std::string payload =
        nlohmann::json{{"app", prototype.app}, {"generation", prototype.generation}}.dump(
            -1, ' ', false, nlohmann::json::error_handler_t::replace);
    if (auto sent = process->port.send(MessageType::AppRetire, payload); !sent) {
        log::warn("cannot retire the prototype of application \"{}\": {}", prototype.app,
                  sent.error().message);
    }
}

void ApplicationSupervisor::retire(Process& requester, Message& message) {
    auto request = parseRetireRequest(message.payload);
    if (!request) {
        log::warn("the {} process {} sent a retire request main cannot use: {}",
                  requester.kind->name, requester.pid, request.error().message);
        return;
    }
    Prototype* prototype = find(requester.pid, request->app, request->generation);
    if (prototype == nullptr) {
        // Remembered, so that a late start request for it is refused too.
        prototype = &prototypes_.emplace_back();
        prototype->app = request->app;
        prototype->generation = request->generation;
        prototype->requester = requester.pid;
    }
    if (prototype->retired) {
        return;
    }
    prototype->retired = true;
    log::info("application \"{}\" generation {} retired", request->app, request->generation);
    std::string reason =
        fmt::format("generation {} of the application was retired", request->generation);
    std::string reply = startFailedReply(reason);
    for (const auto& start : prototype->waiting) {
        answer(start, reply);
    }
    prototype->waiting.clear();
    if (prototype->pid > 0) {
        sendRetire(*prototype);
    }
}

void ApplicationSupervisor::killWorker(Process& requester, Message& message) {
    auto request = parseWorkerKill(message.payload);
    if (!request) {
        log::warn("the {} process {} sent a kill request main cannot use: {}", requester.kind->name,
                  requester.pid, request.error().message);
        return;
    }
    bool known = std::any_of(prototypes_.begin(), prototypes_.end(), [&](const Prototype& entry) {
        return entry.app == request->app && entry.workers.contains(request->pid);
    });
    auto orphan = orphaned_workers_.find(request->pid);
    known = known || (orphan != orphaned_workers_.end() && orphan->second == request->app);
    if (!known) {
        log::warn("not killing process {}: it is not a live process of application \"{}\"",
                  request->pid, request->app);
        return;
    }
    log::notice("killing process {} of application \"{}\"", request->pid, request->app);
    if (::kill(request->pid, SIGKILL) != 0) {
        log::warn("cannot kill process {} of application \"{}\": {}", request->pid, request->app,
                  systemError("kill()").message);
    }
}

void ApplicationSupervisor::processExited(pid_t pid) {
    for (auto entry = prototypes_.begin(); entry != prototypes_.end();) {
        Prototype& prototype = *entry;
        if (prototype.requester != pid) {
            ++entry;
            continue;
        }
        prototype.requester = -1;
        prototype.waiting.clear();  // nobody to answer
        prototype.forwarded.clear();
        if (prototype.pid < 0) {
            entry = prototypes_.erase(entry);
            continue;
        }
        // While the daemon stops, every prototype has been told to quit.
        if (!prototype.retired && !main_.processes().stopping()) {
            prototype.retired = true;
            log::info(
                "application \"{}\" generation {} retired: the process that asked for it "
                "exited",
                prototype.app, prototype.generation);
            sendRetire(prototype);
        }
        ++entry;
    }
}

void ApplicationSupervisor::orphanExited(pid_t pid, int wait_status) {
    auto orphan = orphaned_workers_.find(pid);
    if (orphan == orphaned_workers_.end()) {
        return;
    }
    std::string app = std::move(orphan->second);
    orphaned_workers_.erase(orphan);
    // Its prototype would have said so; main says it in its place.
    logWorkerExit(pid, wait_status);
    if (worker_exit_listener_) {
        worker_exit_listener_(app, pid, wait_status);
    }
}

}  // namespace canopy
