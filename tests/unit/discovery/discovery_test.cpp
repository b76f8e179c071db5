#include "core/discovery/discovery.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

namespace canopy {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

const fs::path kFixtures = CANOPY_FIXTURE_MODULES_DIR;
const fs::path kGoodFixtures = CANOPY_FIXTURE_GOOD_MODULES_DIR;
const fs::path kHangingFixtures = CANOPY_FIXTURE_HANGING_MODULES_DIR;

fs::path fixture(const std::string& name) {
    return kFixtures / (name + ".canopy.so");
}

class TempDir {
  public:
    TempDir() {
        std::string pattern = (fs::temp_directory_path() / "canopy-discovery-test-XXXXXX").string();
        path_ = ::mkdtemp(pattern.data());
    }
    ~TempDir() {
        std::error_code ignored;
        fs::remove_all(path_, ignored);
    }
    const fs::path& path() const { return path_; }

  private:
    fs::path path_;
};

std::vector<std::string> typesAndVersions(const DiscoveryReport& report) {
    std::vector<std::string> listed;
    for (const auto& module : report.modules) {
        listed.push_back(module.type + " " + module.version);
    }
    return listed;
}

// Skipped reasons keyed by file name.
std::map<std::string, std::string> skippedByName(const DiscoveryReport& report) {
    std::map<std::string, std::string> reasons;
    for (const auto& entry : report.skipped) {
        reasons[fs::path(entry.file).filename().string()] = entry.reason;
    }
    return reasons;
}

TEST(DiscoveryTest, LoadsGoodModulesAndSkipsEachBrokenOneWithItsReason) {
    DiscoveryReport report = discoverModules(kFixtures, 5s);

    EXPECT_THAT(typesAndVersions(report), ElementsAre("alpha 1.0", "beta 2.3.1"));
    ASSERT_EQ(report.modules.size(), 2U);
    EXPECT_EQ(report.modules[0].file, fixture("alpha1.0").string());
    EXPECT_EQ(report.modules[0].description, "");
    EXPECT_EQ(report.modules[1].description, "Beta runtime 2.3.1 for tests");

    auto reasons = skippedByName(report);
    EXPECT_EQ(reasons.size(), report.skipped.size()) << "a file was skipped twice";
    EXPECT_EQ(reasons.size(), 12U);
    EXPECT_EQ(reasons["not_elf.canopy.so"], "not an ELF file");
    EXPECT_THAT(reasons["unresolved_symbol.canopy.so"], StartsWith("dlopen failed: "));
    EXPECT_THAT(reasons["no_symbol.canopy.so"], StartsWith("missing symbol `canopy_module`"));
    EXPECT_EQ(reasons["wrong_abi_major.canopy.so"],
              "built for module ABI 2.0; this canopyd speaks 1.x");
    EXPECT_EQ(reasons["newer_abi_minor.canopy.so"],
              "needs module ABI 1.5; this canopyd provides up to 1.1");
    EXPECT_THAT(reasons["too_small.canopy.so"], StartsWith("descriptor too small: 8 bytes"));
    EXPECT_THAT(reasons["bad_type.canopy.so"], StartsWith("invalid type"));
    EXPECT_EQ(reasons["empty_version.canopy.so"], "empty version");
    EXPECT_THAT(reasons["schema_not_object.canopy.so"], HasSubstr("not a JSON object"));
    EXPECT_EQ(reasons["no_start.canopy.so"], "no start function (start is NULL)");
    EXPECT_EQ(reasons["aborting_constructor.canopy.so"],
              "crashed while loading (signal 6, SIGABRT)");
    EXPECT_EQ(reasons["duplicate_alpha1.0.canopy.so"],
              "duplicate of alpha 1.0 in \"" + fixture("alpha1.0").string() + "\"");
    for (const auto& entry : report.skipped) {
        EXPECT_TRUE(fs::path(entry.file).is_absolute()) << entry.file;
    }
}

TEST(DiscoveryTest, GoodDirectoryHasNothingSkipped) {
    DiscoveryReport report = discoverModules(kGoodFixtures, 5s);
    EXPECT_THAT(typesAndVersions(report), ElementsAre("alpha 1.0", "beta 2.3.1"));
    EXPECT_THAT(report.skipped, IsEmpty());
}

TEST(DiscoveryTest, ListsOnlyModuleNamesInNameOrderAndFollowsSymlinks) {
    TempDir directory;
    const fs::path& dir = directory.path();
    fs::create_symlink(fixture("beta2.3"), dir / "a.canopy.so");
    fs::create_symlink(fixture("alpha1.0"), dir / "b.canopy.so");
    // Not candidates: other suffixes, hidden files, the bare suffix.
    fs::create_symlink(fixture("not_elf"), dir / "c.so");
    fs::create_symlink(fixture("not_elf"), dir / ".hidden.canopy.so");
    fs::create_symlink(fixture("not_elf"), dir / ".canopy.so");
    std::ofstream(dir / "README").close();

    DiscoveryReport report = discoverModules(dir, 5s);
    EXPECT_THAT(typesAndVersions(report), ElementsAre("beta 2.3.1", "alpha 1.0"));
    EXPECT_THAT(report.skipped, IsEmpty());
    ASSERT_EQ(report.modules.size(), 2U);
    // The file is where discovery found it, not the link's target.
    EXPECT_EQ(report.modules[0].file, (dir / "a.canopy.so").string());
}

TEST(DiscoveryTest, SkipsDanglingLinksAndDirectories) {
    TempDir directory;
    const fs::path& dir = directory.path();
    fs::create_symlink(dir / "nowhere", dir / "dangling.canopy.so");
    fs::create_directory(dir / "directory.canopy.so");

    DiscoveryReport report = discoverModules(dir, 5s);
    EXPECT_THAT(report.modules, IsEmpty());
    auto reasons = skippedByName(report);
    EXPECT_THAT(reasons["dangling.canopy.so"], StartsWith("cannot read: "));
    EXPECT_EQ(reasons["directory.canopy.so"], "not a regular file");
}

TEST(DiscoveryTest, KeepsTheFirstOfTwoModulesWithTheSameTypeAndVersion) {
    TempDir directory;
    const fs::path& dir = directory.path();
    fs::create_symlink(fixture("duplicate_alpha1.0"), dir / "alpha-a.canopy.so");
    fs::create_symlink(fixture("alpha1.0"), dir / "alpha-b.canopy.so");

    DiscoveryReport report = discoverModules(dir, 5s);
    ASSERT_EQ(report.modules.size(), 1U);
    EXPECT_EQ(report.modules[0].file, (dir / "alpha-a.canopy.so").string());
    ASSERT_EQ(report.skipped.size(), 1U);
    EXPECT_EQ(report.skipped[0].file, (dir / "alpha-b.canopy.so").string());
    EXPECT_EQ(report.skipped[0].reason,
              "duplicate of alpha 1.0 in \"" + (dir / "alpha-a.canopy.so").string() + "\"");
}

TEST(DiscoveryTest, MissingDirectoryIsOneSkippedEntry) {
    TempDir directory;
    fs::path missing = directory.path() / "missing";
    DiscoveryReport report = discoverModules(missing, 5s);
    EXPECT_THAT(report.modules, IsEmpty());
    ASSERT_EQ(report.skipped.size(), 1U);
    EXPECT_EQ(report.skipped[0].file, missing.string());
    EXPECT_EQ(report.skipped[0].reason,
              "cannot list the modules directory: No such file or directory");
}

TEST(DiscoveryTest, FileInsteadOfDirectoryIsOneSkippedEntry) {
    DiscoveryReport report = discoverModules(fixture("not_elf"), 5s);
    EXPECT_THAT(report.modules, IsEmpty());
    ASSERT_EQ(report.skipped.size(), 1U);
    EXPECT_EQ(report.skipped[0].reason, "cannot list the modules directory: Not a directory");
}

TEST(DiscoveryTest, EmptyDirectoryIsAnEmptyReport) {
    TempDir directory;
    DiscoveryReport report = discoverModules(directory.path(), 5s);
    EXPECT_THAT(report.modules, IsEmpty());
    EXPECT_THAT(report.skipped, IsEmpty());
}

TEST(DiscoveryTest, HangingModuleTimesOutAndTheRestLoad) {
    TempDir directory;
    const fs::path& dir = directory.path();
    fs::create_symlink(kHangingFixtures / "hanging_constructor.canopy.so",
                       dir / "hanging.canopy.so");
    fs::create_symlink(fixture("alpha1.0"), dir / "alpha1.0.canopy.so");

    DiscoveryReport report = discoverModules(dir, 200ms);
    EXPECT_THAT(typesAndVersions(report), ElementsAre("alpha 1.0"));
    ASSERT_EQ(report.skipped.size(), 1U);
    EXPECT_EQ(report.skipped[0].reason, "timed out after 200 ms while loading");
}

}  // namespace
}  // namespace canopy
