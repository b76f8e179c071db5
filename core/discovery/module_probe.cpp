#include "core/discovery/module_probe.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstring>
#include <exception>
#include <string_view>

#include "core/base/unique_fd.h"

namespace canopy {
namespace {

namespace fs = std::filesystem;

// The child answers with one message: a 4-byte length, then a tag and a body.
constexpr char kTagModule = 'M';  // body: a DiscoveryReport holding the one module
constexpr char kTagError = 'E';   // body: the reason
// A descriptor is a few kilobytes at most; this only bounds a runaway child.
constexpr size_t kMaxAnswerSize = 16 * 1024 * 1024;
// Without a pidfd the parent looks for the child's exit this often.
constexpr int kExitPollMilliseconds = 10;

// Where the probe child keeps its end of the answer pipe.
constexpr int kChildAnswerFd = 3;

constexpr size_t kMaxMounts = 256;
constexpr size_t kMaxNameLength = 128;

// The fields every ABI major shares: size, abi_major, abi_minor.
constexpr size_t kAbiHeaderSize = offsetof(canopy_module_t, abi_minor) + sizeof(uint16_t);

bool hasField(uint32_t size, size_t offset, size_t field_size) {
    return size >= offset + field_size;
}

// Module text quoted in a reason stays on one line and short.
std::string printable(std::string_view text) {
    std::string shown;
    for (char c : text.substr(0, 64)) {
        shown += (c >= 0x20 && c < 0x7f) ? c : '?';
    }
    if (text.size() > 64) {
        shown += "...";
    }
    return shown;
}

bool isValidType(std::string_view type) {
    for (char c : type) {
        bool allowed = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
        if (!allowed) {
            return false;
        }
    }
    return true;
}

// Versions end up in `type: "python 3.11"`, which splits on the space, and
// in log lines: printable ASCII without spaces.
bool isValidVersion(std::string_view version) {
    for (char c : version) {
        if (c <= 0x20 || c >= 0x7f) {
            return false;
        }
    }
    return true;
}

std::string signalDescription(int signal_number) {
    const char* abbreviation = sigabbrev_np(signal_number);
    if (abbreviation == nullptr) {
        return fmt::format("signal {}", signal_number);
    }
    return fmt::format("signal {}, SIG{}", signal_number, abbreviation);
}

// Checked before forking: the common mistake (a text file or a truncated
// download named *.canopy.so) gets a plain reason instead of dlopen's.
Result<void> checkElfMagic(const fs::path& file) {
    UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        return Error{fmt::format("cannot read: {}", std::strerror(errno)), errno};
    }
    std::array<unsigned char, 4> magic{};
    size_t have = 0;
    while (have < magic.size()) {
        ssize_t got = ::read(fd.get(), magic.data() + have, magic.size() - have);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got < 0) {
            return Error{fmt::format("cannot read: {}", std::strerror(errno)), errno};
        }
        if (got == 0) {
            break;
        }
        have += static_cast<size_t>(got);
    }
    static constexpr std::array<unsigned char, 4> kElfMagic = {0x7f, 'E', 'L', 'F'};
    if (have < magic.size() || magic != kElfMagic) {
        return Error{"not an ELF file"};
    }
    return {};
}

void writeAll(int fd, std::string_view data) {
    while (!data.empty()) {
        ssize_t written = ::write(fd, data.data(), data.size());
        if (written < 0 && errno == EINTR) {
            continue;
        }
        if (written <= 0) {
            return;  // the parent gave up on us; nothing left to tell
        }
        data.remove_prefix(static_cast<size_t>(written));
    }
}

std::string frame(char tag, std::string_view body) {
    auto length = static_cast<uint32_t>(body.size() + 1);
    std::string message(sizeof(length), '\0');
    std::memcpy(message.data(), &length, sizeof(length));
    message += tag;
    message += body;
    return message;
}

