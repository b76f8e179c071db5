#include "core/discovery/discovery_kind.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include "core/discovery/discovery.h"
#include "core/port/port.h"
#include "core/process/child_context.h"
#include "core/process/main_context.h"
#include "core/process/process.h"

namespace canopy {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

const fs::path kFixtures = CANOPY_FIXTURE_MODULES_DIR;
const fs::path kGoodFixtures = CANOPY_FIXTURE_GOOD_MODULES_DIR;

// Runs `action` with the process's stderr (where the log goes) sent to a
// temporary file, and returns what was logged.
std::string capturedLog(const std::function<void()>& action) {
    std::string pattern = (fs::temp_directory_path() / "canopy-log-XXXXXX").string();
    int file = ::mkstemp(pattern.data());
    EXPECT_GE(file, 0);
    int saved = ::dup(STDERR_FILENO);
    ::dup2(file, STDERR_FILENO);
    action();
    ::dup2(saved, STDERR_FILENO);
    ::close(saved);
    ::close(file);
    std::ifstream input(pattern);
    std::stringstream text;
    text << input.rdbuf();
    fs::remove(pattern);
    return text.str();
}

RuntimeSettings settingsFor(const fs::path& modules_dir) {
    RuntimeSettings settings;
    settings.modules_dir = modules_dir;
    return settings;
}

// Delivers `payload` to main's ModulesReport handler as if discovery sent it.
void deliverReport(MainContext& main, std::string payload) {
    ASSERT_EQ(kDiscoveryKind.main_handlers.size(), 1U);
    const MainMessageHandler& handler = kDiscoveryKind.main_handlers[0];
    ASSERT_EQ(handler.type, MessageType::ModulesReport);
    Process sender;
    sender.kind = &kDiscoveryKind;
    Message message;
    message.type = MessageType::ModulesReport;
    message.payload = std::move(payload);
    handler.handle(main, sender, message);
}

TEST(DiscoveryKindTest, IsARunToCompletionKindThatIsNeverRestarted) {
    EXPECT_EQ(kDiscoveryKind.name, "discovery");
    EXPECT_EQ(kDiscoveryKind.title, "canopy: discovery");
    EXPECT_EQ(kDiscoveryKind.boot, BootRole::RunToCompletion);
    EXPECT_EQ(kDiscoveryKind.restart, RestartPolicy::Never);
    EXPECT_NE(kDiscoveryKind.setup, nullptr);
    EXPECT_NE(kDiscoveryKind.start, nullptr);
    EXPECT_EQ(kDiscoveryKind.external_setup, nullptr);
}

TEST(DiscoveryKindTest, ChildSendsTheReportToMain) {
    auto ports = Port::createPair();
    ASSERT_TRUE(ports.ok()) << ports.error().message;
    Port main_end = std::move(ports->first);
    RuntimeSettings settings = settingsFor(kGoodFixtures);
    ChildContext child(kDiscoveryKind, settings, std::move(ports->second), "", {});

    std::string log = capturedLog([&] {
        auto state = kDiscoveryKind.setup(child);
        ASSERT_TRUE(state.ok()) << state.error().message;
        EXPECT_EQ(*state, ProcessState::Ready);
        EXPECT_EQ(kDiscoveryKind.start(child), 0);
    });
    EXPECT_THAT(log, HasSubstr("[info]"));
    EXPECT_THAT(log, HasSubstr("discovery started"));

    auto message = main_end.receiveWait(5s);
    ASSERT_TRUE(message.ok()) << message.error().message;
    EXPECT_EQ(message->type, MessageType::ModulesReport);
    auto report = parseDiscoveryReport(message->payload);
    ASSERT_TRUE(report.ok()) << report.error().message;
    ASSERT_EQ(report->modules.size(), 2U);
    EXPECT_EQ(report->modules[0].type, "alpha");
    EXPECT_EQ(report->modules[1].type, "beta");
}

TEST(DiscoveryKindTest, MainFillsTheRegistryAndLogsEachModule) {
    boost::asio::io_context io;
    MainContext main(io, settingsFor(kFixtures));
    DiscoveryReport report = discoverModules(kFixtures, 5s);

    std::string log = capturedLog([&] { deliverReport(main, toJson(report).dump()); });

    // What discovery found, and the built-in `external` type.
    ASSERT_EQ(main.modules().modules().size(), 3U);
    ASSERT_NE(main.modules().find("external"), nullptr);
    EXPECT_TRUE(main.modules().find("external")->builtin);
    ASSERT_NE(main.modules().find("beta 2"), nullptr);
    EXPECT_EQ(main.modules().find("beta 2")->version, "2.3.1");
    // The exact lines tools scrape.
    std::string alpha = (kFixtures / "alpha1.0.canopy.so").string();
    std::string not_elf = (kFixtures / "not_elf.canopy.so").string();
    EXPECT_THAT(log, HasSubstr("[notice] "));
    EXPECT_THAT(log, HasSubstr(" module: alpha 1.0 \"" + alpha + "\"\n"));
    EXPECT_THAT(log, HasSubstr(" module: beta 2.3.1 \""));
    EXPECT_THAT(log, HasSubstr("[warn] "));
    EXPECT_THAT(log, HasSubstr(" module \"" + not_elf + "\" skipped: not an ELF file\n"));
    EXPECT_THAT(log, Not(HasSubstr("no modules found")));
}

TEST(DiscoveryKindTest, MainSaysWhenNoModuleWasFound) {
    boost::asio::io_context io;
    MainContext main(io, settingsFor("/nonexistent/modules"));
    main.modules().assign({ModuleInfo{.type = "stale", .version = "1"}});

    std::string log = capturedLog([&] { deliverReport(main, toJson(DiscoveryReport{}).dump()); });

    // Only the built-in type is left.
    ASSERT_EQ(main.modules().modules().size(), 1U);
    EXPECT_TRUE(main.modules().modules().front().builtin);
    EXPECT_THAT(log, HasSubstr("[notice] "));
    EXPECT_THAT(log, HasSubstr(" no modules found in \"/nonexistent/modules\"\n"));
}

TEST(DiscoveryKindTest, MainLogsAMalformedReportAndKeepsItsRegistry) {
    boost::asio::io_context io;
    MainContext main(io, settingsFor(kFixtures));
    main.modules().assign({ModuleInfo{.type = "kept", .version = "1"}});

    std::string log = capturedLog([&] { deliverReport(main, "{\"modules\": 5}"); });

    EXPECT_NE(main.modules().find("kept"), nullptr);
    EXPECT_THAT(log, HasSubstr("[error] "));
    EXPECT_THAT(log, HasSubstr("malformed"));
}

}  // namespace
}  // namespace canopy
