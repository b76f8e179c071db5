// The daemon as its users meet it: started by hand, by systemd or by a
// container, found by title, signalled, restarted, stopped.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <regex>

#include "core/base/build_info.h"
#include "tests/integration/daemon_harness.h"

namespace canopy::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const std::string kMainTitlePrefix = std::string("canopy: main v") + build::kVersion + " [";

class DaemonTest : public ::testing::Test {
  protected:
    std::filesystem::path path(const std::string& name) const { return directory_.path() / name; }

    std::vector<std::string> arguments(const std::string& modules_dir = "") const {
        return {"--no-daemon",
                "--control",
                "unix:" + path("control.sock").string(),
                "--pid",
                path("canopy.pid").string(),
                "--log",
                path("canopy.log").string(),
                "--statedir",
                path("state").string(),
                "--tmpdir",
                directory_.path().string(),
                "--modulesdir",
                modules_dir.empty() ? path("modules").string() : modules_dir};
    }

    std::string log() const { return readFile(path("canopy.log")); }

    bool logHas(const std::string& text) const { return log().find(text) != std::string::npos; }

    // Starts the daemon and waits until main, controller and router run.
    pid_t startDaemon(const std::vector<std::string>& extra = {},
                      const std::string& modules_dir = "") {
        auto all = arguments(modules_dir);
        all.insert(all.end(), extra.begin(), extra.end());
        pid_t pid = spawnCanopyd(all);
        EXPECT_TRUE(waitUntil([&] {
            return childWithTitle(pid, "canopy: controller") > 0 &&
                   childWithTitle(pid, "canopy: router") > 0 &&
                   std::filesystem::exists(path("control.sock"));
        })) << log();
        return pid;
    }

    void stopDaemon(pid_t pid, int signal_number = SIGTERM) {
        ::kill(pid, signal_number);
        int status = waitForExit(pid);
        ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
        EXPECT_EQ(WEXITSTATUS(status), 0);
    }

    TempDirectory directory_;
};

TEST_F(DaemonTest, RunsMainControllerAndRouterAndRespawnsTheRouter) {
    pid_t main_pid = startDaemon();
    EXPECT_TRUE(processTitle(main_pid).starts_with(kMainTitlePrefix)) << processTitle(main_pid);
    EXPECT_EQ(readFile(path("canopy.pid")), std::to_string(main_pid) + "\n");

    // Discovery exited after its report: exactly main plus two children.
    ASSERT_TRUE(waitUntil([&] { return childrenOf(main_pid).size() == 2; }));
    pid_t controller = childWithTitle(main_pid, "canopy: controller");
    pid_t router = childWithTitle(main_pid, "canopy: router");
    ASSERT_GT(controller, 0);
    ASSERT_GT(router, 0);
    EXPECT_TRUE(
        waitUntil([&] { return logHas("controller started") && logHas("router started"); }));
    EXPECT_TRUE(logHas("discovery started"));
    // Only main keeps root.
    EXPECT_NE(ownerOf(controller), 0U);
    EXPECT_NE(ownerOf(router), 0U);

    struct stat socket_status {};
    ASSERT_EQ(::stat(path("control.sock").c_str(), &socket_status), 0);
    EXPECT_TRUE(S_ISSOCK(socket_status.st_mode));
    EXPECT_EQ(socket_status.st_mode & 0777, 0600U);

    ::kill(router, SIGKILL);
    pid_t new_router = -1;
    ASSERT_TRUE(waitUntil([&] {
        new_router = childWithTitle(main_pid, "canopy: router");
        return new_router > 0 && new_router != router;
    }));
    EXPECT_EQ(childWithTitle(main_pid, "canopy: controller"), controller);
    EXPECT_TRUE(logHas("router process " + std::to_string(router) + " exited on signal 9"));

    stopDaemon(main_pid);
    EXPECT_FALSE(alive(controller));
    EXPECT_FALSE(alive(new_router));
    EXPECT_FALSE(std::filesystem::exists(path("canopy.pid")));
    EXPECT_FALSE(std::filesystem::exists(path("control.sock")));
    EXPECT_TRUE(logHas("exiting"));
}

