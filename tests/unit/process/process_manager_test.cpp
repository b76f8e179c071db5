// The process model of the seed, driven through ProcessManager with small
// test kinds: the test process plays main.

#include "core/process/process_manager.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <array>
#include <csignal>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/controller/controller_kind.h"
#include "core/process/child_context.h"
#include "core/router/router_kind.h"

namespace canopy {
namespace {

using namespace std::chrono_literals;

// Test kinds report to the test through a message type main does not know.
constexpr auto kReport = static_cast<MessageType>(1000);
constexpr auto kGo = static_cast<MessageType>(1001);
constexpr rlim_t kLimitSetByMain = 77;

void report(ChildContext& child, const std::string& text) {
    (void)child.mainPort().send(kReport, text);
}

Result<ProcessState> setupReady(ChildContext&) {
    return ProcessState::Ready;
}
Result<ProcessState> setupCreated(ChildContext&) {
    return ProcessState::Created;
}
int serve(ChildContext& child) {
    return child.run();
}

// A kind whose setup cannot finish on its own: main lowers its open-file
// limit from outside, as it would write uid/gid maps for a user namespace.
Result<void> lowerLimitFromMain(MainContext&, Process& process) {
    rlimit limit{};
    if (::prlimit(process.pid, RLIMIT_NOFILE, nullptr, &limit) != 0) {
        return systemError("prlimit(get)");
    }
    limit.rlim_cur = kLimitSetByMain;
    if (::prlimit(process.pid, RLIMIT_NOFILE, &limit, nullptr) != 0) {
        return systemError("prlimit(set)");
    }
    return {};
}
int reportLimit(ChildContext& child) {
    rlimit limit{};
    ::getrlimit(RLIMIT_NOFILE, &limit);
    report(child, std::to_string(limit.rlim_cur));
    return child.run();
}
const ProcessKind kExternalSetupKind = {
    .name = "external",
    .title = "canopy-test: external",
    .setup = setupCreated,
    .external_setup = lowerLimitFromMain,
    .start = reportLimit,
};

Result<void> refuseFromMain(MainContext&, Process&) {
    return Error{"no uid map for you"};
}
const ProcessKind kRefusedKind = {
    .name = "refused",
    .title = "canopy-test: refused",
    .setup = setupCreated,
    .external_setup = refuseFromMain,
    .start = serve,
};

Result<ProcessState> setupFails(ChildContext&) {
    return Error{"the module would not load"};
}
const ProcessKind kSetupFailsKind = {
    .name = "broken",
    .title = "canopy-test: broken",
    .setup = setupFails,
    .start = serve,
};

const ProcessKind kServiceKind = {
    .name = "service",
    .title = "canopy-test: service",
    .setup = setupReady,
    .start = serve,
};

const ProcessKind kRespawnedKind = {
    .name = "respawned",
    .title = "canopy-test: respawned",
    .restart = RestartPolicy::Always,
    .setup = setupReady,
    .start = serve,
};

// Two peers: on GO from main, the asker pings the answerer over the port
// main connected them with and reports the answer.
void askPeer(ChildContext& child, std::string_view, Message&) {
    Port* answerer = child.peer("answerer");
    if (answerer == nullptr) {
        report(child, "no peer");
        return;
    }
    (void)answerer->send(MessageType::Ping, "marco", {}, 5);
    auto answer = answerer->receiveWait(5s);
    report(child, answer ? std::string(messageTypeName(answer->type)) + ":" + answer->payload
                         : "error: " + answer.error().message);
}
constexpr std::array<ChildMessageHandler, 1> kAskerHandlers = {{{kGo, askPeer}}};
constexpr std::array<std::string_view, 1> kAskerPeers = {"answerer"};
const ProcessKind kAskerKind = {
    .name = "asker",
    .title = "canopy-test: asker",
    .setup = setupReady,
    .start = serve,
    .handlers = kAskerHandlers,
    .peers = kAskerPeers,
};
const ProcessKind kAnswererKind = {
    .name = "answerer",
    .title = "canopy-test: answerer",
    .setup = setupReady,
    .start = serve,
};

int reportAndExit(ChildContext& child) {
    report(child, "one-shot done");
    return 0;
}
const ProcessKind kOneShotKind = {
    .name = "one-shot",
    .title = "canopy-test: one-shot",
    .boot = BootRole::RunToCompletion,
    .setup = setupReady,
    .start = reportAndExit,
};
const ProcessKind kOnDemandKind = {
    .name = "on-demand",
    .title = "canopy-test: on-demand",
    .boot = BootRole::OnDemand,
    .setup = setupReady,
    .start = serve,
};

void ignoreQuit(ChildContext&) {}
int serveIgnoringQuit(ChildContext& child) {
    child.setQuitHandler([] {});
    return child.run();
}
constexpr std::array<SignalAction, 1> kStubbornSignals = {{{SIGTERM, ignoreQuit}}};
const ProcessKind kStubbornKind = {
    .name = "stubborn",
    .title = "canopy-test: stubborn",
    .setup = setupReady,
    .start = serveIgnoringQuit,
    .signals = kStubbornSignals,
};

// A kind that offers main a service to kinds named "asker": main answers
// its kGo with a Reply that says who asked.
void answerAsker(MainContext&, Process& sender, Message& message) {
    (void)sender.port.send(MessageType::Reply, "served " + std::string(sender.kind->name), {},
                           message.stream);
}
constexpr std::array<MainServiceHandler, 1> kProviderServices = {{{kGo, "asker", answerAsker}}};
const ProcessKind kProviderKind = {
    .name = "provider",
    .title = "canopy-test: provider",
    .boot = BootRole::OnDemand,
    .setup = setupReady,
    .start = serve,
    .main_services = kProviderServices,
};
// On kGo from main, sends kGo to main and reports the answer.
void askMain(ChildContext& child, std::string_view from, Message&) {
    if (from != "main") {
        return;
    }
    child.request("main", kGo, "", 5s, [&child](Result<Message> reply) {
        report(child, reply ? reply->payload : "error: " + reply.error().message);
    });
}
constexpr std::array<ChildMessageHandler, 1> kClientHandlers = {{{kGo, askMain}}};
const ProcessKind kClientKind = {
    .name = "asker",
    .title = "canopy-test: client",
    .setup = setupReady,
    .start = serve,
    .handlers = kClientHandlers,
};
const ProcessKind kStrangerKind = {
    .name = "stranger",
    .title = "canopy-test: stranger",
    .setup = setupReady,
    .start = serve,
    .handlers = kClientHandlers,
};

// Main's hooks record what they saw, and prefork passes the start data on.
std::vector<std::string> hook_calls;
Result<void> tagData(MainContext&, Process& process) {
    process.data = "prepared " + process.data;
    return {};
}
int reportData(ChildContext& child) {
    report(child, child.data());
    return child.run();
}
void recordReady(MainContext&, Process& process) {
    hook_calls.push_back("ready " + std::to_string(process.pid));
}
void recordExited(MainContext&, Process& process, int wait_status) {
    hook_calls.push_back("exited " + std::to_string(process.pid) + " " +
                         std::to_string(wait_status) + " " + process.setup_error);
}
const ProcessKind kHookedKind = {
    .name = "hooked",
    .title = "canopy-test: hooked",
    .prefork = tagData,
    .setup = setupReady,
    .start = reportData,
    .ready = recordReady,
    .exited = recordExited,
};
const ProcessKind kHookedBrokenKind = {
    .name = "hooked-broken",
    .title = "canopy-test: hooked-broken",
    .setup = setupFails,
    .start = serve,
    .exited = recordExited,
};

struct Event {
    std::string kind;
    pid_t pid;
    std::string what;  // a state name, "exit <status>" or "report <text>"
};

class ProcessManagerTest : public ::testing::Test {
  protected:
    ProcessManagerTest() : main_(io_, makeSettings()) {
        processes().onStateChange([this](const Process& process, ProcessState state) {
            events_.push_back({std::string(process.kind->name), process.pid,
                               std::string(processStateName(state))});
        });
        processes().onExit([this](const ProcessKind& kind, pid_t pid, int status) {
            exits_.push_back({std::string(kind.name), pid, std::to_string(status)});
            last_status_[std::string(kind.name)] = status;
        });
        processes().onUnhandledMessage([this](Process& process, Message& message) {
            std::string what = message.type == kReport
                                   ? "report " + message.payload
                                   : "message " + std::string(messageTypeName(message.type)) + " " +
                                         message.payload;
            events_.push_back({std::string(process.kind->name), process.pid, what});
        });
    }

