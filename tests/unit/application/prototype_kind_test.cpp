// Application processes for real: the test process plays main (a
// ProcessManager that booted the prototype kind), a small kind named
// "router" asks it for workers as the router does, and the workers are real
// programs and a real fixture module.

#include "core/application/prototype_kind.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/application/application_supervisor.h"
#include "core/base/process_title.h"
#include "core/base/unique_fd.h"
#include "core/discovery/discovery.h"
#include "core/process/child_context.h"
#include "core/process/credentials.h"
#include "core/process/main_context.h"
#include "core/process/process.h"
#include "core/process/process_manager.h"

namespace canopy {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// Between the test and its router stand-in; main does not know these types.
constexpr auto kReport = static_cast<MessageType>(1000);
constexpr auto kForward = static_cast<MessageType>(1001);

// The router stand-in: main sends it kForward "<type> <tag>\n<payload>" with
// descriptors; it sends main a message of that type with them, as the router
// does, and for a start request reports "<tag> <reply>" once main answered.
void forwardToMain(ChildContext& child, std::string_view, Message& message) {
    size_t newline = message.payload.find('\n');
    std::string header = message.payload.substr(0, newline);
    std::string payload = message.payload.substr(newline + 1);
    size_t space = header.find(' ');
    auto type = static_cast<MessageType>(std::stoul(header.substr(0, space)));
    std::string tag = header.substr(space + 1);
    std::vector<int> fds;
    for (const auto& fd : message.fds) {
        fds.push_back(fd.get());
    }
    if (type != MessageType::AppProcessStart) {
        (void)child.mainPort().send(type, payload, fds);
        return;
    }
    child.request(
        "main", type, payload, 10s,
        [&child, tag](Result<Message> reply) {
            std::string text = reply ? reply->payload : "no reply: " + reply.error().message;
            (void)child.mainPort().send(kReport, tag + " " + text);
        },
        fds);
}

Result<ProcessState> setupReady(ChildContext&) {
    return ProcessState::Ready;
}
int serve(ChildContext& child) {
    return child.run();
}

constexpr std::array<ChildMessageHandler, 1> kStandInHandlers = {{{kForward, forwardToMain}}};
const ProcessKind kRouterStandIn = {
    .name = "router",
    .title = "canopy-test: router",
    .setup = setupReady,
    .start = serve,
    .handlers = kStandInHandlers,
};
// Same behaviour, another name: main must not take application requests
// from it.
const ProcessKind kImposterKind = {
    .name = "imposter",
    .title = "canopy-test: imposter",
    .boot = BootRole::OnDemand,
    .setup = setupReady,
    .start = serve,
    .handlers = kStandInHandlers,
};
constexpr std::array<const ProcessKind*, 2> kKinds = {&kRouterStandIn, &kPrototypeKind};

std::string readText(const fs::path& file) {
    std::ifstream in(file);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

std::string processTitle(pid_t pid) {
    std::string title = readText(fmt::format("/proc/{}/cmdline", pid));
    while (!title.empty() && title.back() == '\0') {
        title.pop_back();
    }
    std::replace(title.begin(), title.end(), '\0', ' ');
    return title;
}

pid_t parentOf(pid_t pid) {
    std::istringstream status(readText(fmt::format("/proc/{}/status", pid)));
    for (std::string line; std::getline(status, line);) {
        if (line.starts_with("PPid:")) {
            return static_cast<pid_t>(std::stol(line.substr(5)));
        }
    }
    return -1;
}

bool alive(pid_t pid) {
    // A zombie is dead for our purposes.
    std::string status = readText(fmt::format("/proc/{}/stat", pid));
    size_t close = status.rfind(')');
    return close != std::string::npos && close + 2 < status.size() && status[close + 2] != 'Z';
}

// What each open descriptor of `pid` refers to, by number.
std::map<int, std::string> openDescriptors(pid_t pid) {
    std::map<int, std::string> fds;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(fmt::format("/proc/{}/fd", pid), ec)) {
        fds[std::stoi(entry.path().filename().string())] = fs::read_symlink(entry.path(), ec);
    }
    return fds;
}

UniqueFd memfd(const char* name) {
    return UniqueFd(::memfd_create(name, MFD_CLOEXEC));
}

class ApplicationProcessesTest : public ::testing::Test {
  protected:
    ApplicationProcessesTest() : directory_(makeDirectory()), main_(io_, makeSettings()) {}