TEST_F(DaemonTest, ControllerIsRespawnedAndTheSocketKeepsAnswering) {
    pid_t main_pid = startDaemon();
    pid_t controller = childWithTitle(main_pid, "canopy: controller");
    ::kill(controller, SIGKILL);
    ASSERT_TRUE(waitUntil([&] {
        pid_t current = childWithTitle(main_pid, "canopy: controller");
        return current > 0 && current != controller;
    }));
    std::string answer =
        askUnixSocket(path("control.sock"), "GET /config HTTP/1.1\r\nHost: localhost\r\n\r\n");
    EXPECT_THAT(answer, HasSubstr("HTTP/1.1 200"));
    EXPECT_THAT(answer, HasSubstr("\"listeners\""));
    stopDaemon(main_pid);
}

TEST_F(DaemonTest, ControlSocketTakesTheModeAndOwnerAsked) {
    if (::geteuid() != 0) {
        GTEST_SKIP() << "only root can give a socket away";
    }
    pid_t main_pid = startDaemon(
        {"--control-mode", "0660", "--control-user", "nobody", "--control-group", "nogroup"});
    struct stat socket_status {};
    ASSERT_EQ(::stat(path("control.sock").c_str(), &socket_status), 0);
    EXPECT_EQ(socket_status.st_mode & 0777, 0660U);
    EXPECT_EQ(socket_status.st_uid, ownerOf(childWithTitle(main_pid, "canopy: router")));
    EXPECT_NE(socket_status.st_gid, 0U);
    stopDaemon(main_pid);
}

TEST_F(DaemonTest, SigquitStopsWithExitCodeZeroAndLeavesNothing) {
    pid_t main_pid = startDaemon();
    auto children = childrenOf(main_pid);
    stopDaemon(main_pid, SIGQUIT);
    for (pid_t child : children) {
        EXPECT_FALSE(alive(child));
    }
    EXPECT_FALSE(std::filesystem::exists(path("canopy.pid")));
    EXPECT_FALSE(std::filesystem::exists(path("control.sock")));
}

TEST_F(DaemonTest, DaemonizesByDefault) {
    auto all = arguments();
    all.erase(all.begin());  // without --no-daemon
    RunResult launcher = runCanopyd(all);
    EXPECT_EQ(launcher.exit_code, 0) << launcher.err;
    ASSERT_TRUE(waitUntil([&] { return std::filesystem::exists(path("canopy.pid")); }));
    pid_t daemon = static_cast<pid_t>(std::stol(readFile(path("canopy.pid"))));
    EXPECT_TRUE(processTitle(daemon).starts_with(kMainTitlePrefix));
    EXPECT_TRUE(waitUntil([&] { return childWithTitle(daemon, "canopy: router") > 0; }));
    // A daemon leads its own session.
    EXPECT_EQ(::getsid(daemon), daemon);

    ::kill(daemon, SIGTERM);
    EXPECT_TRUE(waitUntil([&] { return !alive(daemon); }));
    EXPECT_TRUE(waitUntil([&] { return !std::filesystem::exists(path("canopy.pid")); }));
    EXPECT_FALSE(std::filesystem::exists(path("control.sock")));
}

TEST_F(DaemonTest, SecondDaemonOnTheSameControlSocketIsRefused) {
    pid_t main_pid = startDaemon();
    auto second = arguments();
    second[4] = path("second.pid").string();  // --pid
    RunResult refused = runCanopyd(second);
    EXPECT_EQ(refused.exit_code, 1);
    EXPECT_THAT(refused.err, HasSubstr("already listening"));
    EXPECT_EQ(std::count(refused.err.begin(), refused.err.end(), '\n'), 1) << refused.err;
    EXPECT_FALSE(std::filesystem::exists(path("second.pid")));
    // The first daemon is untouched.
    EXPECT_TRUE(alive(main_pid));
    EXPECT_TRUE(std::filesystem::exists(path("control.sock")));
    stopDaemon(main_pid);
}

TEST_F(DaemonTest, StaleControlSocketIsReplaced) {
    pid_t first = startDaemon();
    ::kill(first, SIGKILL);  // leaves its socket and pid file behind
    waitForExit(first);
    ASSERT_TRUE(std::filesystem::exists(path("control.sock")));
    // Orphaned children of the killed main notice and exit.
    pid_t second = startDaemon();
    EXPECT_TRUE(alive(second));
    stopDaemon(second);
}

