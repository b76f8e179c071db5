#pragma once

// A process kind is data: one table entry says how main prepares, forks,
// finishes and restarts a process of that kind, and which messages the
// process and main exchange about it. Main starts kinds generically and never
// names one (see the seed in shared/seed/).
//
// Life of a process:
//   main:  init (once per daemon) -> prefork -> fork
//   child: setup -> CREATED?  --PROCESS_CREATED-->  main: externalSetup
//                             <--CONTINUE-----------
//          -> PROCESS_READY -> start (its return value is the exit code)
//   main:  ready (once READY) ... exit observed -> exited -> restart policy
//          -> prefork -> fork ...
//   main:  shutdown (once per daemon)

#include <span>
#include <string>
#include <string_view>

#include "core/base/result.h"
#include "core/port/message.h"

namespace canopy {

class MainContext;
class ChildContext;
struct Process;

enum class ProcessState { Creating, Created, Ready, Exited };

std::string_view processStateName(ProcessState state);

// When main starts processes of a kind.
enum class BootRole {
    // Started at boot and kept running.
    Service,
    // Started at boot; main waits for it to exit before it starts the kinds
    // after it in the table.
    RunToCompletion,
    // Started only when asked (for example, application processes).
    OnDemand,
};

enum class RestartPolicy { Never, Always };

// A message main accepts from processes of this kind, beyond the generic ones.
struct MainMessageHandler {
    MessageType type;
    void (*handle)(MainContext& main, Process& sender, Message& message);
};

// A message main accepts from processes of another kind and handles on behalf
// of this kind: the router asks main for application processes, and the
// application kind answers. Main looks these up in the kinds it booted and
// refuses the message from any kind but `from`.
struct MainServiceHandler {
    MessageType type;
    std::string_view from;  // the kind allowed to send it, e.g. "router"
    void (*handle)(MainContext& main, Process& sender, Message& message);
};

// A message a process of this kind accepts, beyond the generic ones (PING,
// QUIT, NEW_PORT, LOG_FILE). `from` names the sender: "main" or a peer kind.
struct ChildMessageHandler {
    MessageType type;
    void (*handle)(ChildContext& child, std::string_view from, Message& message);
};

// What a process of this kind does on a signal. Signals not listed get the
// generic behaviour: SIGTERM/SIGINT exit at once, SIGQUIT stops gracefully,
// SIGHUP/SIGUSR1/SIGUSR2/SIGPIPE are ignored.
struct SignalAction {
    int signal_number;
    void (*handle)(ChildContext& child);
};

struct ProcessKind {
    std::string_view name;   // "router"; used in logs and to name peers
    std::string_view title;  // what ps shows: "canopy: router"
    BootRole boot = BootRole::Service;
    RestartPolicy restart = RestartPolicy::Never;

    // In main, once before boot (and before daemonizing, so errors reach the
    // terminal): acquire what the kind needs from a privileged main, such as a
    // listening socket. Optional.
    Result<void> (*init)(MainContext& main) = nullptr;
    // In main, right before each fork: fill process.inherited_fds and
    // process.data. Optional.
    Result<void> (*prefork)(MainContext& main, Process& process) = nullptr;
    // In the child: returns Ready, or Created when main must finish the
    // process from outside first. Required.
    Result<ProcessState> (*setup)(ChildContext& child) = nullptr;
    // In main, when the child reported CREATED. Required if setup can
    // return Created.
    Result<void> (*external_setup)(MainContext& main, Process& process) = nullptr;
    // In the child, after READY was sent; returns the exit code. Required.
    int (*start)(ChildContext& child) = nullptr;
    // In main, once when the daemon stops: release what init acquired. Optional.
    void (*shutdown)(MainContext& main) = nullptr;
    // In main, when a process of this kind became READY (its peers are
    // connected by then). Optional.
    void (*ready)(MainContext& main, Process& process) = nullptr;
    // In main, after a process of this kind was reaped and before any
    // restart; `process.setup_error` holds the reason its setup failed, if it
    // did. Optional.
    void (*exited)(MainContext& main, Process& process, int wait_status) = nullptr;

    std::span<const MainMessageHandler> main_handlers;
    std::span<const MainServiceHandler> main_services;
    std::span<const ChildMessageHandler> handlers;
    std::span<const SignalAction> signals;
    // Kinds this kind talks to directly; main connects their ports whenever
    // both are ready. The relation is symmetric: one side naming it suffices.
    std::span<const std::string_view> peers;
};

}  // namespace canopy