    void SetUp() override {
        captureLog();
        ASSERT_TRUE(kPrototypeKind.init(main_).ok());
        supervisor().onWorkerExit([this](const std::string&, pid_t pid, int wait_status) {
            worker_exits_[pid] = wait_status;
        });
        processes().onExit(
            [this](const ProcessKind&, pid_t pid, int wait_status) { exits_[pid] = wait_status; });
        processes().onUnhandledMessage([this](Process& sender, Message& message) {
            if (message.type == kReport) {
                size_t space = message.payload.find(' ');
                replies_[message.payload.substr(0, space)] = message.payload.substr(space + 1);
                return;
            }
            unhandled_.push_back(
                fmt::format("{} {}", sender.kind->name, messageTypeName(message.type)));
        });
        main_.modules().assign(discoverModules(CANOPY_FIXTURE_APP_MODULES_DIR, 5s).modules);
        ASSERT_NE(main_.modules().find("recorder"), nullptr);
        processes().boot(kKinds);
        ASSERT_TRUE(runUntil([&] { return readyProcessOf("router") != nullptr; }));
    }

    void TearDown() override {
        bool stopped = false;
        processes().stopAll(2s, [&] { stopped = true; });
        EXPECT_TRUE(runUntil([&] { return stopped; }, 5s));
        kPrototypeKind.shutdown(main_);
        restoreLog();
        if (HasFailure()) {
            std::cerr << "---- log ----\n"
                      << readText(directory_ / "canopy.log") << "-------------\n";
        }
        std::error_code ec;
        fs::remove_all(directory_, ec);
    }

    static fs::path makeDirectory() {
        char pattern[] = "/tmp/canopy-application-test-XXXXXX";
        fs::path directory = ::mkdtemp(pattern);
        // Workers run as nobody and write their reports here.
        fs::permissions(directory, fs::perms::all);
        return directory;
    }

    RuntimeSettings makeSettings() {
        RuntimeSettings settings;
        settings.state_dir = directory_;
        settings.tmp_dir = directory_;
        settings.modules_dir = CANOPY_FIXTURE_APP_MODULES_DIR;
        if (::geteuid() == 0) {
            // As canopyd --user nobody started by root.
            auto nobody = resolveCredentials("nobody", "");
            if (nobody) {
                settings.unprivileged = *nobody;
            }
        }
        return settings;
    }

    // Everyone's log lines (main's, the prototypes', the workers') land in
    // one file, as they would in canopyd's log.
    void captureLog() {
        saved_stderr_ = UniqueFd(::dup(STDERR_FILENO));
        UniqueFd log(::open((directory_ / "canopy.log").c_str(),
                            O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
        ::dup2(log.get(), STDERR_FILENO);
    }
    void restoreLog() {
        if (saved_stderr_) {
            ::dup2(saved_stderr_.get(), STDERR_FILENO);
            saved_stderr_.reset();
        }
    }
    std::string log() const { return readText(directory_ / "canopy.log"); }
    bool logHas(const std::string& text) const { return log().find(text) != std::string::npos; }

    ProcessManager& processes() { return main_.processes(); }
    ApplicationSupervisor& supervisor() {
        return *main_.kindState<ApplicationSupervisor>(kPrototypeKind.name);
    }

    bool runUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout = 5s) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (!done()) {
            if (std::chrono::steady_clock::now() > deadline) {
                return false;
            }
            io_.restart();
            io_.run_one_for(10ms);
        }
        return true;
    }

    Process* readyProcessOf(std::string_view kind) {
        for (Process* process : processes().processes()) {
            if (process->kind->name == kind && process->state == ProcessState::Ready) {
                return process;
            }
        }
        return nullptr;
    }
    std::vector<pid_t> prototypePids() {
        std::vector<pid_t> pids;
        for (Process* process : processes().processes()) {
            if (process->kind == &kPrototypeKind) {
                pids.push_back(process->pid);
            }
        }
        return pids;
    }

