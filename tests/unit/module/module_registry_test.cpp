#include "core/module/module_registry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/base/build_info.h"
#include "core/module/builtin_modules.h"

namespace canopy {
namespace {

using ::testing::HasSubstr;

ModuleInfo module(std::string type, std::string version) {
    ModuleInfo info;
    info.type = std::move(type);
    info.version = std::move(version);
    info.file = "/modules/" + info.type + info.version + ".canopy.so";
    info.abi_major = 1;
    info.abi_minor = 1;
    return info;
}

std::string found(const ModuleRegistry& registry, std::string_view spec) {
    const ModuleInfo* match = registry.find(spec);
    return match == nullptr ? "(none)" : match->type + " " + match->version;
}

TEST(CompareVersionsTest, ComparesComponentsNumerically) {
    EXPECT_GT(compareVersions("3.10", "3.9"), 0);
    EXPECT_LT(compareVersions("3.9", "3.10"), 0);
    EXPECT_EQ(compareVersions("3.11.2", "3.11.2"), 0);
    EXPECT_GT(compareVersions("10", "9"), 0);
}

TEST(CompareVersionsTest, LongerVersionIsNewerWhenThePrefixIsEqual) {
    EXPECT_LT(compareVersions("3.11", "3.11.0"), 0);
    EXPECT_GT(compareVersions("3.11.0", "3.11"), 0);
}

TEST(CompareVersionsTest, NonNumericComponentsCompareAsText) {
    EXPECT_LT(compareVersions("1.a", "1.b"), 0);
    EXPECT_GT(compareVersions("1.0rc1", "1.0"), 0);
    EXPECT_EQ(compareVersions("", ""), 0);
}

class ModuleRegistryTest : public ::testing::Test {
  protected:
    void SetUp() override {
        registry_.assign({module("ruby", "3.1.2"), module("python", "3.9.18"),
                          module("python", "3.11.2"), module("python", "2.7.18"),
                          module("python", "3.11.10")});
    }
    ModuleRegistry registry_;
};

TEST_F(ModuleRegistryTest, SortsByTypeThenNewestVersionFirst) {
    std::vector<std::string> order;
    for (const auto& entry : registry_.modules()) {
        order.push_back(entry.type + " " + entry.version);
    }
    EXPECT_THAT(order, ::testing::ElementsAre("python 3.11.10", "python 3.11.2", "python 3.9.18",
                                              "python 2.7.18", "ruby 3.1.2"));
}

TEST_F(ModuleRegistryTest, TypeAloneFindsTheNewest) {
    EXPECT_EQ(found(registry_, "python"), "python 3.11.10");
    EXPECT_EQ(found(registry_, "ruby"), "ruby 3.1.2");
}

TEST_F(ModuleRegistryTest, MajorVersionFindsTheNewestOfThatMajor) {
    EXPECT_EQ(found(registry_, "python 3"), "python 3.11.10");
    EXPECT_EQ(found(registry_, "python 2"), "python 2.7.18");
}

TEST_F(ModuleRegistryTest, MinorVersionFindsTheNewestOfThatMinor) {
    EXPECT_EQ(found(registry_, "python 3.11"), "python 3.11.10");
    EXPECT_EQ(found(registry_, "python 3.9"), "python 3.9.18");
    EXPECT_EQ(found(registry_, "python 3.11.2"), "python 3.11.2");
}

TEST_F(ModuleRegistryTest, VersionPrefixMatchesWholeComponentsOnly) {
    EXPECT_EQ(found(registry_, "python 3.1"), "(none)");
    EXPECT_EQ(found(registry_, "python 3.11.1"), "(none)");
}

TEST_F(ModuleRegistryTest, UnitsSpellingWithoutASpace) {
    EXPECT_EQ(found(registry_, "python3"), "python 3.11.10");
    EXPECT_EQ(found(registry_, "python3.9"), "python 3.9.18");
    EXPECT_EQ(found(registry_, "python3.1"), "(none)");
}

TEST(ModuleRegistryNamesTest, DigitsInATypeNameAndTheGoAlias) {
    ModuleRegistry registry;
    registry.assign({module("h2o", "2.2"), module("external", "0.1")});
    EXPECT_EQ(found(registry, "h2o"), "h2o 2.2");  // a type with a digit, as written
    EXPECT_EQ(found(registry, "go"), "external 0.1");
}

TEST_F(ModuleRegistryTest, NoMatch) {
    EXPECT_EQ(found(registry_, "perl"), "(none)");
    EXPECT_EQ(found(registry_, "python 4"), "(none)");
    EXPECT_EQ(found(registry_, "pyth"), "(none)");
    EXPECT_EQ(found(ModuleRegistry(), "python"), "(none)");
}

TEST_F(ModuleRegistryTest, AssignReplacesTheContent) {
    EXPECT_FALSE(registry_.empty());
    registry_.assign({});
    EXPECT_TRUE(registry_.empty());
    EXPECT_EQ(found(registry_, "python"), "(none)");
}

TEST_F(ModuleRegistryTest, BuiltinsSurviveAssign) {
    for (auto& builtin : builtinModules()) {
        registry_.addBuiltin(std::move(builtin));
    }
    EXPECT_EQ(found(registry_, "external"), std::string("external ") + build::kVersion);
    EXPECT_EQ(found(registry_, "go"), std::string("external ") + build::kVersion);
    registry_.assign({module("ruby", "3.1.2")});
    EXPECT_EQ(found(registry_, "python"), "(none)");
    EXPECT_EQ(found(registry_, "ruby"), "ruby 3.1.2");
    ASSERT_NE(registry_.find("external"), nullptr);
    EXPECT_TRUE(registry_.find("external")->builtin);
    EXPECT_EQ(registry_.find("external")->file, "");
    registry_.assign({});
    EXPECT_EQ(registry_.modules().size(), 1U);

    // A copy made through a report (main to the controller) keeps one of each.
    ModuleRegistry copy;
    copy.assign(
        parseDiscoveryReport(toJson(DiscoveryReport{registry_.modules(), {}}).dump())->modules);
    copy.addBuiltin(builtinModules().front());
    copy.assign(registry_.modules());
    ASSERT_EQ(copy.modules().size(), 1U);
    EXPECT_TRUE(copy.modules().front().builtin);
}

TEST(BuiltinModulesTest, ExternalDescribesItsKeys) {
    auto builtins = builtinModules();
    ASSERT_EQ(builtins.size(), 1U);
    const ModuleInfo& external = builtins.front();
    EXPECT_EQ(external.type, "external");
    EXPECT_EQ(external.description, "external programs linked with libcanopy");
    EXPECT_EQ(external.schema["required"], nlohmann::json::array({"executable"}));
    EXPECT_EQ(external.schema["properties"]["arguments"]["items"]["type"], "string");
    EXPECT_EQ(external.schema["additionalProperties"], false);
}

TEST(DiscoveryReportJsonTest, RoundTrips) {
    DiscoveryReport report;
    ModuleInfo python = module("python", "3.11.2");
    python.description = "CPython 3.11.2";
    python.abi_minor = 0;
    python.mounts.push_back({"/usr/lib/python3.11", "/usr/lib/python3.11", "bind", 4096, ""});
    python.mounts.push_back({"proc", "/proc", "proc", 0, "hidepid=2"});
    python.schema = {{"type", "object"}, {"required", {"module"}}};
    report.modules.push_back(python);
    report.modules.push_back(module("ruby", "3.1.2"));
    report.skipped.push_back({"/modules/broken.canopy.so", "not an ELF file"});

    auto parsed = parseDiscoveryReport(toJson(report).dump());
    ASSERT_TRUE(parsed.ok()) << parsed.error().message;
    ASSERT_EQ(parsed->modules.size(), 2U);
    const ModuleInfo& back = parsed->modules[0];
    EXPECT_EQ(back.type, "python");
    EXPECT_EQ(back.version, "3.11.2");
    EXPECT_EQ(back.file, python.file);
    EXPECT_EQ(back.description, "CPython 3.11.2");
    EXPECT_EQ(back.abi_major, 1);
    EXPECT_EQ(back.abi_minor, 0);
    ASSERT_EQ(back.mounts.size(), 2U);
    EXPECT_EQ(back.mounts[0].source, "/usr/lib/python3.11");
    EXPECT_EQ(back.mounts[0].flags, 4096U);
    EXPECT_EQ(back.mounts[1].fs_type, "proc");
    EXPECT_EQ(back.mounts[1].data, "hidepid=2");
    EXPECT_EQ(back.schema, python.schema);
    EXPECT_EQ(parsed->modules[1].description, "");
    ASSERT_EQ(parsed->skipped.size(), 1U);
    EXPECT_EQ(parsed->skipped[0].file, "/modules/broken.canopy.so");
    EXPECT_EQ(parsed->skipped[0].reason, "not an ELF file");
    // Serialising again gives the same document.
    EXPECT_EQ(toJson(*parsed), toJson(report));
}

TEST(DiscoveryReportJsonTest, EmptyReportRoundTrips) {
    auto parsed = parseDiscoveryReport(toJson(DiscoveryReport{}).dump());
    ASSERT_TRUE(parsed.ok()) << parsed.error().message;
    EXPECT_TRUE(parsed->modules.empty());
    EXPECT_TRUE(parsed->skipped.empty());
}

TEST(DiscoveryReportJsonTest, RefusesMalformedReports) {
    for (const char* text : {"", "not json", "[]", "{\"modules\": []}",
                             "{\"modules\": [{\"type\": \"python\"}], \"skipped\": []}"}) {
        auto parsed = parseDiscoveryReport(text);
        ASSERT_FALSE(parsed.ok()) << text;
        EXPECT_THAT(parsed.error().message, HasSubstr("malformed discovery report")) << text;
    }
}

}  // namespace
}  // namespace canopy
