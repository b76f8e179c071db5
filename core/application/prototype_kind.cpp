#include "core/application/prototype_kind.h"

#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <boost/asio/steady_timer.hpp>
#include <csignal>
#include <memory>
#include <set>

#include "core/application/application_supervisor.h"
#include "core/application/prototype_setup.h"
#include "core/application/start_request.h"
#include "core/application/worker_launch.h"
#include "core/base/log.h"
#include "core/module/builtin_modules.h"
#include "core/process/child_context.h"
#include "core/process/main_context.h"
#include "core/process/process.h"
#include "core/process/process_manager.h"

namespace canopy {
namespace {

constexpr std::string_view kName = "prototype";
// On a daemon stop, workers get SIGTERM and this long before SIGKILL; main
// waits longer (its stop deadline) for the prototype itself.
constexpr auto kWorkerStopDeadline = std::chrono::seconds(3);

// ---- main's side ----

ApplicationSupervisor* supervisor(MainContext& main) {
    return main.kindState<ApplicationSupervisor>(kName);
}

Result<void> prototypeInit(MainContext& main) {
    main.setKindState(kName, std::make_shared<ApplicationSupervisor>(main));
    // Looked up on each call: the supervisor goes away at shutdown, the
    // listeners stay with the process manager.
    main.processes().onExit([&main](const ProcessKind&, pid_t pid, int) {
        if (auto* applications = supervisor(main)) {
            applications->processExited(pid);
        }
    });
    main.processes().onOrphanExit([&main](pid_t pid, int wait_status) {
        if (auto* applications = supervisor(main)) {
            applications->orphanExited(pid, wait_status);
        }
    });
    return {};
}

void prototypeShutdown(MainContext& main) {
    main.clearKindState(kName);
}

// process.data comes in as the router's start request and leaves as what the
// child needs: the module file resolved from `type`, so the prototype needs
// no registry.
Result<void> prototypePrefork(MainContext& main, Process& process) {
    // The descriptors stay with main until the prototype is READY.
    auto request = parseStartRequest(process.data, std::nullopt);
    if (!request) {
        return request.error();
    }
    const std::string type = request->conf.at("type").get<std::string>();
    const ModuleInfo* module = main.modules().find(type);
    if (module == nullptr) {
        return Error{fmt::format("no module is installed for the application type \"{}\"", type)};
    }
    PrototypeData data;
    data.app = request->app;
    data.generation = request->generation;
    data.conf = std::move(request->conf);
    if (!module->builtin) {
        data.module_file = module->file;
    } else if (module->type != kExternalType) {
        return Error{fmt::format("the built-in type \"{}\" cannot run applications", module->type)};
    }
    process.data = serializePrototypeData(data);
    process.title = fmt::format("canopy: \"{}\" prototype", data.app);
    return {};
}

void prototypeReady(MainContext& main, Process& process) {
    if (auto* applications = supervisor(main)) {
        applications->prototypeReady(process);
    }
}

void prototypeExited(MainContext& main, Process& process, int wait_status) {
    if (auto* applications = supervisor(main)) {
        applications->prototypeExited(process, wait_status);
    }
}

void relayReply(MainContext& main, Process& sender, Message& message) {
    if (auto* applications = supervisor(main)) {
        applications->prototypeReplied(sender, message);
    }
}

void forgetWorker(MainContext& main, Process& sender, Message& message) {
    if (auto* applications = supervisor(main)) {
        applications->workerExited(sender, message);
    }
}

void refuseUnavailable(Process& sender, Message& message) {
    (void)sender.port.send(MessageType::Reply,
                           startFailedReply("application processes are not available"), {},
                           message.stream);
}

void startRequested(MainContext& main, Process& sender, Message& message) {
    if (auto* applications = supervisor(main)) {
        applications->requestStart(sender, message);
    } else {
        refuseUnavailable(sender, message);
    }
}

void killRequested(MainContext& main, Process& sender, Message& message) {
    if (auto* applications = supervisor(main)) {
        applications->killWorker(sender, message);
    }
}

void retireRequested(MainContext& main, Process& sender, Message& message) {
    if (auto* applications = supervisor(main)) {
        applications->retire(sender, message);
    }
}

constexpr std::array<MainMessageHandler, 2> kMainHandlers = {{
    {MessageType::Reply, relayReply},
    {MessageType::AppProcessExited, forgetWorker},
}};

constexpr std::array<MainServiceHandler, 3> kMainServices = {{
    {MessageType::AppProcessStart, "router", startRequested},
    {MessageType::AppWorkerKill, "router", killRequested},
    {MessageType::AppRetire, "router", retireRequested},
}};

// ---- the prototype's side ----

struct PrototypeState {
    std::unique_ptr<PreparedApplication> application;
    std::set<pid_t> workers;
    bool retired = false;   // no more workers; exit when the last one did
    bool stopping = false;  // the daemon stops: workers were told to
    std::unique_ptr<boost::asio::steady_timer> kill_timer;
};

PrototypeState& state() {
    static PrototypeState prototype;
    return prototype;
}

void exitWhenDone(ChildContext& child) {
    if ((state().retired || state().stopping) && state().workers.empty()) {
        child.stop(0);
    }
}

Result<ProcessState> prototypeSetup(ChildContext& child) {
    auto data = parsePrototypeData(child.data());
    if (!data) {
        return data.error();
    }
    auto application = prepareApplication(*data, child.settings().unprivileged);
    if (!application) {
        return application.error();
    }
    state().application = std::move(*application);
    log::info("\"{}\" prototype started", state().application->app);
    return ProcessState::Ready;
}

void startWorker(ChildContext& child, std::string_view from, Message& message) {
    if (from != "main") {
        log::warn("\"{}\" prototype: a start request from {} ignored", state().application->app,
                  from);
        return;
    }
    PreparedApplication& application = *state().application;
    auto request = parseStartRequest(message.payload, message.fds.size());
    if (!request) {
        child.reply(from, message.stream, startFailedReply(request.error().message));
        return;
    }
    if (state().stopping) {
        child.reply(from, message.stream, startFailedReply("the daemon is stopping"));
        return;
    }
    if (state().retired) {
        child.reply(from, message.stream,
                    startFailedReply(fmt::format("generation {} of the application was retired",
                                                 application.generation)));
        return;
    }
    auto launched = launchWorker(application, *request, message.fds);
    if (!launched) {
        log::alert("\"{}\" prototype: {}", application.app, launched.error().message);
        child.reply(from, message.stream, startFailedReply(launched.error().message));
        return;
    }
    state().workers.insert(*launched);
    log::debug("\"{}\" prototype: application process {} forked", application.app, *launched);
    child.reply(from, message.stream, startedReply(*launched));
}

void retireGeneration(ChildContext& child, std::string_view from, Message&) {
    if (from != "main" || state().retired) {
        return;
    }
    state().retired = true;
    log::info("\"{}\" prototype retired; it exits after its {} application process(es)",
              state().application->app, state().workers.size());
    exitWhenDone(child);
}

// After SIGUSR1 main sent the reopened log (which replaced 2) and then this:
// the prototype's 1 follows 2 again, as set up.
void followReopenedLog(ChildContext&, std::string_view from, Message&) {
    if (from == "main" && !state().application->stdout_file) {
        ::dup2(STDERR_FILENO, STDOUT_FILENO);
    }
}

void reapWorkers(ChildContext& child) {
    int wait_status = 0;
    pid_t pid = 0;
    while ((pid = ::waitpid(-1, &wait_status, WNOHANG)) > 0) {
        // A helper a module's setup() forked is reaped too, but it is no
        // worker: neither logged nor reported.
        if (state().workers.erase(pid) == 0) {
            continue;
        }
        logWorkerExit(pid, wait_status);
        if (auto sent = child.mainPort().send(MessageType::AppProcessExited,
                                              workerExitedPayload(pid, wait_status));
            !sent) {
            log::warn("\"{}\" prototype: cannot report the exit of process {}: {}",
                      state().application->app, pid, sent.error().message);
        }
    }
    exitWhenDone(child);
}

// The daemon stops (QUIT from main, or SIGTERM/SIGINT/SIGQUIT): workers get
// SIGTERM, and SIGKILL if still there at the deadline.
void stopWorkers(ChildContext& child) {
    if (state().stopping) {
        return;
    }
    state().stopping = true;
    if (state().workers.empty()) {
        child.stop(0);
        return;
    }
    for (pid_t worker : state().workers) {
        ::kill(worker, SIGTERM);
    }
    state().kill_timer =
        std::make_unique<boost::asio::steady_timer>(child.io(), kWorkerStopDeadline);
    state().kill_timer->async_wait([](const boost::system::error_code& ec) {
        if (ec) {
            return;
        }
        for (pid_t worker : state().workers) {
            log::warn(
                "\"{}\" prototype: application process {} did not exit within {} s; "
                "killing it",
                state().application->app, worker, kWorkerStopDeadline.count());
            ::kill(worker, SIGKILL);
        }
    });
}

void stopOnSignal(ChildContext& child) {
    stopWorkers(child);
}

int prototypeStart(ChildContext& child) {
    child.setQuitHandler([&child] { stopWorkers(child); });
    int code = child.run();
    state().kill_timer.reset();  // before the event loop it belongs to
    return code;
}

constexpr std::array<ChildMessageHandler, 3> kPrototypeHandlers = {{
    {MessageType::AppProcessStart, startWorker},
    {MessageType::AppRetire, retireGeneration},
    {MessageType::ReopenFiles, followReopenedLog},
}};

constexpr std::array<SignalAction, 3> kPrototypeSignals = {{
    {SIGCHLD, reapWorkers},
    {SIGTERM, stopOnSignal},
    {SIGINT, stopOnSignal},
}};

}  // namespace

const ProcessKind kPrototypeKind = {
    .name = kName,
    .title = "canopy: prototype",
    .boot = BootRole::OnDemand,
    .restart = RestartPolicy::Never,
    .init = prototypeInit,
    .prefork = prototypePrefork,
    .setup = prototypeSetup,
    .start = prototypeStart,
    .shutdown = prototypeShutdown,
    .ready = prototypeReady,
    .exited = prototypeExited,
    .main_handlers = kMainHandlers,
    .main_services = kMainServices,
    .handlers = kPrototypeHandlers,
    .signals = kPrototypeSignals,
};

}  // namespace canopy