    ~ProcessManagerTest() override {
        std::error_code ec;
        std::filesystem::remove_all(directory_, ec);
    }

    RuntimeSettings makeSettings() {
        char pattern[] = "/tmp/canopy-process-test-XXXXXX";
        directory_ = ::mkdtemp(pattern);
        RuntimeSettings settings;
        settings.state_dir = directory_;
        settings.tmp_dir = directory_;
        settings.modules_dir = directory_;
        settings.control_address = "unix:" + (directory_ / "control.sock").string();
        return settings;
    }

    ProcessManager& processes() { return main_.processes(); }

    bool runUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout = 10s) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (!done()) {
            if (std::chrono::steady_clock::now() > deadline) {
                return false;
            }
            io_.restart();
            io_.run_one_for(20ms);
        }
        return true;
    }

    bool sawEvent(std::string_view kind, std::string_view what) const {
        for (const auto& event : events_) {
            if (event.kind == kind && event.what == what) {
                return true;
            }
        }
        return false;
    }

    std::vector<std::string> eventsOf(pid_t pid) const {
        std::vector<std::string> whats;
        for (const auto& event : events_) {
            if (event.pid == pid) {
                whats.push_back(event.what);
            }
        }
        return whats;
    }

    Process* readyProcessOf(std::string_view kind) {
        for (Process* process : main_.processes().processes()) {
            if (process->kind->name == kind && process->state == ProcessState::Ready) {
                return process;
            }
        }
        return nullptr;
    }

