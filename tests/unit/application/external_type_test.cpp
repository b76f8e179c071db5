// The built-in `external` type as validation sees it: with main's registry
// (which always holds the built-ins), `external` and its alias `go` are
// accepted with their own keys and the common ones.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <variant>

#include "core/base/build_info.h"
#include "core/config/validator.h"
#include "core/module/builtin_modules.h"

namespace canopy {
namespace {

using ::testing::HasSubstr;

class ExternalTypeTest : public ::testing::Test {
  protected:
    ExternalTypeTest() {
        for (auto& builtin : builtinModules()) {
            registry_.addBuiltin(std::move(builtin));
        }
        context_.modules = &registry_;
    }

    config::ValidationResult validate(std::string_view application) {
        auto parsed = json::parse(R"({"applications": {"app": )" + std::string(application) + "}}");
        return config::validateConfiguration(std::get<json::Value>(parsed), context_);
    }
    std::string errorOf(std::string_view application) {
        auto result = validate(application);
        return result.ok() ? "(valid)" : result.error().message + " at " + result.error().path;
    }

    ModuleRegistry registry_;
    config::ValidationContext context_;
};

TEST_F(ExternalTypeTest, AcceptsExternalAndGoWithTheirKeysAndTheCommonOnes) {
    EXPECT_EQ(errorOf(R"({"type": "external", "executable": "/srv/app"})"), "(valid)");
    EXPECT_EQ(errorOf(R"({"type": "go", "executable": "bin/app", "arguments": ["-v", "x"]})"),
              "(valid)");
    EXPECT_EQ(errorOf(R"({"type": "external", "executable": "/srv/app", "user": "nobody",
                         "group": "nogroup", "working_directory": "/srv",
                         "environment": {"A": "1"}, "stdout": "/tmp/o", "stderr": "/tmp/e",
                         "processes": {"max": 4, "spare": 1}, "limits": {"requests": 10}})"),
              "(valid)");
}

TEST_F(ExternalTypeTest, RefusesWhatCannotRun) {
    EXPECT_THAT(errorOf(R"({"type": "external"})"), HasSubstr("executable"));
    EXPECT_THAT(errorOf(R"({"type": "external", "executable": 5})"), HasSubstr("executable"));
    EXPECT_THAT(errorOf(R"({"type": "external", "executable": "/a", "arguments": [1]})"),
                HasSubstr("arguments"));
    EXPECT_THAT(errorOf(R"({"type": "external", "executable": "/a", "module": "m"})"),
                HasSubstr("module"));
}

TEST_F(ExternalTypeTest, IsListedAmongTheAvailableTypes) {
    EXPECT_THAT(errorOf(R"({"type": "cobol"})"),
                HasSubstr(std::string("Available types: external ") + build::kVersion + "."));
}

}  // namespace
}  // namespace canopy
