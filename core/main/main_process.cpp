#include "core/main/main_process.h"

#include <fmt/format.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <csignal>
#include <cstring>
#include <ostream>

#include "core/base/build_info.h"
#include "core/base/log.h"
#include "core/base/process_title.h"
#include "core/main/daemon.h"
#include "core/process/credentials.h"
#include "core/process/main_context.h"
#include "core/process/process_manager.h"

namespace canopy {
namespace {

constexpr auto kStopDeadline = std::chrono::seconds(5);
constexpr std::array<int, 6> kMainSignals = {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2};

std::filesystem::path absolute(const std::string& path) {
    if (path.empty()) {
        return {};
    }
    std::error_code ec;
    auto result = std::filesystem::absolute(path, ec);
    return ec ? std::filesystem::path(path) : result.lexically_normal();
}

std::string signalName(int signal_number) {
    const char* name = sigabbrev_np(signal_number);
    return name != nullptr ? fmt::format("SIG{}", name) : std::to_string(signal_number);
}

// Reports a start-up failure where the user looks: the terminal that started
// canopyd and the log.
class StartupReporter {
  public:
    StartupReporter() : terminal_(::dup(STDERR_FILENO)) {}
    ~StartupReporter() { detach(); }

    int fail(const std::string& message) {
        log::alert("{}", message);
        if (terminal_ >= 0 && !sameAsLog()) {
            std::string line = fmt::format("canopyd: {}\n", message);
            (void)::write(terminal_, line.data(), line.size());
        }
        return 1;
    }
    void detach() {
        if (terminal_ >= 0) {
            ::close(terminal_);
            terminal_ = -1;
        }
    }

  private:
    bool sameAsLog() const {
        struct stat terminal {};
        struct stat log {};
        return ::fstat(terminal_, &terminal) == 0 && ::fstat(STDERR_FILENO, &log) == 0 &&
               terminal.st_dev == log.st_dev && terminal.st_ino == log.st_ino;
    }

    int terminal_;
};

class MainProcess {
  public:
    MainProcess(boost::asio::io_context& io, RuntimeSettings settings,
                std::span<const ProcessKind* const> kinds)
        : io_(io), main_(io, std::move(settings)), kinds_(kinds) {}

    Result<void> initKinds() {
        for (const ProcessKind* kind : kinds_) {
            if (kind->init == nullptr) {
                continue;
            }
            if (auto ready = kind->init(main_); !ready) {
                return ready.error();
            }
            initialized_.push_back(kind);
        }
        return {};
    }

    void shutdownKinds() {
        for (const ProcessKind* kind : initialized_) {
            if (kind->shutdown != nullptr) {
                kind->shutdown(main_);
            }
        }
        initialized_.clear();
    }

    void watchSignals() {
        sigset_t watched;
        sigemptyset(&watched);
        for (int signal_number : kMainSignals) {
            sigaddset(&watched, signal_number);
        }
        ::sigprocmask(SIG_BLOCK, &watched, nullptr);
        int fd = ::signalfd(-1, &watched, SFD_NONBLOCK | SFD_CLOEXEC);
        CANOPY_CHECK(fd >= 0, std::string("signalfd() failed: ") + std::strerror(errno));
        signals_ = std::make_unique<boost::asio::posix::stream_descriptor>(io_, fd);
        waitForSignal();
    }

    void boot() { main_.processes().boot(kinds_); }

    MainContext& context() { return main_; }

  private:
    void waitForSignal() {
        signals_->async_wait(
            boost::asio::posix::stream_descriptor::wait_read,
            [this](const boost::system::error_code& ec) {
                if (ec) {
                    return;
                }
                signalfd_siginfo info{};
                while (::read(signals_->native_handle(), &info, sizeof(info)) == sizeof(info)) {
                    handleSignal(static_cast<int>(info.ssi_signo));
                }
                waitForSignal();
            });
    }