    std::filesystem::path directory_;
    boost::asio::io_context io_;
    MainContext main_;
    std::vector<Event> events_;
    std::vector<Event> exits_;
    std::map<std::string, int> last_status_;
};

TEST_F(ProcessManagerTest, ExternalSetupRunsInMainBetweenCreatedAndReady) {
    auto started = processes().start(kExternalSetupKind);
    ASSERT_TRUE(started.ok()) << started.error().message;
    pid_t pid = (*started)->pid;

    ASSERT_TRUE(runUntil([&] { return sawEvent("external", "report 77"); }));
    // The child reports the limit main set, so main's external setup happened
    // after the child's setup and before its start.
    EXPECT_EQ(eventsOf(pid),
              (std::vector<std::string>{"CREATING", "CREATED", "READY", "report 77"}));
}

TEST_F(ProcessManagerTest, RefusedExternalSetupEndsTheChildBeforeReady) {
    auto started = processes().start(kRefusedKind);
    ASSERT_TRUE(started.ok());
    pid_t pid = (*started)->pid;
    ASSERT_TRUE(runUntil([&] { return last_status_.contains("refused"); }));
    EXPECT_EQ(eventsOf(pid), (std::vector<std::string>{"CREATING", "CREATED", "EXITED"}));
    EXPECT_TRUE(WIFEXITED(last_status_["refused"]));
    EXPECT_EQ(WEXITSTATUS(last_status_["refused"]), 1);
}

TEST_F(ProcessManagerTest, FailedSetupExitsWithoutBecomingReady) {
    auto started = processes().start(kSetupFailsKind);
    ASSERT_TRUE(started.ok());
    pid_t pid = (*started)->pid;
    ASSERT_TRUE(runUntil([&] { return last_status_.contains("broken"); }));
    EXPECT_EQ(eventsOf(pid), (std::vector<std::string>{"CREATING", "EXITED"}));
    EXPECT_EQ(WEXITSTATUS(last_status_["broken"]), 1);
}

TEST_F(ProcessManagerTest, ReadyProcessAnswersPingOnItsPort) {
    auto started = processes().start(kServiceKind);
    ASSERT_TRUE(started.ok());
    ASSERT_TRUE(runUntil([&] { return readyProcessOf("service") != nullptr; }));
    ASSERT_TRUE(readyProcessOf("service")->port.send(MessageType::Ping, "are you there").ok());
    EXPECT_TRUE(runUntil([&] { return sawEvent("service", "message PONG are you there"); }));
}

TEST_F(ProcessManagerTest, QuitStopsAProcessCleanly) {
    auto started = processes().start(kServiceKind);
    ASSERT_TRUE(started.ok());
    ASSERT_TRUE(runUntil([&] { return readyProcessOf("service") != nullptr; }));
    ASSERT_TRUE(readyProcessOf("service")->port.send(MessageType::Quit).ok());
    ASSERT_TRUE(runUntil([&] { return last_status_.contains("service"); }));
    EXPECT_TRUE(WIFEXITED(last_status_["service"]));
    EXPECT_EQ(WEXITSTATUS(last_status_["service"]), 0);
}