// Runs in the child: everything that may crash or hang happens here.
std::string loadAndDescribe(const std::string& file) {
    void* handle = ::dlopen(file.c_str(), RTLD_NOW | RTLD_GLOBAL);
    if (handle == nullptr) {
        const char* reason = ::dlerror();
        return frame(kTagError, fmt::format("dlopen failed: {}",
                                            reason != nullptr ? reason : "unknown error"));
    }
    ::dlerror();
    void* symbol = ::dlsym(handle, CANOPY_MODULE_SYMBOL);
    if (symbol == nullptr) {
        return frame(kTagError, fmt::format("missing symbol `{}` (export it with "
                                            "CANOPY_MODULE_EXPORT)",
                                            CANOPY_MODULE_SYMBOL));
    }
    auto described = describeModule(static_cast<const canopy_module_t*>(symbol), file);
    if (!described) {
        return frame(kTagError, described.error().message);
    }
    // The report type already has a parser, so the one module travels as a
    // report. Invalid UTF-8 (possible in a file name) is replaced, not thrown.
    DiscoveryReport report;
    report.modules.push_back(std::move(described.value()));
    return frame(kTagModule,
                 toJson(report).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

[[noreturn]] void runProbeChild(const std::string& file, int answer_fd) noexcept {
    // The caller's handlers and mask (an event loop's signal pipe, blocked
    // signals) must not apply to a module's code: a crash must kill this
    // child, and a signal must not be routed into the caller's loop.
    sigset_t all_signals;
    sigemptyset(&all_signals);
    ::sigprocmask(SIG_SETMASK, &all_signals, nullptr);
    for (int signal_number = 1; signal_number < NSIG; ++signal_number) {
        if (signal_number != SIGKILL && signal_number != SIGSTOP) {
            ::signal(signal_number, SIG_DFL);
        }
    }
    // A crashing module is reported by its signal; a core file per start in
    // the daemon's working directory would help no one.
    struct rlimit no_core = {0, 0};
    ::setrlimit(RLIMIT_CORE, &no_core);
    // A chatty constructor must not mix into `canopyd --modules` output on
    // stdout, and module code must not reach the caller's descriptors (the
    // discovery process's port to main among them): keep 0, 2 and the answer
    // pipe, moved to kChildAnswerFd, and close the rest.
    // (The pipe first: in a process started with stdout closed it may be 1.)
    if (answer_fd != kChildAnswerFd) {
        ::dup2(answer_fd, kChildAnswerFd);
    }
    ::dup2(STDERR_FILENO, STDOUT_FILENO);
    if (::close_range(kChildAnswerFd + 1, ~0U, 0) < 0) {
        for (int fd = kChildAnswerFd + 1; fd < 1024; ++fd) {
            ::close(fd);
        }
    }
    answer_fd = kChildAnswerFd;
    std::string answer;
    try {
        answer = loadAndDescribe(file);
    } catch (const std::exception& failure) {
        answer = frame(kTagError, std::string("probe failed: ") + failure.what());
    } catch (...) {
        answer = frame(kTagError, "probe failed: unknown exception");
    }
    writeAll(answer_fd, answer);
    // _exit: no atexit handlers or static destructors of the caller (or of
    // the module) run twice or at all in this copy of the process.
    ::_exit(0);
}

// Parses a complete answer (tag + body) from the child.
Result<ModuleInfo> parseAnswer(std::string_view answer) {
    char tag = answer.front();
    std::string_view body = answer.substr(1);
    if (tag == kTagError) {
        return Error{std::string(body)};
    }
    if (tag == kTagModule) {
        auto report = parseDiscoveryReport(body);
        if (report && report->modules.size() == 1) {
            return std::move(report->modules.front());
        }
    }
    return Error{"probe process sent a malformed answer"};
}

int openPidFd(pid_t pid) {
#ifdef SYS_pidfd_open
    return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
    (void)pid;
    return -1;
#endif
}

void killAndReap(pid_t pid) {
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
}

}  // namespace

Result<ModuleInfo> describeModule(const canopy_module_t* descriptor, const std::string& file) {
    uint32_t size = descriptor->size;
    if (size < kAbiHeaderSize) {
        return Error{fmt::format("descriptor too small: {} bytes (module ABI 1.0 needs {})", size,
                                 CANOPY_MODULE_SIZE_1_0)};
    }
    // Only size and the ABI version are laid out alike in every major; check
    // the major before reading anything else.
    if (descriptor->abi_major != CANOPY_MODULE_ABI_MAJOR) {
        return Error{fmt::format("built for module ABI {}.{}; this canopyd speaks {}.x",
                                 descriptor->abi_major, descriptor->abi_minor,
                                 CANOPY_MODULE_ABI_MAJOR)};
    }
    if (descriptor->abi_minor > CANOPY_MODULE_ABI_MINOR) {
        return Error{fmt::format("needs module ABI {}.{}; this canopyd provides up to {}.{}",
                                 descriptor->abi_major, descriptor->abi_minor,
                                 CANOPY_MODULE_ABI_MAJOR, CANOPY_MODULE_ABI_MINOR)};
    }
    if (size < CANOPY_MODULE_SIZE_1_0) {
        return Error{fmt::format("descriptor too small: {} bytes (module ABI 1.0 needs {})", size,
                                 CANOPY_MODULE_SIZE_1_0)};
    }

    ModuleInfo info;
    info.file = file;
    info.abi_major = descriptor->abi_major;
    info.abi_minor = descriptor->abi_minor;

    if (descriptor->type == nullptr || descriptor->type[0] == '\0') {
        return Error{"empty type"};
    }
    info.type = descriptor->type;
    if (info.type.size() > kMaxNameLength || !isValidType(info.type)) {
        return Error{fmt::format("invalid type \"{}\": use lower-case letters, digits, '-' and '_'",
                                 printable(info.type))};
    }
    if (descriptor->version == nullptr || descriptor->version[0] == '\0') {
        return Error{"empty version"};
    }
    info.version = descriptor->version;
    if (info.version.size() > kMaxNameLength || !isValidVersion(info.version)) {
        return Error{fmt::format("invalid version \"{}\": use printable characters, no spaces",
                                 printable(info.version))};
    }

    if (descriptor->mount_count > kMaxMounts) {
        return Error{
            fmt::format("too many mounts: {} (at most {})", descriptor->mount_count, kMaxMounts)};
    }
    if (descriptor->mount_count > 0 && descriptor->mounts == nullptr) {
        return Error{fmt::format("mount_count is {} but mounts is NULL", descriptor->mount_count)};
    }
    for (size_t index = 0; index < descriptor->mount_count; ++index) {
        const canopy_mount_t& mount = descriptor->mounts[index];
        if (mount.source == nullptr || mount.source[0] == '\0') {
            return Error{fmt::format("mount {} has no source", index)};
        }
        if (mount.fs_type == nullptr || mount.fs_type[0] == '\0') {
            return Error{fmt::format("mount {} has no fs_type", index)};
        }
        ModuleMount copied;
        copied.source = mount.source;
        copied.target = mount.target != nullptr ? mount.target : mount.source;
        copied.fs_type = mount.fs_type;
        copied.flags = mount.flags;
        copied.data = mount.data != nullptr ? mount.data : "";
        info.mounts.push_back(std::move(copied));
    }

    if (descriptor->config_schema == nullptr) {
        return Error{"no configuration schema (config_schema is NULL)"};
    }
    try {
        info.schema = nlohmann::json::parse(descriptor->config_schema, nullptr, true,
                                            /*ignore_comments=*/true);
    } catch (const nlohmann::json::exception& failure) {
        return Error{fmt::format("configuration schema is not valid JSON: {}", failure.what())};
    }
    if (!info.schema.is_object()) {
        return Error{fmt::format("configuration schema is not a JSON object (it is {})",
                                 info.schema.type_name())};
    }

    if (descriptor->start == nullptr) {
        return Error{"no start function (start is NULL)"};
    }

    if (hasField(size, offsetof(canopy_module_t, description), sizeof(descriptor->description)) &&
        descriptor->description != nullptr) {
        info.description = descriptor->description;
    }
    return info;
}

Result<ModuleInfo> probeModule(const fs::path& file, std::chrono::milliseconds timeout) {
    std::error_code error;
    fs::path absolute = fs::absolute(file, error);
    if (error) {
        absolute = file;
    }
    absolute = absolute.lexically_normal();

    if (auto elf = checkElfMagic(absolute); !elf) {
        return elf.error();
    }

    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) < 0) {
        return systemError("cannot probe: pipe");
    }
    UniqueFd answer_read(pipe_fds[0]);
    UniqueFd answer_write(pipe_fds[1]);
    // Built before fork so the child allocates as little as possible before
    // it gets to dlopen.
    const std::string path = absolute.string();

    pid_t pid = ::fork();
    if (pid < 0) {
        return systemError("cannot probe: fork");
    }
    if (pid == 0) {
        answer_read.reset();
        runProbeChild(path, answer_write.get());
    }
    answer_write.reset();
    // Non-blocking so that, once the child is gone, draining the pipe cannot
    // hang on a write end a grandchild of the module may still hold.
    ::fcntl(answer_read.get(), F_SETFL, ::fcntl(answer_read.get(), F_GETFL) | O_NONBLOCK);
    UniqueFd pid_fd(openPidFd(pid));

    using Clock = std::chrono::steady_clock;
    const Clock::time_point deadline = Clock::now() + timeout;
    std::string answer;
    bool pipe_open = true;
    bool exited = false;
    int wait_status = 0;

    auto readAvailable = [&]() -> bool {
        std::array<char, 16 * 1024> buffer;
        while (true) {
            ssize_t got = ::read(answer_read.get(), buffer.data(), buffer.size());
            if (got > 0) {
                answer.append(buffer.data(), static_cast<size_t>(got));
                if (answer.size() > kMaxAnswerSize + sizeof(uint32_t)) {
                    return false;
                }
                continue;
            }
            if (got == 0) {
                pipe_open = false;
            } else if (errno == EINTR) {
                continue;
            }
            return true;  // EOF or EAGAIN
        }
    };

    while (!exited) {
        pid_t reaped = ::waitpid(pid, &wait_status, WNOHANG);
        if (reaped == pid) {
            exited = true;
            break;
        }
        if (reaped < 0 && errno != EINTR) {
            // Someone else reaped it (see the header); never kill a pid that
            // may have been reused.
            return systemError("cannot probe: waitpid");
        }
        auto remaining =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (remaining.count() <= 0) {
            killAndReap(pid);
            return Error{fmt::format("timed out after {} ms while loading", timeout.count())};
        }
        std::array<pollfd, 2> watched{};
        nfds_t count = 0;
        if (pipe_open) {
            watched[count++] = {answer_read.get(), POLLIN, 0};
        }
        int wait_ms = static_cast<int>(std::min<int64_t>(remaining.count() + 1, 60'000));
        if (pid_fd) {
            watched[count++] = {pid_fd.get(), POLLIN, 0};
        } else {
            wait_ms = std::min(wait_ms, kExitPollMilliseconds);
        }
        int ready = ::poll(watched.data(), count, wait_ms);
        if (ready < 0 && errno != EINTR) {
            Error failure = systemError("cannot probe: poll");
            killAndReap(pid);
            return failure;
        }
        if (pipe_open && !readAvailable()) {
            killAndReap(pid);
            return Error{"probe process sent an oversized answer"};
        }
    }
    // Whatever the child wrote before it exited is in the pipe now.
    if (pipe_open) {
        readAvailable();
    }

    if (WIFSIGNALED(wait_status)) {
        return Error{
            fmt::format("crashed while loading ({})", signalDescription(WTERMSIG(wait_status)))};
    }
    uint32_t length = 0;
    if (answer.size() >= sizeof(length)) {
        std::memcpy(&length, answer.data(), sizeof(length));
    }
    if (answer.size() < sizeof(length) || length == 0 || answer.size() - sizeof(length) < length) {
        // A module's constructor may call exit() itself.
        return Error{fmt::format("exited with status {} while loading",
                                 WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : -1)};
    }
    return parseAnswer(std::string_view(answer).substr(sizeof(length), length));
}

}  // namespace canopy
