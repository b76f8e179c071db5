#include "core/discovery/module_probe.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace canopy {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::StartsWith;

const fs::path kFixtures = CANOPY_FIXTURE_MODULES_DIR;
const fs::path kHangingFixtures = CANOPY_FIXTURE_HANGING_MODULES_DIR;

fs::path fixture(std::string_view name) {
    return kFixtures / (std::string(name) + ".canopy.so");
}

// The reason a fixture is refused with; fails the test when it loads.
std::string refusal(std::string_view name) {
    auto probed = probeModule(fixture(name), 5s);
    if (probed.ok()) {
        ADD_FAILURE() << name << " loaded, expected a refusal";
        return {};
    }
    return probed.error().message;
}

// The probe must reap every child it forks, whatever happened to it.
void expectNoChildLeft() {
    errno = 0;
    EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1);
    EXPECT_EQ(errno, ECHILD);
}

class TempDir {
  public:
    TempDir() {
        std::string pattern = (fs::temp_directory_path() / "canopy-probe-test-XXXXXX").string();
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

TEST(ModuleProbeTest, ReadsAbi10ModuleWithoutDescription) {
    auto probed = probeModule(fixture("alpha1.0"), 5s);
    ASSERT_TRUE(probed.ok()) << probed.error().message;
    EXPECT_EQ(probed->type, "alpha");
    EXPECT_EQ(probed->version, "1.0");
    EXPECT_EQ(probed->abi_major, 1);
    EXPECT_EQ(probed->abi_minor, 0);
    EXPECT_EQ(probed->description, "");
    EXPECT_TRUE(probed->mounts.empty());
    EXPECT_EQ(probed->schema, nlohmann::json::object());
    EXPECT_EQ(probed->file, fixture("alpha1.0").string());
    expectNoChildLeft();
}

TEST(ModuleProbeTest, ReadsAbi11ModuleWithAllFields) {
    auto probed = probeModule(fixture("beta2.3"), 5s);
    ASSERT_TRUE(probed.ok()) << probed.error().message;
    EXPECT_EQ(probed->type, "beta");
    EXPECT_EQ(probed->version, "2.3.1");
    EXPECT_EQ(probed->abi_major, 1);
    EXPECT_EQ(probed->abi_minor, 1);
    EXPECT_EQ(probed->description, "Beta runtime 2.3.1 for tests");
    ASSERT_EQ(probed->mounts.size(), 1U);
    EXPECT_EQ(probed->mounts[0].source, "/usr/lib/beta");
    EXPECT_EQ(probed->mounts[0].target, "/opt/beta");
    EXPECT_EQ(probed->mounts[0].fs_type, "bind");
    EXPECT_EQ(probed->mounts[0].flags, 4096U);
    EXPECT_EQ(probed->mounts[0].data, "");
    // The schema had a comment, which the host accepts.
    EXPECT_EQ(probed->schema.at("type"), "object");
    EXPECT_EQ(probed->schema.at("required"), nlohmann::json::array({"script"}));
    EXPECT_EQ(probed->schema.at("properties").at("threads").at("minimum"), 1);
}

TEST(ModuleProbeTest, RecordsTheAbsolutePath) {
    fs::path relative = fs::relative(fixture("alpha1.0"));
    ASSERT_TRUE(relative.is_relative());
    auto probed = probeModule(relative, 5s);
    ASSERT_TRUE(probed.ok()) << probed.error().message;
    EXPECT_EQ(probed->file, fixture("alpha1.0").string());
}

TEST(ModuleProbeTest, RefusesTextFile) {
    EXPECT_EQ(refusal("not_elf"), "not an ELF file");
}

TEST(ModuleProbeTest, RefusesEmptyFile) {
    TempDir directory;
    fs::path empty = directory.path() / "empty.canopy.so";
    std::ofstream(empty).close();
    auto probed = probeModule(empty, 5s);
    ASSERT_FALSE(probed.ok());
    EXPECT_EQ(probed.error().message, "not an ELF file");
}

TEST(ModuleProbeTest, RefusesMissingFile) {
    auto probed = probeModule(kFixtures / "missing.canopy.so", 5s);
    ASSERT_FALSE(probed.ok());
    EXPECT_EQ(probed.error().message, "cannot read: No such file or directory");
}

TEST(ModuleProbeTest, ReportsDlopenError) {
    std::string reason = refusal("unresolved_symbol");
    EXPECT_THAT(reason, StartsWith("dlopen failed: "));
    EXPECT_THAT(reason, HasSubstr("canopy_fixture_missing_function"));
}

TEST(ModuleProbeTest, RefusesModuleWithoutSymbol) {
    EXPECT_THAT(refusal("no_symbol"), StartsWith("missing symbol `canopy_module`"));
}

TEST(ModuleProbeTest, RefusesOtherAbiMajor) {
    EXPECT_EQ(refusal("wrong_abi_major"), "built for module ABI 2.0; this canopyd speaks 1.x");
}

TEST(ModuleProbeTest, RefusesNewerAbiMinor) {
    EXPECT_EQ(refusal("newer_abi_minor"), "needs module ABI 1.5; this canopyd provides up to 1.1");
}

TEST(ModuleProbeTest, RefusesTooSmallDescriptor) {
    EXPECT_THAT(refusal("too_small"), StartsWith("descriptor too small: 8 bytes"));
}

TEST(ModuleProbeTest, RefusesInvalidType) {
    EXPECT_THAT(refusal("bad_type"), StartsWith("invalid type \"Bad Type\""));
}

TEST(ModuleProbeTest, RefusesEmptyVersion) {
    EXPECT_EQ(refusal("empty_version"), "empty version");
}

TEST(ModuleProbeTest, RefusesSchemaThatIsNotAnObject) {
    EXPECT_EQ(refusal("schema_not_object"),
              "configuration schema is not a JSON object (it is array)");
}

TEST(ModuleProbeTest, RefusesModuleWithoutStart) {
    EXPECT_EQ(refusal("no_start"), "no start function (start is NULL)");
}

TEST(ModuleProbeTest, SurvivesAbortingConstructor) {
    EXPECT_EQ(refusal("aborting_constructor"), "crashed while loading (signal 6, SIGABRT)");
    expectNoChildLeft();
    // This process is still here, and probing still works.
    EXPECT_TRUE(probeModule(fixture("alpha1.0"), 5s).ok());
}

TEST(ModuleProbeTest, KillsHangingConstructorAfterTimeout) {
    auto started = std::chrono::steady_clock::now();
    auto probed = probeModule(kHangingFixtures / "hanging_constructor.canopy.so", 200ms);
    auto elapsed = std::chrono::steady_clock::now() - started;
    ASSERT_FALSE(probed.ok());
    EXPECT_EQ(probed.error().message, "timed out after 200 ms while loading");
    EXPECT_GE(elapsed, 200ms);
    EXPECT_LT(elapsed, 5s);
    expectNoChildLeft();
}

// describeModule() on descriptors built here: the cases a fixture would only
// repeat.

int startNothing(canopy_task_t*, const canopy_app_conf_t*) {
    return CANOPY_OK;
}

canopy_module_t goodDescriptor() {
    canopy_module_t descriptor{};
    descriptor.size = sizeof(canopy_module_t);
    descriptor.abi_major = CANOPY_MODULE_ABI_MAJOR;
    descriptor.abi_minor = CANOPY_MODULE_ABI_MINOR;
    descriptor.type = "gamma";
    descriptor.version = "0.9";
    descriptor.config_schema = "{}";
    descriptor.start = startNothing;
    return descriptor;
}

std::string describeError(const canopy_module_t& descriptor) {
    auto described = describeModule(&descriptor, "/modules/gamma0.9.canopy.so");
    return described.ok() ? "(accepted)" : described.error().message;
}

TEST(DescribeModuleTest, AcceptsGoodDescriptor) {
    auto descriptor = goodDescriptor();
    descriptor.description = "Gamma";
    auto described = describeModule(&descriptor, "/modules/gamma0.9.canopy.so");
    ASSERT_TRUE(described.ok()) << described.error().message;
    EXPECT_EQ(described->file, "/modules/gamma0.9.canopy.so");
    EXPECT_EQ(described->description, "Gamma");
}

TEST(DescribeModuleTest, AcceptsOlderMinorAndReadsOnlyWithinSize) {
    auto descriptor = goodDescriptor();
    descriptor.abi_minor = 0;
    descriptor.size = CANOPY_MODULE_SIZE_1_0;
    // Past `size`: must not be read at all, so a bogus pointer is harmless.
    descriptor.description = reinterpret_cast<const char*>(1);
    auto described = describeModule(&descriptor, "/m.canopy.so");
    ASSERT_TRUE(described.ok()) << described.error().message;
    EXPECT_EQ(described->description, "");
    EXPECT_EQ(described->abi_minor, 0);
}

TEST(DescribeModuleTest, RefusesSizeTooSmallForAbi10) {
    auto descriptor = goodDescriptor();
    descriptor.size = CANOPY_MODULE_SIZE_1_0 - 1;
    EXPECT_THAT(describeError(descriptor), StartsWith("descriptor too small"));
}

TEST(DescribeModuleTest, RefusesMissingTypeAndVersion) {
    auto descriptor = goodDescriptor();
    descriptor.type = nullptr;
    EXPECT_EQ(describeError(descriptor), "empty type");
    descriptor = goodDescriptor();
    descriptor.type = "";
    EXPECT_EQ(describeError(descriptor), "empty type");
    descriptor = goodDescriptor();
    descriptor.version = nullptr;
    EXPECT_EQ(describeError(descriptor), "empty version");
}

TEST(DescribeModuleTest, ChecksTypeCharacters) {
    auto descriptor = goodDescriptor();
    descriptor.type = "wasm-wasi_component2";
    EXPECT_EQ(describeError(descriptor), "(accepted)");
    descriptor.type = "py.thon";
    EXPECT_THAT(describeError(descriptor), StartsWith("invalid type \"py.thon\""));
    descriptor.type = "line\nbreak";
    EXPECT_THAT(describeError(descriptor), StartsWith("invalid type \"line?break\""));
}

TEST(DescribeModuleTest, RefusesVersionWithSpace) {
    auto descriptor = goodDescriptor();
    descriptor.version = "3.11 beta";
    EXPECT_THAT(describeError(descriptor), StartsWith("invalid version \"3.11 beta\""));
}

TEST(DescribeModuleTest, ChecksSchema) {
    auto descriptor = goodDescriptor();
    descriptor.config_schema = nullptr;
    EXPECT_EQ(describeError(descriptor), "no configuration schema (config_schema is NULL)");
    descriptor.config_schema = "{\"type\": ";
    EXPECT_THAT(describeError(descriptor), StartsWith("configuration schema is not valid JSON: "));
    descriptor.config_schema = "\"object\"";
    EXPECT_EQ(describeError(descriptor),
              "configuration schema is not a JSON object (it is string)");
}

TEST(DescribeModuleTest, ChecksMounts) {
    auto descriptor = goodDescriptor();
    descriptor.mount_count = 2;
    EXPECT_EQ(describeError(descriptor), "mount_count is 2 but mounts is NULL");

    canopy_mount_t mounts[2] = {
        {"/usr/lib/gamma", nullptr, "bind", 0, nullptr},
        {nullptr, "/x", "bind", 0, nullptr},
    };
    descriptor.mounts = mounts;
    EXPECT_EQ(describeError(descriptor), "mount 1 has no source");
    mounts[1] = {"/proc", "/proc", nullptr, 0, nullptr};
    EXPECT_EQ(describeError(descriptor), "mount 1 has no fs_type");
    mounts[1] = {"proc", "/proc", "proc", 0, "hidepid=2"};
    auto described = describeModule(&descriptor, "/m.canopy.so");
    ASSERT_TRUE(described.ok()) << described.error().message;
    ASSERT_EQ(described->mounts.size(), 2U);
    EXPECT_EQ(described->mounts[0].target, "/usr/lib/gamma");  // NULL target: same as source
    EXPECT_EQ(described->mounts[1].data, "hidepid=2");
}

}  // namespace
}  // namespace canopy