TEST_F(ProcessManagerTest, MainConnectsPeersAndReconnectsAReplacement) {
    ASSERT_TRUE(processes().start(kAnswererKind).ok());
    ASSERT_TRUE(processes().start(kAskerKind).ok());
    ASSERT_TRUE(runUntil([&] {
        return readyProcessOf("asker") != nullptr && readyProcessOf("answerer") != nullptr;
    }));
    ASSERT_TRUE(readyProcessOf("asker")->port.send(kGo).ok());
    ASSERT_TRUE(runUntil([&] { return sawEvent("asker", "report PONG:marco"); }));

    // The answerer dies; a new one is started and connected to the asker.
    pid_t first_answerer = readyProcessOf("answerer")->pid;
    ::kill(first_answerer, SIGKILL);
    ASSERT_TRUE(runUntil([&] { return last_status_.contains("answerer"); }));
    events_.clear();
    ASSERT_TRUE(processes().start(kAnswererKind).ok());
    ASSERT_TRUE(runUntil([&] { return readyProcessOf("answerer") != nullptr; }));
    ASSERT_TRUE(readyProcessOf("asker")->port.send(kGo).ok());
    EXPECT_TRUE(runUntil([&] { return sawEvent("asker", "report PONG:marco"); }));
}

TEST_F(ProcessManagerTest, KindWithRestartPolicyIsRespawned) {
    ASSERT_TRUE(processes().start(kRespawnedKind).ok());
    ASSERT_TRUE(runUntil([&] { return readyProcessOf("respawned") != nullptr; }));
    pid_t first = readyProcessOf("respawned")->pid;
    ::kill(first, SIGKILL);
    ASSERT_TRUE(runUntil([&] {
        Process* ready = readyProcessOf("respawned");
        return ready != nullptr && ready->pid != first;
    }));
    ASSERT_EQ(exits_.size(), 1U);
    EXPECT_TRUE(WIFSIGNALED(last_status_["respawned"]));
    EXPECT_EQ(WTERMSIG(last_status_["respawned"]), SIGKILL);
}

TEST_F(ProcessManagerTest, KindWithoutRestartPolicyStaysDown) {
    ASSERT_TRUE(processes().start(kServiceKind).ok());
    ASSERT_TRUE(runUntil([&] { return readyProcessOf("service") != nullptr; }));
    ::kill(readyProcessOf("service")->pid, SIGKILL);
    ASSERT_TRUE(runUntil([&] { return last_status_.contains("service"); }));
    // Give a restart, if one were wrongly scheduled, the time to happen.
    runUntil([] { return false; }, 300ms);
    EXPECT_TRUE(processes().processes().empty());
}

TEST_F(ProcessManagerTest, BootWaitsForRunToCompletionKindsAndSkipsOnDemandOnes) {
    std::array<const ProcessKind*, 3> table = {&kOneShotKind, &kOnDemandKind, &kServiceKind};
    bool booted = false;
    processes().boot(table, [&] { booted = true; });
    ASSERT_TRUE(runUntil([&] { return booted && readyProcessOf("service") != nullptr; }));

    // The one-shot kind reported and exited before the service was forked.
    size_t one_shot_exit = events_.size();
    size_t service_created = events_.size();
    for (size_t index = 0; index < events_.size(); ++index) {
        if (events_[index].kind == "one-shot" && events_[index].what == "EXITED") {
            one_shot_exit = index;
        }
        if (events_[index].kind == "service" && events_[index].what == "CREATING") {
            service_created = index;
        }
    }
    EXPECT_TRUE(sawEvent("one-shot", "report one-shot done"));
    EXPECT_LT(one_shot_exit, service_created);
    EXPECT_FALSE(sawEvent("on-demand", "CREATING"));
    EXPECT_EQ(WEXITSTATUS(last_status_["one-shot"]), 0);
}

TEST_F(ProcessManagerTest, StopAllQuitsEveryoneAndKillsWhoIgnoresIt) {
    ASSERT_TRUE(processes().start(kRespawnedKind).ok());
    ASSERT_TRUE(processes().start(kStubbornKind).ok());
    ASSERT_TRUE(runUntil([&] {
        return readyProcessOf("respawned") != nullptr && readyProcessOf("stubborn") != nullptr;
    }));
    bool stopped = false;
    processes().stopAll(300ms, [&] { stopped = true; });
    ASSERT_TRUE(runUntil([&] { return stopped; }));
    EXPECT_TRUE(processes().processes().empty());
    EXPECT_TRUE(WIFEXITED(last_status_["respawned"]));  // quit, and was not restarted
    EXPECT_TRUE(WIFSIGNALED(last_status_["stubborn"]));
    EXPECT_EQ(WTERMSIG(last_status_["stubborn"]), SIGKILL);
    EXPECT_FALSE(processes().start(kServiceKind).ok());
}

