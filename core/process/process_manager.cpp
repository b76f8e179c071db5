#include "core/process/process_manager.h"

#include <fmt/format.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>

#include "core/base/log.h"
#include "core/base/process_title.h"
#include "core/process/child_context.h"

namespace canopy {
namespace {

constexpr auto kQuickDeath = std::chrono::seconds(1);
constexpr auto kFirstRestartDelay = std::chrono::milliseconds(100);
constexpr auto kMaxRestartDelay = std::chrono::seconds(10);
constexpr auto kExternalSetupWait = std::chrono::seconds(30);

bool arePeers(const ProcessKind& left, const ProcessKind& right) {
    auto names = [](const ProcessKind& kind, std::string_view other) {
        return std::find(kind.peers.begin(), kind.peers.end(), other) != kind.peers.end();
    };
    return names(left, right.name) || names(right, left.name);
}

// Closes every descriptor but those in `keep`, so a child holds nothing of
// main's but what its kind was given.
void closeAllExcept(std::vector<int> keep) {
    std::sort(keep.begin(), keep.end());
    unsigned next = 0;
    for (int fd : keep) {
        if (fd < 0 || static_cast<unsigned>(fd) < next) {
            continue;
        }
        if (static_cast<unsigned>(fd) > next) {
            ::close_range(next, static_cast<unsigned>(fd) - 1, 0);
        }
        next = static_cast<unsigned>(fd) + 1;
    }
    ::close_range(next, ~0U, 0);
}

std::string describeExit(int wait_status) {
    if (WIFSIGNALED(wait_status)) {
        int signal_number = WTERMSIG(wait_status);
        const char* name = sigabbrev_np(signal_number);
        return fmt::format("exited on signal {}{}{}", signal_number,
                           name != nullptr ? fmt::format(" (SIG{})", name) : std::string(),
                           WCOREDUMP(wait_status) ? " (core dumped)" : "");
    }
    return fmt::format("exited with code {}", WEXITSTATUS(wait_status));
}

}  // namespace

std::string_view processStateName(ProcessState state) {
    switch (state) {
        case ProcessState::Creating:
            return "CREATING";
        case ProcessState::Created:
            return "CREATED";
        case ProcessState::Ready:
            return "READY";
        case ProcessState::Exited:
            return "EXITED";
    }
    return "UNKNOWN";
}

ProcessManager::ProcessManager(MainContext& main) : main_(main) {
    // As pid 1 (in a container) every orphan of the system comes to main.
    reaps_orphans_ = ::getpid() == 1;
    watchSignals();
}

ProcessManager::~ProcessManager() {
    for (auto& [pid, entry] : entries_) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
    }
}

void ProcessManager::watchSignals() {
    // SIGCHLD is read from a signalfd on the event loop, so reaping never
    // races with the code that forks.
    sigset_t child_signal;
    sigemptyset(&child_signal);
    sigaddset(&child_signal, SIGCHLD);
    ::sigprocmask(SIG_BLOCK, &child_signal, nullptr);
    int fd = ::signalfd(-1, &child_signal, SFD_NONBLOCK | SFD_CLOEXEC);
    CANOPY_CHECK(fd >= 0, std::string("signalfd(SIGCHLD) failed: ") + std::strerror(errno));
    signal_watch_ = std::make_unique<boost::asio::posix::stream_descriptor>(main_.io(), fd);
    waitForChildSignal();
}

void ProcessManager::waitForChildSignal() {
    signal_watch_->async_wait(
        boost::asio::posix::stream_descriptor::wait_read,
        [this](const boost::system::error_code& ec) {
            if (ec) {
                return;
            }
            signalfd_siginfo info{};
            while (::read(signal_watch_->native_handle(), &info, sizeof(info)) == sizeof(info)) {
            }
            reapChildren();
            waitForChildSignal();
        });
}

void ProcessManager::boot(std::span<const ProcessKind* const> kinds, std::function<void()> booted) {
    boot_kinds_.assign(kinds.begin(), kinds.end());
    boot_next_ = 0;
    booted_ = std::move(booted);
    continueBoot();
}

void ProcessManager::continueBoot() {
    boot_waiting_for_ = -1;
    while (boot_next_ < boot_kinds_.size() && !stopping_) {
        const ProcessKind& kind = *boot_kinds_[boot_next_++];
        if (kind.boot == BootRole::OnDemand) {
            continue;
        }
        auto started = start(kind);
        if (!started) {
            log::alert("cannot start the {} process: {}", kind.name, started.error().message);
            if (kind.restart == RestartPolicy::Always) {
                scheduleRestart(kind, std::chrono::steady_clock::now());
            }
            continue;
        }
        if (kind.boot == BootRole::RunToCompletion) {
            boot_waiting_for_ = (*started)->pid;
            return;
        }
    }
    if (boot_next_ >= boot_kinds_.size() && booted_) {
        auto booted = std::move(booted_);
        booted_ = nullptr;
        booted();
    }
}