TEST_F(DaemonTest, ControlAddressInUseIsAOneLineError) {
    int listener = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    ASSERT_EQ(::listen(listener, 1), 0);
    socklen_t length = sizeof(address);
    ::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length);
    std::string taken = "127.0.0.1:" + std::to_string(ntohs(address.sin_port));

    auto all = arguments();
    all[2] = taken;  // --control
    RunResult refused = runCanopyd(all);
    ::close(listener);
    EXPECT_EQ(refused.exit_code, 1);
    EXPECT_EQ(refused.err, "canopyd: the control address " + taken + " is already in use\n");
    EXPECT_FALSE(std::filesystem::exists(path("canopy.pid")));
}

TEST_F(DaemonTest, UnusableDirectoryIsAOneLineErrorAndLeavesNothing) {
    std::filesystem::create_directory(path("readonly"));
    std::filesystem::permissions(path("readonly"), std::filesystem::perms(0555));
    auto all = arguments();
    all[8] = "/proc/canopy-cannot-be-here";  // --statedir
    RunResult refused = runCanopyd(all);
    EXPECT_EQ(refused.exit_code, 1);
    EXPECT_THAT(refused.err, HasSubstr("state directory"));
    EXPECT_EQ(std::count(refused.err.begin(), refused.err.end(), '\n'), 1) << refused.err;
    EXPECT_FALSE(std::filesystem::exists(path("canopy.pid")));
    EXPECT_FALSE(std::filesystem::exists(path("control.sock")));

    all = arguments();
    all[10] = "/nonexistent/canopy-tmp";  // --tmpdir
    refused = runCanopyd(all);
    EXPECT_EQ(refused.exit_code, 1);
    EXPECT_THAT(refused.err, HasSubstr("temporary directory"));
    EXPECT_FALSE(std::filesystem::exists(path("control.sock")));
}

TEST_F(DaemonTest, LogLinesHaveUnitsFormat) {
    pid_t main_pid = startDaemon();
    stopDaemon(main_pid);
    std::regex line(
        R"(\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} \[(alert|error|warn|notice|info|debug)\] \d+#\d+ .+)");
    std::istringstream lines(log());
    std::string current;
    int count = 0;
    while (std::getline(lines, current)) {
        EXPECT_TRUE(std::regex_match(current, line)) << current;
        ++count;
    }
    EXPECT_GE(count, 4);
    EXPECT_THAT(log(),
                HasSubstr("[info] " + std::to_string(main_pid) + "#" + std::to_string(main_pid) +
                          " canopy " + build::kVersion + " started"));
    // Normal operation never needs an operator.
    EXPECT_THAT(log(), Not(HasSubstr("[alert]")));
}

TEST_F(DaemonTest, Sigusr1ReopensTheLogInEveryProcess) {
    pid_t main_pid = startDaemon();
    std::filesystem::rename(path("canopy.log"), path("canopy.log.1"));
    ::kill(main_pid, SIGUSR1);
    ASSERT_TRUE(waitUntil([&] { return logHas("log files rotation"); }));
    // The router logs through the new file: main handed it the reopened one.
    pid_t router = childWithTitle(main_pid, "canopy: router");
    ::kill(router, SIGKILL);
    EXPECT_TRUE(waitUntil([&] { return logHas("router started"); }));
    stopDaemon(main_pid);
    EXPECT_THAT(readFile(path("canopy.log.1")), Not(HasSubstr("log files rotation")));
}

TEST_F(DaemonTest, BrokenModulesNeverPreventStartUp) {
    pid_t main_pid = startDaemon({}, CANOPY_FIXTURE_MODULES_DIR);
    std::string modules_dir = CANOPY_FIXTURE_MODULES_DIR;
    EXPECT_TRUE(waitUntil([&] {
        return logHas("module: alpha 1.0 \"" + modules_dir + "/alpha1.0.canopy.so\"") &&
               logHas("module: beta 2.3.1 \"" + modules_dir + "/beta2.3.canopy.so\"");
    })) << log();
    EXPECT_THAT(log(), HasSubstr("aborting_constructor.canopy.so"));
    EXPECT_THAT(log(), HasSubstr("not_elf.canopy.so"));
    EXPECT_THAT(log(), HasSubstr("wrong_abi_major.canopy.so"));
    EXPECT_EQ(childrenOf(main_pid).size(), 2U);
    stopDaemon(main_pid);
}