TEST_F(ProcessManagerTest, ControllerAndRouterStartAndAnswerPing) {
    ASSERT_TRUE(kControllerKind.init(main_).ok());
    ASSERT_TRUE(processes().start(kControllerKind).ok());
    ASSERT_TRUE(processes().start(kRouterKind).ok());
    ASSERT_TRUE(runUntil([&] {
        return readyProcessOf("controller") != nullptr && readyProcessOf("router") != nullptr;
    }));
    ASSERT_TRUE(readyProcessOf("controller")->port.send(MessageType::Ping, "c").ok());
    ASSERT_TRUE(readyProcessOf("router")->port.send(MessageType::Ping, "r").ok());
    EXPECT_TRUE(runUntil([&] {
        return sawEvent("controller", "message PONG c") && sawEvent("router", "message PONG r");
    }));
    bool stopped = false;
    processes().stopAll(2s, [&] { stopped = true; });
    ASSERT_TRUE(runUntil([&] { return stopped; }));
    EXPECT_EQ(WEXITSTATUS(last_status_["controller"]), 0);
    EXPECT_EQ(WEXITSTATUS(last_status_["router"]), 0);
    kControllerKind.shutdown(main_);
    EXPECT_FALSE(std::filesystem::exists(directory_ / "control.sock"));
}

TEST_F(ProcessManagerTest, StartDataReachesPreforkAndTheChild) {
    hook_calls.clear();
    auto started = processes().start(kHookedKind, "for blog");
    ASSERT_TRUE(started.ok());
    pid_t pid = (*started)->pid;
    ASSERT_TRUE(runUntil([&] { return sawEvent("hooked", "report prepared for blog"); }));
    EXPECT_EQ(hook_calls, std::vector<std::string>{"ready " + std::to_string(pid)});
    ::kill(pid, SIGKILL);
    ASSERT_TRUE(runUntil([&] { return hook_calls.size() == 2; }));
    EXPECT_EQ(hook_calls[1], "exited " + std::to_string(pid) + " " + std::to_string(SIGKILL) + " ");
}

TEST_F(ProcessManagerTest, ExitedHookLearnsWhySetupFailed) {
    hook_calls.clear();
    auto started = processes().start(kHookedBrokenKind);
    ASSERT_TRUE(started.ok());
    pid_t pid = (*started)->pid;
    ASSERT_TRUE(runUntil([&] { return !hook_calls.empty(); }));
    EXPECT_EQ(hook_calls[0], "exited " + std::to_string(pid) + " 256 the module would not load");
}

TEST_F(ProcessManagerTest, ServicesAreOfferedOnlyToTheKindTheyName) {
    std::array<const ProcessKind*, 3> table = {&kClientKind, &kStrangerKind, &kProviderKind};
    processes().boot(table);
    ASSERT_TRUE(runUntil([&] {
        return readyProcessOf("asker") != nullptr && readyProcessOf("stranger") != nullptr;
    }));
    EXPECT_FALSE(sawEvent("provider", "CREATING"));  // on demand: not needed to serve
    ASSERT_TRUE(readyProcessOf("asker")->port.send(kGo).ok());
    ASSERT_TRUE(readyProcessOf("stranger")->port.send(kGo).ok());
    EXPECT_TRUE(runUntil([&] {
        return sawEvent("asker", "report served asker") && sawEvent("stranger", "message UNKNOWN ");
    }));
}

TEST_F(ProcessManagerTest, OrphansAreReapedOnlyWhenAsked) {
    std::vector<std::pair<pid_t, int>> orphans;
    processes().onOrphanExit(
        [&](pid_t pid, int wait_status) { orphans.emplace_back(pid, wait_status); });
    ASSERT_TRUE(processes().start(kServiceKind).ok());
    ASSERT_TRUE(runUntil([&] { return readyProcessOf("service") != nullptr; }));

    // A child main did not fork (as an orphan handed to a subreaper would be).
    pid_t stranger = ::fork();
    if (stranger == 0) {
        ::_exit(7);
    }
    processes().reapOrphans(true);
    ASSERT_TRUE(runUntil([&] { return !orphans.empty(); }));
    EXPECT_EQ(orphans[0].first, stranger);
    EXPECT_EQ(WEXITSTATUS(orphans[0].second), 7);
    // Known children are still reaped as such.
    ::kill(readyProcessOf("service")->pid, SIGKILL);
    ASSERT_TRUE(runUntil([&] { return last_status_.contains("service"); }));
    EXPECT_EQ(orphans.size(), 1U);
}

}  // namespace
}  // namespace canopy