Result<Process*> ProcessManager::start(const ProcessKind& kind, std::string data) {
    if (stopping_) {
        return Error{"the daemon is stopping"};
    }
    auto process = std::make_unique<Process>();
    process->id = next_id_++;
    process->kind = &kind;
    process->title = std::string(kind.title);
    process->data = std::move(data);
    if (kind.prefork != nullptr) {
        if (auto prepared = kind.prefork(main_, *process); !prepared) {
            return prepared.error();
        }
    }
    auto ports = Port::createPair();
    if (!ports) {
        return ports.error();
    }
    pid_t pid = ::fork();
    if (pid < 0) {
        return systemError("fork()");
    }
    if (pid == 0) {
        runChild(*process, std::move(ports->second));
    }
    process->pid = pid;
    process->port = std::move(ports->first);
    process->inherited_fds.clear();
    process->started_at = std::chrono::steady_clock::now();
    log::debug("{} process {} forked", kind.name, pid);

    Entry& entry = entries_[pid];
    entry.process = std::move(process);
    watchPort(entry);
    setState(*entry.process, ProcessState::Creating);
    return entry.process.get();
}

void ProcessManager::runChild(Process& process, Port child_port) {
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int signal_number = 1; signal_number < NSIG; ++signal_number) {
        ::signal(signal_number, SIG_DFL);
    }

    std::vector<int> keep = {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO, child_port.fd()};
    std::vector<int> inherited;
    for (const auto& fd : process.inherited_fds) {
        keep.push_back(fd.get());
        inherited.push_back(fd.get());
    }
    closeAllExcept(keep);
    setProcessTitle(process.title);

    const ProcessKind& kind = *process.kind;
    int exit_code = 1;
    {
        ChildContext child(kind, main_.settings(), std::move(child_port), std::move(process.data),
                           std::move(inherited));
        auto fail = [&](const std::string& reason) {
            // Main logs the reason; the child only reports it.
            if (auto sent = child.mainPort().send(MessageType::SetupFailed, reason); !sent) {
                log::error("{} process setup failed: {}", kind.name, reason);
            }
            ::_exit(1);
        };
        auto state = kind.setup(child);
        if (!state) {
            fail(state.error().message);
        }
        if (*state == ProcessState::Created) {
            if (auto sent = child.mainPort().send(MessageType::ProcessCreated); !sent) {
                ::_exit(1);
            }
            auto answer = child.mainPort().receiveWait(kExternalSetupWait);
            if (!answer) {
                log::error("{} process: no answer from main after PROCESS_CREATED: {}", kind.name,
                           answer.error().message);
                ::_exit(1);
            }
            if (answer->type != MessageType::Continue) {
                ::_exit(1);  // main logged why it refused
            }
        }
        if (auto sent = child.mainPort().send(MessageType::ProcessReady); !sent) {
            ::_exit(1);
        }
        exit_code = kind.start(child);
    }
    ::_exit(exit_code);
}

void ProcessManager::watchPort(Entry& entry) {
    if (!entry.readiness) {
        entry.readiness = std::make_unique<boost::asio::posix::stream_descriptor>(
            main_.io(), ::dup(entry.process->port.fd()));
    }
    pid_t pid = entry.process->pid;
    entry.readiness->async_wait(boost::asio::posix::stream_descriptor::wait_read,
                                [this, pid](const boost::system::error_code& ec) {
                                    if (!ec) {
                                        drainPort(pid);
                                    }
                                });
}

void ProcessManager::drainPort(pid_t pid) {
    for (;;) {
        auto found = entries_.find(pid);
        if (found == entries_.end() || !found->second.process->port.valid()) {
            return;
        }
        Entry& entry = found->second;
        auto received = entry.process->port.receive();
        if (!received) {
            // The process closed its port: it is exiting; reaping does the rest.
            entry.readiness.reset();
            entry.process->port.close();
            return;
        }
        if (!received->has_value()) {
            watchPort(entry);
            return;
        }
        dispatch(*entry.process, **received);
    }
}