    static nlohmann::json startRequest(const std::string& app, nlohmann::json conf,
                                       std::vector<int> descriptors = {}, uint64_t generation = 1) {
        return {{"app", app},
                {"generation", generation},
                {"conf", std::move(conf)},
                {"attachment", "canopy-app=1 socket=3 test=" + app},
                {"descriptors", std::move(descriptors)}};
    }

    // Has `sender` (the router stand-in by default) send main `type`.
    void send(MessageType type, const std::string& tag, const nlohmann::json& payload,
              std::vector<int> fds = {}, std::string_view sender = "router") {
        Process* process = readyProcessOf(sender);
        ASSERT_NE(process, nullptr);
        ASSERT_TRUE(
            process->port
                .send(kForward,
                      fmt::format("{} {}\n{}", static_cast<unsigned>(type), tag, payload.dump()),
                      fds)
                .ok());
    }
    void start(const std::string& tag, const nlohmann::json& request, std::vector<int> fds = {}) {
        send(MessageType::AppProcessStart, tag, request, std::move(fds));
    }

    // The reply to the start request `tag`; null when none came in time.
    nlohmann::json awaitReply(const std::string& tag) {
        if (!runUntil([&] { return replies_.contains(tag); })) {
            return nullptr;
        }
        return nlohmann::json::parse(replies_[tag], nullptr, false);
    }
    pid_t awaitWorker(const std::string& tag) {
        auto reply = awaitReply(tag);
        EXPECT_TRUE(reply.is_object() && reply.contains("pid")) << tag << ": " << reply.dump();
        return reply.is_object() && reply.contains("pid") ? reply["pid"].get<pid_t>() : -1;
    }
    std::string awaitError(const std::string& tag) {
        auto reply = awaitReply(tag);
        EXPECT_TRUE(reply.is_object() && reply.contains("error")) << tag << ": " << reply.dump();
        return reply.is_object() && reply.contains("error") ? reply["error"].get<std::string>()
                                                            : std::string();
    }

    nlohmann::json sleeper(const std::string& seconds = "30") {
        return {{"type", "external"}, {"executable", "/bin/sleep"}, {"arguments", {seconds}}};
    }