    void handleSignal(int signal_number) {
        switch (signal_number) {
            case SIGTERM:
            case SIGINT:
            case SIGQUIT:
                if (main_.processes().stopping()) {
                    return;
                }
                log::notice("signal {} ({}) received, exiting", signal_number,
                            signalName(signal_number));
                main_.processes().stopAll(kStopDeadline, [this] { io_.stop(); });
                return;
            case SIGUSR1:
                // Reopen first, so the line lands in the new file.
                reopenFiles();
                log::notice("signal {} ({}) received, log files rotation", signal_number,
                            signalName(signal_number));
                return;
            default:
                log::notice("signal {} ({}) received, ignoring", signal_number,
                            signalName(signal_number));
                return;
        }
    }

    void reopenLog() {
        const auto& file = main_.settings().log_file;
        if (file.empty()) {
            return;
        }
        auto reopened = openLogFile(file);
        if (!reopened) {
            log::alert("{}", reopened.error().message);
            return;
        }
        ::dup2(reopened->get(), STDERR_FILENO);
        std::array<int, 1> fds = {reopened->get()};
        main_.processes().broadcast(MessageType::LogFile, {}, fds);
    }

    void reopenFiles() {
        reopenLog();
        main_.processes().broadcast(MessageType::ReopenFiles);
    }

    boost::asio::io_context& io_;
    MainContext main_;
    std::span<const ProcessKind* const> kinds_;
    std::vector<const ProcessKind*> initialized_;
    std::unique_ptr<boost::asio::posix::stream_descriptor> signals_;
};

std::string mainTitle(int argc, char** argv) {
    std::string title = fmt::format("canopy: main v{} [", build::kVersion);
    for (int index = 0; index < argc; ++index) {
        title += index == 0 ? "" : " ";
        title += argv[index];
    }
    return title + "]";
}

}  // namespace

Result<RuntimeSettings> makeRuntimeSettings(const Options& options) {
    RuntimeSettings settings;
    settings.modules_dir = absolute(options.modules_dir);
    settings.state_dir = absolute(options.state_dir);
    settings.tmp_dir = absolute(options.tmp_dir);
    settings.log_file = absolute(options.log_file);
    settings.pid_file = absolute(options.pid_file);
    settings.initial_config = absolute(options.config_file);
    settings.control_address = options.control;
    if (settings.control_address.starts_with("unix:")) {
        settings.control_address = "unix:" + absolute(settings.control_address.substr(5)).string();
    }
    try {
        size_t used = 0;
        settings.control_mode = static_cast<unsigned>(std::stoul(options.control_mode, &used, 8));
        if (used != options.control_mode.size() || settings.control_mode > 07777) {
            throw std::invalid_argument("mode");
        }
    } catch (const std::exception&) {
        return Error{fmt::format("invalid --control-mode \"{}\": expected an octal mode like 0600",
                                 options.control_mode)};
    }
    if (!options.control_user.empty()) {
        auto owner = resolveCredentials(options.control_user, options.control_group);
        if (!owner) {
            return Error{"--control-user: " + owner.error().message};
        }
        settings.control_owner = owner->uid;
        settings.control_group = owner->gid;
    } else if (!options.control_group.empty()) {
        auto group = resolveGroup(options.control_group);
        if (!group) {
            return Error{"--control-group: " + group.error().message};
        }
        settings.control_group = *group;
    }
    if (::geteuid() == 0) {
        auto credentials = resolveCredentials(options.user, options.group);
        if (!credentials) {
            return credentials.error();
        }
        settings.unprivileged = *credentials;
    }
    return settings;
}

int runDaemon(const Options& options, std::span<const ProcessKind* const> kinds, int argc,
              char** argv) {
    if (auto level = log::parseLevel(options.log_level)) {
        log::setLevel(*level);
    }
    StartupReporter reporter;
    auto settings = makeRuntimeSettings(options);
    if (!settings) {
        return reporter.fail(settings.error().message);
    }
    // Detach first: the event loop's epoll and signalfd must belong to the
    // process that runs it. The parent waits for the outcome of start-up.
    UniqueFd readiness;
    if (!options.no_daemon) {
        auto detached = daemonize();
        if (!detached) {
            return reporter.fail(detached.error().message);
        }
        readiness = std::move(*detached);
    }
    // Before the pid file exists: tools that find the daemon through it
    // expect the title to be set already.
    setProcessTitle(mainTitle(argc, argv));
    if (!settings->log_file.empty()) {
        auto log_fd = openLogFile(settings->log_file);
        if (!log_fd) {
            return reporter.fail(log_fd.error().message);
        }
        ::dup2(log_fd->get(), STDERR_FILENO);
    }
    if (auto usable = prepareDirectory(settings->state_dir, "state directory"); !usable) {
        return reporter.fail(usable.error().message);
    }
    if (auto usable = checkWritableDirectory(settings->tmp_dir, "temporary directory"); !usable) {
        return reporter.fail(usable.error().message);
    }
    if (!settings->unprivileged) {
        log::warn("running as uid {}, not root: cannot use arbitrary user and group", ::geteuid());
    }

    // Every client connection is a descriptor in the router: use what the
    // system allows rather than the conservative default soft limit.
    rlimit files{};
    if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
        files.rlim_cur = files.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &files);
    }

    boost::asio::io_context io;
    MainProcess main_process(io, *settings, kinds);
    if (auto ready = main_process.initKinds(); !ready) {
        main_process.shutdownKinds();
        return reporter.fail(ready.error().message);
    }
    pid_t pid = ::getpid();
    if (!settings->pid_file.empty()) {
        if (auto written = writePidFile(settings->pid_file, pid); !written) {
            main_process.shutdownKinds();
            return reporter.fail(written.error().message);
        }
    }
    reporter.detach();
    if (!options.no_daemon) {
        notifyReady(std::move(readiness));
    }

    // Workers outlive a prototype that dies; as the subreaper main reaps them
    // (and can tell them from unrelated processes) instead of init.
    if (::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0) {
        main_process.context().processes().reapOrphans(true);
    } else {
        log::warn("cannot become the reaper of orphaned application processes: {}",
                  std::strerror(errno));
    }

    log::info("canopy {} started", build::kVersion);
    main_process.watchSignals();
    main_process.boot();
    io.run();

    main_process.shutdownKinds();
    if (!settings->pid_file.empty()) {
        removePidFile(settings->pid_file, pid);
    }
    log::info("canopy {} stopped", build::kVersion);
    return 0;
}