void ProcessManager::dispatch(Process& process, Message& message) {
    const ProcessKind& kind = *process.kind;
    switch (message.type) {
        case MessageType::Ping:
            (void)process.port.send(MessageType::Pong, message.payload, {}, message.stream);
            return;
        case MessageType::ProcessCreated: {
            if (process.state != ProcessState::Creating) {
                break;
            }
            setState(process, ProcessState::Created);
            Result<void> finished = kind.external_setup != nullptr
                                        ? kind.external_setup(main_, process)
                                        : Result<void>(Error{"its kind has no external setup"});
            if (finished) {
                (void)process.port.send(MessageType::Continue);
            } else {
                log::error("cannot finish setting up the {} process {}: {}", kind.name, process.pid,
                           finished.error().message);
                (void)process.port.send(MessageType::SetupFailed, finished.error().message);
            }
            return;
        }
        case MessageType::ProcessReady:
            if (process.state == ProcessState::Ready) {
                break;
            }
            setState(process, ProcessState::Ready);
            connectPeers(process);
            if (kind.ready != nullptr) {
                kind.ready(main_, process);
            }
            return;
        case MessageType::SetupFailed:
            log::error("the {} process {} failed to start: {}", kind.name, process.pid,
                       message.payload);
            process.setup_error = message.payload;
            return;
        default:
            break;
    }
    auto handler = std::find_if(kind.main_handlers.begin(), kind.main_handlers.end(),
                                [&](const auto& entry) { return entry.type == message.type; });
    if (handler != kind.main_handlers.end()) {
        handler->handle(main_, process, message);
        return;
    }
    if (dispatchService(process, message)) {
        return;
    }
    if (unhandled_listener_) {
        unhandled_listener_(process, message);
        return;
    }
    log::warn("unexpected message {} from the {} process {}", messageTypeName(message.type),
              kind.name, process.pid);
}

bool ProcessManager::dispatchService(Process& process, Message& message) {
    for (const ProcessKind* provider : boot_kinds_) {
        for (const auto& service : provider->main_services) {
            if (service.type == message.type && service.from == process.kind->name) {
                service.handle(main_, process, message);
                return true;
            }
        }
    }
    return false;
}

void ProcessManager::setState(Process& process, ProcessState state) {
    process.state = state;
    log::debug("{} process {} is {}", process.kind->name, process.pid, processStateName(state));
    for (const auto& listener : state_listeners_) {
        listener(process, state);
    }
}

void ProcessManager::connectPeers(Process& process) {
    for (auto& [pid, entry] : entries_) {
        Process& other = *entry.process;
        if (&other == &process || other.state != ProcessState::Ready ||
            !arePeers(*process.kind, *other.kind)) {
            continue;
        }
        auto ports = Port::createPair();
        if (!ports) {
            log::alert("cannot connect the {} and {} processes: {}", process.kind->name,
                       other.kind->name, ports.error().message);
            continue;
        }
        std::array<int, 1> to_process = {ports->first.fd()};
        std::array<int, 1> to_other = {ports->second.fd()};
        auto first = process.port.send(
            MessageType::NewPort, fmt::format("{} {}", other.kind->name, other.pid), to_process);
        auto second = other.port.send(
            MessageType::NewPort, fmt::format("{} {}", process.kind->name, process.pid), to_other);
        if (!first || !second) {
            log::warn("cannot announce the {} and {} processes to each other", process.kind->name,
                      other.kind->name);
        }
    }
}

void ProcessManager::reapChildren() {
    if (reaps_orphans_) {
        int wait_status = 0;
        pid_t reaped = 0;
        while ((reaped = ::waitpid(-1, &wait_status, WNOHANG)) > 0) {
            if (entries_.contains(reaped)) {
                handleExit(reaped, wait_status);
            } else {
                handleOrphanExit(reaped, wait_status);
            }
        }
        return;
    }
    std::vector<pid_t> known;
    for (const auto& [pid, entry] : entries_) {
        known.push_back(pid);
    }
    for (pid_t pid : known) {
        int wait_status = 0;
        pid_t reaped = ::waitpid(pid, &wait_status, WNOHANG);
        if (reaped == pid) {
            handleExit(pid, wait_status);
        }
    }
}