    fs::path directory_;
    boost::asio::io_context io_;
    MainContext main_;
    UniqueFd saved_stderr_;
    std::map<std::string, std::string> replies_;
    std::vector<std::string> unhandled_;
    std::map<pid_t, int> exits_;
    std::map<pid_t, int> worker_exits_;
};

TEST_F(ApplicationProcessesTest,
       ExternalWorkerGetsExactlyItsDescriptorsUserDirectoryAndEnvironment) {
    if (::geteuid() != 0) {
        GTEST_SKIP() << "switching to nobody needs root";
    }
    fs::path work = directory_ / "work";
    fs::create_directory(work);
    fs::path report = directory_ / "report";
    std::string script = fmt::format(
        "d={0}; {{ echo \"pid=$$\"; echo \"init=$CANOPY_APP_INIT\"; echo \"uid=$(id -u)\"; "
        "echo \"pwd=$(pwd)\"; echo \"greeting=$GREETING\"; }} > $d/report.tmp; "
        "echo to-stdout; echo to-stderr >&2; mv $d/report.tmp $d/report; exec /bin/sleep 30",
        directory_.string());
    nlohmann::json conf = {{"type", "external"},
                           {"executable", "/bin/sh"},
                           {"arguments", {"-c", script}},
                           {"user", "nobody"},
                           {"working_directory", work.string()},
                           {"environment", {{"GREETING", "hello"}}},
                           {"stdout", (directory_ / "out.log").string()},
                           {"stderr", (directory_ / "err.log").string()}};
    // The targets cross: b must land where a sits in the prototype, and so on.
    UniqueFd a = memfd("canopy-a");
    UniqueFd b = memfd("canopy-b");
    UniqueFd c = memfd("canopy-c");
    start("worker", startRequest("shell", conf, {9, 3, 5}), {a.get(), b.get(), c.get()});

    pid_t worker = awaitWorker("worker");
    ASSERT_TRUE(runUntil([&] { return fs::exists(report); })) << readText(directory_ / "err.log");
    std::string facts = readText(report);
    EXPECT_NE(facts.find(fmt::format("pid={}\n", worker)), std::string::npos) << facts;
    EXPECT_NE(facts.find("init=canopy-app=1 socket=3 test=shell\n"), std::string::npos) << facts;
    EXPECT_NE(facts.find("uid=65534\n"), std::string::npos) << facts;
    EXPECT_NE(facts.find("pwd=" + work.string() + "\n"), std::string::npos) << facts;
    EXPECT_NE(facts.find("greeting=hello\n"), std::string::npos) << facts;

    // The shell juggles descriptors around its own redirections; sleep, which
    // it became, holds exactly what the worker was given.
    auto fds = openDescriptors(worker);
    std::set<int> numbers;
    for (const auto& [number, target] : fds) {
        numbers.insert(number);
    }
    EXPECT_EQ(numbers, (std::set<int>{0, 1, 2, 3, 5, 9}));
    EXPECT_EQ(fds[9], "/memfd:canopy-a (deleted)");
    EXPECT_EQ(fds[3], "/memfd:canopy-b (deleted)");
    EXPECT_EQ(fds[5], "/memfd:canopy-c (deleted)");
    EXPECT_EQ(fds[1], (directory_ / "out.log").string());
    EXPECT_EQ(fds[2], (directory_ / "err.log").string());

    EXPECT_EQ(readText(directory_ / "out.log"), "to-stdout\n");
    EXPECT_EQ(readText(directory_ / "err.log"), "to-stderr\n");
    EXPECT_TRUE(logHas("\"shell\" prototype started"));
    EXPECT_TRUE(logHas("\"shell\" application started"));

    ::kill(worker, SIGTERM);
    ASSERT_TRUE(runUntil([&] { return worker_exits_.contains(worker); }));
    EXPECT_EQ(WTERMSIG(worker_exits_[worker]), SIGTERM);
    EXPECT_TRUE(logHas(fmt::format("app process {} exited on signal 15", worker)));
    EXPECT_TRUE(supervisor().workers("shell").empty());
}

TEST_F(ApplicationProcessesTest, ModuleWorkerRunsStartAndItsExitCodeIsReported) {
    fs::path setup_file = directory_ / "setup";
    fs::path start_file = directory_ / "start";
    nlohmann::json conf = {{"type", "recorder"},
                           {"working_directory", directory_.string()},
                           {"environment",
                            {{"RECORDER_SETUP_FILE", setup_file.string()},
                             {"RECORDER_START_FILE", start_file.string()},
                             {"RECORDER_HOLD_FD", "3"}}}};
    int hold[2];
    ASSERT_EQ(::pipe2(hold, O_CLOEXEC), 0);
    UniqueFd hold_read(hold[0]);
    UniqueFd hold_write(hold[1]);
    start("module", startRequest("mod", conf, {3}), {hold_read.get()});
    hold_read.reset();

    pid_t worker = awaitWorker("module");
    ASSERT_TRUE(runUntil([&] { return readText(start_file).ends_with("\n"); }));
    std::vector<pid_t> prototypes = prototypePids();
    ASSERT_EQ(prototypes.size(), 1U);
    pid_t prototype = prototypes.front();

    // setup() ran once, in the prototype, before privileges were dropped.
    std::string setup = readText(setup_file);
    EXPECT_EQ(
        setup.find(fmt::format("setup app=mod pid={} uid={} conf={{", prototype, ::geteuid())), 0U)
        << setup;
    EXPECT_NE(setup.find("\"type\":\"recorder\""), std::string::npos) << setup;
    // start() ran in the worker with the daemon's user, directory and attachment.
    uid_t expected_uid = ::geteuid() == 0 ? 65534 : ::geteuid();
    EXPECT_EQ(
        readText(start_file),
        fmt::format("start app=mod pid={} uid={} cwd={} init=canopy-app=1 socket=3 test=mod\n",
                    worker, expected_uid, directory_.string()));
    EXPECT_EQ(processTitle(prototype), "canopy: \"mod\" prototype");
    EXPECT_EQ(processTitle(worker), "canopy: \"mod\" application");
    EXPECT_EQ(parentOf(worker), prototype);
    EXPECT_EQ(supervisor().workers("mod"), std::vector<pid_t>{worker});

    hold_write.reset();  // start() returns 3
    ASSERT_TRUE(runUntil([&] { return worker_exits_.contains(worker); }));
    EXPECT_TRUE(WIFEXITED(worker_exits_[worker]));
    EXPECT_EQ(WEXITSTATUS(worker_exits_[worker]), 3);
    EXPECT_TRUE(logHas(fmt::format("app process {} exited with code 3", worker)));
    EXPECT_TRUE(logHas("\"mod\": recorder set up"));
    EXPECT_TRUE(logHas("\"mod\": recorder started"));
    EXPECT_TRUE(supervisor().workers("mod").empty());
}

TEST_F(ApplicationProcessesTest, OnePrototypePerApplicationServesParallelStarts) {
    // All sent before main answers any: the first starts the prototype, the
    // others wait for it.
    for (const char* tag : {"a1", "a2", "a3"}) {
        start(tag, startRequest("alpha", sleeper()));
    }
    start("b1", startRequest("beta", sleeper()));
    pid_t a1 = awaitWorker("a1");
    pid_t a2 = awaitWorker("a2");
    pid_t a3 = awaitWorker("a3");
    pid_t b1 = awaitWorker("b1");

    EXPECT_EQ(prototypePids().size(), 2U);
    pid_t alpha_prototype = parentOf(a1);
    EXPECT_EQ(parentOf(a2), alpha_prototype);
    EXPECT_EQ(parentOf(a3), alpha_prototype);
    EXPECT_NE(parentOf(b1), alpha_prototype);
    EXPECT_EQ(processTitle(alpha_prototype), "canopy: \"alpha\" prototype");
    EXPECT_EQ(processTitle(parentOf(b1)), "canopy: \"beta\" prototype");
    EXPECT_EQ((std::set<pid_t>{a1, a2, a3}.size()), 3U);
    auto alpha_workers = supervisor().workers("alpha");
    EXPECT_EQ(std::set<pid_t>(alpha_workers.begin(), alpha_workers.end()),
              (std::set<pid_t>{a1, a2, a3}));

    // A later start of the same generation reuses the running prototype; a
    // new generation gets its own.
    start("a4", startRequest("alpha", sleeper()));
    EXPECT_EQ(parentOf(awaitWorker("a4")), alpha_prototype);
    start("a-next", startRequest("alpha", sleeper(), {}, 2));
    pid_t next = awaitWorker("a-next");
    EXPECT_NE(parentOf(next), alpha_prototype);
    EXPECT_EQ(prototypePids().size(), 3U);
}

TEST_F(ApplicationProcessesTest, FailuresAreAnsweredWithTheirReason) {
    { std::ofstream(directory_ / "not-executable") << "#!/bin/sh\n"; }
    fs::permissions(directory_ / "not-executable", fs::perms::owner_read | fs::perms::owner_write);
    auto external = [](nlohmann::json extra) {
        nlohmann::json conf = {{"type", "external"}, {"executable", "/bin/true"}};
        conf.update(extra);
        return conf;
    };
    struct Case {
        std::string app;
        nlohmann::json conf;
        std::string reason;
    };
    std::vector<Case> cases = {
        {"cobol", {{"type", "cobol"}}, "no module is installed for the application type \"cobol\""},
        {"missing", external({{"executable", "/nonexistent/program"}}),
         "the executable \"/nonexistent/program\" cannot be found: No such file or directory"},
        {"relative",
         external({{"executable", "bin/app"}, {"working_directory", directory_.string()}}),
         "the executable \"" + (directory_ / "bin/app").string() + "\" cannot be found"},
        {"not-executable", external({{"executable", (directory_ / "not-executable").string()}}),
         "the executable \"" + (directory_ / "not-executable").string() + "\" is not executable"},
        {"failing-module",
         {{"type", "failing"}},
         "the failing module could not set the application up: cannot import the callable "
         "\"wsgi:app\""},
        {"unknown-user", external({{"user", "canopy-no-such-user"}}),
         "user \"canopy-no-such-user\" not found"},
        {"unknown-group", external({{"group", "canopy-no-such-group"}}),
         "group \"canopy-no-such-group\" not found"},
        {"no-directory", external({{"working_directory", "/nonexistent/dir"}}),
         "cannot change to the working directory \"/nonexistent/dir\": No such file or directory"},
        {"no-stdout", external({{"stdout", "/nonexistent/dir/out.log"}}),
         "cannot open the stdout file \"/nonexistent/dir/out.log\": No such file or directory"},
        {"dying-module",
         {{"type", "dying"}},
         "the application's prototype process was killed by signal 9"},
    };
    if (::geteuid() != 0) {
        // Not root: only the daemon's own user is possible, whatever it is called.
        cases.erase(cases.begin() + 5, cases.begin() + 7);
    }
    for (const auto& failure : cases) {
        // Two requests each, both waiting for the prototype: both are answered.
        start(failure.app + "#1", startRequest(failure.app, failure.conf));
        start(failure.app + "#2", startRequest(failure.app, failure.conf));
    }
    for (const auto& failure : cases) {
        for (const char* suffix : {"#1", "#2"}) {
            std::string error = awaitError(failure.app + suffix);
            EXPECT_NE(error.find(failure.reason), std::string::npos)
                << failure.app << ": " << error;
        }
        EXPECT_TRUE(logHas(fmt::format("cannot start a process of application \"{}\": {}",
                                       failure.app, failure.reason)))
            << failure.app;
    }
    EXPECT_TRUE(runUntil([&] { return prototypePids().empty(); }));
    // A failed generation is not remembered: a corrected retry starts afresh.
    start("retry", startRequest("missing", sleeper()));
    EXPECT_GT(awaitWorker("retry"), 0);
}

TEST_F(ApplicationProcessesTest, MalformedRequestsAreRefused) {
    UniqueFd descriptor = memfd("canopy-x");
    start("low", startRequest("low", sleeper(), {2}), {descriptor.get()});
    EXPECT_NE(awaitError("low").find("each descriptor number must be an integer from 3"),
              std::string::npos);
    start("count", startRequest("count", sleeper(), {3, 4}), {descriptor.get()});
    EXPECT_NE(awaitError("count").find("2 descriptor numbers for 1 descriptors"),
              std::string::npos);
    start("no-type", startRequest("no-type", {{"executable", "/bin/true"}}));
    EXPECT_EQ(awaitError("no-type"), "application \"no-type\" has no \"type\"");
    EXPECT_TRUE(prototypePids().empty());
}

TEST_F(ApplicationProcessesTest, OnlyTheRouterMayAskForApplicationProcesses) {
    ASSERT_TRUE(processes().start(kImposterKind).ok());
    ASSERT_TRUE(runUntil([&] { return readyProcessOf("imposter") != nullptr; }));
    send(MessageType::AppProcessStart, "imposter", startRequest("sneaky", sleeper()), {},
         "imposter");
    send(MessageType::AppWorkerKill, "kill", {{"app", "sneaky"}, {"pid", 1}}, {}, "imposter");
    ASSERT_TRUE(runUntil([&] { return unhandled_.size() == 2; }));
    EXPECT_EQ(unhandled_[0], "imposter APP_PROCESS_START");
    EXPECT_EQ(unhandled_[1], "imposter APP_WORKER_KILL");
    EXPECT_TRUE(prototypePids().empty());
}

TEST_F(ApplicationProcessesTest, KillHitsOnlyKnownWorkersOfTheNamedApplication) {
    start("worker", startRequest("sleepy", sleeper()));
    pid_t worker = awaitWorker("worker");
    pid_t stranger = ::fork();
    ASSERT_GE(stranger, 0);
    if (stranger == 0) {
        ::execl("/bin/sleep", "sleep", "30", nullptr);
        ::_exit(127);
    }

    send(MessageType::AppWorkerKill, "", {{"app", "other"}, {"pid", worker}});
    send(MessageType::AppWorkerKill, "", {{"app", "sleepy"}, {"pid", stranger}});
    EXPECT_TRUE(runUntil([&] {
        return logHas(fmt::format(
                   "not killing process {}: it is not a live process of application \"other\"",
                   worker)) &&
               logHas(fmt::format(
                   "not killing process {}: it is not a live process of application \"sleepy\"",
                   stranger));
    }));
    EXPECT_TRUE(alive(worker));
    EXPECT_TRUE(alive(stranger));
    ::kill(stranger, SIGKILL);
    ::waitpid(stranger, nullptr, 0);

    send(MessageType::AppWorkerKill, "", {{"app", "sleepy"}, {"pid", worker}});
    ASSERT_TRUE(runUntil([&] { return worker_exits_.contains(worker); }));
    EXPECT_TRUE(WIFSIGNALED(worker_exits_[worker]));
    EXPECT_EQ(WTERMSIG(worker_exits_[worker]), SIGKILL);
    EXPECT_TRUE(logHas(fmt::format("app process {} exited on signal 9", worker)));
    // Forgotten once reported: a second kill (of a pid that may be reused) is refused.
    send(MessageType::AppWorkerKill, "", {{"app", "sleepy"}, {"pid", worker}});
    EXPECT_TRUE(runUntil([&] {
        return logHas(fmt::format(
            "not killing process {}: it is not a live process of application \"sleepy\"", worker));
    }));
}

TEST_F(ApplicationProcessesTest, RetiredGenerationEndsOnceItsWorkersExited) {
    int hold[2];
    ASSERT_EQ(::pipe2(hold, O_CLOEXEC), 0);
    UniqueFd hold_read(hold[0]);
    UniqueFd hold_write(hold[1]);
    nlohmann::json waits = {{"type", "external"},
                            {"executable", "/bin/sh"},
                            {"arguments", {"-c", "read line <&3; exit 0"}}};
    start("worker", startRequest("blog", waits, {3}), {hold_read.get()});
    hold_read.reset();
    pid_t worker = awaitWorker("worker");
    pid_t prototype = parentOf(worker);

    send(MessageType::AppRetire, "", {{"app", "blog"}, {"generation", 1}});
    start("late", startRequest("blog", sleeper()));
    EXPECT_EQ(awaitError("late"), "generation 1 of the application was retired");
    ASSERT_TRUE(runUntil([&] { return logHas("\"blog\" prototype retired"); }));
    // Retiring does not kill: the worker goes when the router tells it to.
    EXPECT_TRUE(alive(worker));
    EXPECT_TRUE(alive(prototype));

    hold_write.reset();
    ASSERT_TRUE(runUntil([&] { return exits_.contains(prototype); }));
    EXPECT_TRUE(WIFEXITED(exits_[prototype]));
    EXPECT_EQ(WEXITSTATUS(exits_[prototype]), 0);
    EXPECT_TRUE(worker_exits_.contains(worker));

    // The next generation starts its own prototype.
    start("next", startRequest("blog", sleeper(), {}, 2));
    EXPECT_GT(awaitWorker("next"), 0);
}

TEST_F(ApplicationProcessesTest, RetiredGenerationWithoutWorkersEndsAtOnce) {
    start("worker", startRequest("brief", {{"type", "external"}, {"executable", "/bin/true"}}));
    pid_t worker = awaitWorker("worker");
    ASSERT_TRUE(runUntil([&] { return worker_exits_.contains(worker); }));
    ASSERT_EQ(prototypePids().size(), 1U);
    pid_t prototype = prototypePids().front();
    send(MessageType::AppRetire, "", {{"app", "brief"}, {"generation", 1}});
    ASSERT_TRUE(runUntil([&] { return exits_.contains(prototype); }));
    EXPECT_EQ(WEXITSTATUS(exits_[prototype]), 0);
}

TEST_F(ApplicationProcessesTest, StoppingTheDaemonEndsPrototypesAndWorkers) {
    start("a", startRequest("first", sleeper()));
    start("b", startRequest("first", sleeper()));
    start("c", startRequest("second", sleeper()));
    std::vector<pid_t> workers = {awaitWorker("a"), awaitWorker("b"), awaitWorker("c")};
    std::vector<pid_t> prototypes = prototypePids();
    ASSERT_EQ(prototypes.size(), 2U);

    auto began = std::chrono::steady_clock::now();
    bool stopped = false;
    processes().stopAll(2s, [&] { stopped = true; });
    ASSERT_TRUE(runUntil([&] { return stopped; }, 5s));
    EXPECT_LT(std::chrono::steady_clock::now() - began, 2s);
    for (pid_t prototype : prototypes) {
        ASSERT_TRUE(exits_.contains(prototype));
        EXPECT_TRUE(WIFEXITED(exits_[prototype]));
        EXPECT_EQ(WEXITSTATUS(exits_[prototype]), 0);
    }
    for (pid_t worker : workers) {
        EXPECT_FALSE(fs::exists(fmt::format("/proc/{}", worker))) << worker;
        ASSERT_TRUE(worker_exits_.contains(worker)) << worker;
        EXPECT_EQ(WTERMSIG(worker_exits_[worker]), SIGTERM);
    }
    // Nothing is restarted.
    EXPECT_TRUE(prototypePids().empty());
}

TEST_F(ApplicationProcessesTest, WorkersOfADeadPrototypeAreLeftToTheRouterAndReapedByMain) {
    // As canopyd does: main is the subreaper of its descendants.
    ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    processes().reapOrphans(true);
    start("worker", startRequest("orphaned", sleeper()));
    pid_t worker = awaitWorker("worker");
    pid_t prototype = parentOf(worker);
    ::kill(prototype, SIGKILL);
    ASSERT_TRUE(runUntil([&] { return exits_.contains(prototype); }));
    EXPECT_TRUE(
        logHas("the prototype of application \"orphaned\" was killed by signal 9; its 1 "
               "process(es) are left to the router"));
    ASSERT_TRUE(runUntil([&] { return parentOf(worker) == ::getpid(); }));
    EXPECT_TRUE(alive(worker));

    // Not restarted by main; the router's next start brings a new one.
    EXPECT_TRUE(prototypePids().empty());
    start("again", startRequest("orphaned", sleeper()));
    pid_t replacement = awaitWorker("again");
    EXPECT_NE(parentOf(replacement), prototype);

    // The orphan is still a known worker, and its end is reaped and reported.
    send(MessageType::AppWorkerKill, "", {{"app", "orphaned"}, {"pid", worker}});
    ASSERT_TRUE(runUntil([&] { return worker_exits_.contains(worker); }));
    EXPECT_EQ(WTERMSIG(worker_exits_[worker]), SIGKILL);
    EXPECT_TRUE(logHas(fmt::format("app process {} exited on signal 9", worker)));
    EXPECT_FALSE(fs::exists(fmt::format("/proc/{}", worker)));
    ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 0), 0);
}

TEST_F(ApplicationProcessesTest, ARouterThatExitsRetiresItsGenerations) {
    start("worker", startRequest("abandoned", sleeper("0")));
    pid_t worker = awaitWorker("worker");
    ASSERT_TRUE(runUntil([&] { return worker_exits_.contains(worker); }));
    pid_t prototype = prototypePids().front();
    ::kill(readyProcessOf("router")->pid, SIGKILL);
    ASSERT_TRUE(runUntil([&] { return exits_.contains(prototype); }));
    EXPECT_EQ(WEXITSTATUS(exits_[prototype]), 0);
}

}  // namespace
}  // namespace canopy

int main(int argc, char** argv) {
    // Titles are visible in /proc/<pid>/cmdline only over argv's memory.
    canopy::initProcessTitle(argc, argv);
    ::testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
}