int listModules(const Options& options, std::span<const ProcessKind* const> kinds,
                std::ostream& out) {
    // The listing goes to stdout; warnings about skipped modules to stderr.
    log::setLevel(log::Level::Warn);
    auto settings = makeRuntimeSettings(options);
    if (!settings) {
        log::alert("{}", settings.error().message);
        return 1;
    }
    std::vector<const ProcessKind*> run_to_completion;
    for (const ProcessKind* kind : kinds) {
        if (kind->boot == BootRole::RunToCompletion) {
            run_to_completion.push_back(kind);
        }
    }
    boost::asio::io_context io;
    MainContext main(io, *settings);
    bool failed = false;
    main.processes().onExit([&](const ProcessKind&, pid_t, int wait_status) {
        failed = failed || !WIFEXITED(wait_status) || WEXITSTATUS(wait_status) != 0;
    });
    main.processes().boot(run_to_completion, [&] { io.stop(); });
    io.run();
    if (failed) {
        return 1;
    }

    const auto& modules = main.modules().modules();
    if (options.json) {
        nlohmann::json listing = nlohmann::json::array();
        for (const auto& module : modules) {
            listing.push_back(toJson(module));
        }
        out << listing.dump(4) << "\n";
        return 0;
    }
    if (std::all_of(modules.begin(), modules.end(),
                    [](const ModuleInfo& module) { return module.builtin; })) {
        // Said on stderr: the table still lists the built-in types.
        log::warn("no modules in \"{}\"", settings->modules_dir.string());
    }
    size_t type_width = 4;
    size_t version_width = 7;
    for (const auto& module : modules) {
        type_width = std::max(type_width, module.type.size());
        version_width = std::max(version_width, module.version.size());
    }
    out << fmt::format("{:<{}}  {:<{}}  {:<5}  {}\n", "TYPE", type_width, "VERSION", version_width,
                       "ABI", "FILE");
    for (const auto& module : modules) {
        out << fmt::format("{:<{}}  {:<{}}  {:<5}  {}\n", module.type, type_width, module.version,
                           version_width, fmt::format("{}.{}", module.abi_major, module.abi_minor),
                           module.builtin ? std::string("(built-in)") : module.file);
    }
    return 0;
}

}  // namespace canopy
