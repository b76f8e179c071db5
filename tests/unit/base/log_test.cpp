#include "core/base/log.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include <regex>

namespace canopy {
namespace {

TEST(LogTest, LineHasUnitsFormat) {
    std::string line = log::formatLine(log::Level::Notice, "module: python 3.11.2 \"x\"");
    std::regex expected(R"(\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} \[notice\] (\d+)#(\d+) module: python 3\.11\.2 "x"\n)");
    std::smatch parts;
    ASSERT_TRUE(std::regex_match(line, parts, expected)) << line;
    EXPECT_EQ(std::stol(parts[1]), ::getpid());
}

TEST(LogTest, LevelsParseAndFilter) {
    EXPECT_EQ(log::parseLevel("warn"), log::Level::Warn);
    EXPECT_FALSE(log::parseLevel("verbose").has_value());
    log::Level saved = log::level();
    log::setLevel(log::Level::Warn);
    EXPECT_TRUE(log::enabled(log::Level::Alert));
    EXPECT_TRUE(log::enabled(log::Level::Warn));
    EXPECT_FALSE(log::enabled(log::Level::Info));
    log::setLevel(saved);
}

}  // namespace
}  // namespace canopy