TEST(CommandLineTest, ModulesListsTheGoodFixtureModules) {
    RunResult listing = runCanopyd({"--modules", "--modulesdir", CANOPY_FIXTURE_MODULES_DIR});
    EXPECT_EQ(listing.exit_code, 0) << listing.err;
    EXPECT_THAT(listing.out, HasSubstr("alpha"));
    EXPECT_THAT(listing.out, HasSubstr("beta"));
    EXPECT_THAT(listing.out, HasSubstr("2.3.1"));
    EXPECT_THAT(listing.out, Not(HasSubstr("wrong_abi_major")));
    EXPECT_THAT(listing.out, HasSubstr("(built-in)"));
    // The skipped ones are reported on stderr, with their reasons.
    EXPECT_THAT(listing.err, HasSubstr("wrong_abi_major.canopy.so"));
    EXPECT_THAT(listing.err, HasSubstr("not_elf.canopy.so"));
}

TEST(CommandLineTest, ModulesJsonIsMachineReadable) {
    RunResult listing =
        runCanopyd({"--modules", "--json", "--modulesdir", CANOPY_FIXTURE_GOOD_MODULES_DIR});
    ASSERT_EQ(listing.exit_code, 0) << listing.err;
    auto modules = nlohmann::json::parse(listing.out);
    ASSERT_TRUE(modules.is_array());
    ASSERT_EQ(modules.size(), 3U);
    EXPECT_EQ(modules[0]["type"], "alpha");
    EXPECT_EQ(modules[0]["version"], "1.0");
    EXPECT_EQ(modules[1]["type"], "beta");
    EXPECT_EQ(modules[1]["version"], "2.3.1");
    EXPECT_TRUE(modules[1]["file"].get<std::string>().ends_with("/beta2.3.canopy.so"));
    EXPECT_TRUE(modules[1]["schema"].is_object());
    // The built-in type of external programs, which needs no file.
    EXPECT_EQ(modules[2]["type"], "external");
    EXPECT_EQ(modules[2]["builtin"], true);
    EXPECT_EQ(modules[2]["file"], "");
}

TEST(CommandLineTest, VersionNamesCompilerAndFeatures) {
    RunResult version = runCanopyd({"--version"});
    EXPECT_EQ(version.exit_code, 0);
    EXPECT_THAT(version.err, HasSubstr(std::string("canopy version: ") + build::kVersion));
    EXPECT_THAT(version.err, HasSubstr("compiler: "));
    EXPECT_THAT(version.err, HasSubstr("features: "));
    EXPECT_THAT(version.err, HasSubstr("tls"));
}

TEST(CommandLineTest, HelpListsUnitdsOptions) {
    RunResult help = runCanopyd({"--help"});
    EXPECT_EQ(help.exit_code, 0);
    for (const char* option :
         {"--no-daemon", "--control", "--modulesdir", "--statedir", "--pid", "--log", "--tmpdir",
          "--user", "--group", "--version", "--modules"}) {
        EXPECT_THAT(help.out, HasSubstr(option));
    }
}

TEST(CommandLineTest, UnknownOptionAndMissingArgumentExitWithOne) {
    RunResult unknown = runCanopyd({"--no-such-option"});
    EXPECT_EQ(unknown.exit_code, 1);
    EXPECT_THAT(unknown.err, HasSubstr("--no-such-option"));
    RunResult missing = runCanopyd({"--control"});
    EXPECT_EQ(missing.exit_code, 1);
    EXPECT_THAT(missing.err, HasSubstr("--control"));
}

TEST(CommandLineTest, UnknownUserIsRefused) {
    if (::geteuid() != 0) {
        GTEST_SKIP() << "users are switched only by root";
    }
    RunResult refused = runCanopyd({"--no-daemon", "--user", "canopy-no-such-user"});
    EXPECT_EQ(refused.exit_code, 1);
    EXPECT_THAT(refused.err, HasSubstr("user \"canopy-no-such-user\" not found"));
}

}  // namespace
}  // namespace canopy::testing