void ProcessManager::handleExit(pid_t pid, int wait_status) {
    drainPort(pid);  // messages sent right before exiting, such as a final report
    auto found = entries_.find(pid);
    if (found == entries_.end()) {
        return;
    }
    std::unique_ptr<Process> process = std::move(found->second.process);
    entries_.erase(found);
    const ProcessKind& kind = *process->kind;
    process->state = ProcessState::Exited;

    std::string how = describeExit(wait_status);
    bool clean = WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0;
    if (stopping_ || clean) {
        log::notice("{} process {} {}", kind.name, pid, how);
    } else if (WIFSIGNALED(wait_status)) {
        log::alert("{} process {} {}", kind.name, pid, how);
    } else {
        log::error("{} process {} {}", kind.name, pid, how);
    }
    if (kind.exited != nullptr) {
        kind.exited(main_, *process, wait_status);
    }
    for (const auto& listener : state_listeners_) {
        listener(*process, ProcessState::Exited);
    }
    for (const auto& listener : exit_listeners_) {
        listener(kind, pid, wait_status);
    }

    if (stopping_) {
        finishStopIfDone();
        return;
    }
    if (pid == boot_waiting_for_) {
        continueBoot();
    }
    if (kind.restart == RestartPolicy::Always) {
        scheduleRestart(kind, process->started_at);
    }
}

void ProcessManager::handleOrphanExit(pid_t pid, int wait_status) {
    log::debug("process {} (not forked by main) {}", pid, describeExit(wait_status));
    for (const auto& listener : orphan_listeners_) {
        listener(pid, wait_status);
    }
}

void ProcessManager::scheduleRestart(const ProcessKind& kind,
                                     std::chrono::steady_clock::time_point started) {
    // A process that keeps dying right after start is restarted with a
    // growing delay instead of in a storm.
    unsigned& quick = quick_deaths_[&kind];
    quick = std::chrono::steady_clock::now() - started < kQuickDeath ? quick + 1 : 0;
    std::chrono::milliseconds delay(0);
    if (quick > 0) {
        delay = std::min<std::chrono::milliseconds>(
            kFirstRestartDelay * (1U << std::min(quick - 1, 10U)), kMaxRestartDelay);
        log::warn("the {} process keeps exiting; restarting it in {} ms", kind.name, delay.count());
    }
    auto timer = std::make_unique<boost::asio::steady_timer>(main_.io(), delay);
    auto* raw = timer.get();
    restart_timers_.push_back(std::move(timer));
    raw->async_wait([this, &kind, raw](const boost::system::error_code& ec) {
        std::erase_if(restart_timers_, [raw](const auto& owned) { return owned.get() == raw; });
        if (ec || stopping_) {
            return;
        }
        auto restarted = start(kind);
        if (!restarted) {
            log::alert("cannot restart the {} process: {}", kind.name, restarted.error().message);
            scheduleRestart(kind, std::chrono::steady_clock::now());
        } else {
            log::notice("{} process {} started to replace the one that exited", kind.name,
                        (*restarted)->pid);
        }
    });
}

void ProcessManager::stopAll(std::chrono::milliseconds deadline, std::function<void()> done) {
    stopping_ = true;
    stopped_ = std::move(done);
    restart_timers_.clear();  // cancels pending restarts
    for (auto& [pid, entry] : entries_) {
        if (entry.process->port.valid()) {
            (void)entry.process->port.send(MessageType::Quit, {}, {}, 0,
                                           std::chrono::milliseconds(100));
        }
    }
    stop_timer_ = std::make_unique<boost::asio::steady_timer>(main_.io(), deadline);
    stop_timer_->async_wait([this, deadline](const boost::system::error_code& ec) {
        if (ec) {
            return;
        }
        for (auto& [pid, entry] : entries_) {
            log::warn("the {} process {} did not exit within {} ms; killing it",
                      entry.process->kind->name, pid, deadline.count());
            ::kill(pid, SIGKILL);
        }
    });
    finishStopIfDone();
}

void ProcessManager::finishStopIfDone() {
    if (!stopping_ || !entries_.empty() || !stopped_) {
        return;
    }
    stop_timer_.reset();
    auto stopped = std::move(stopped_);
    stopped_ = nullptr;
    boost::asio::post(main_.io(), std::move(stopped));
}

void ProcessManager::broadcast(MessageType type, std::string_view payload,
                               std::span<const int> fds) {
    for (auto& [pid, entry] : entries_) {
        if (entry.process->state == ProcessState::Ready && entry.process->port.valid()) {
            if (auto sent = entry.process->port.send(type, payload, fds); !sent) {
                log::warn("cannot send {} to the {} process {}: {}", messageTypeName(type),
                          entry.process->kind->name, pid, sent.error().message);
            }
        }
    }
}

std::vector<Process*> ProcessManager::processes() const {
    std::vector<Process*> result;
    for (const auto& [pid, entry] : entries_) {
        result.push_back(entry.process.get());
    }
    return result;
}

Process* ProcessManager::find(pid_t pid) const {
    auto found = entries_.find(pid);
    return found == entries_.end() ? nullptr : found->second.process.get();
}

}  // namespace canopy
