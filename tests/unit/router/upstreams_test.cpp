#include "core/router/upstreams.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <variant>

#include "core/json/value.h"

namespace canopy {
namespace {

std::shared_ptr<UpstreamGroup> group(const std::string& text) {
    auto parsed = json::parse(text);
    auto compiled = UpstreamGroup::compile("pool", std::get<json::Value>(parsed));
    EXPECT_TRUE(compiled.ok());
    return std::move(compiled.value());
}

TEST(UpstreamGroup, SmoothWeightedRoundRobin) {
    auto pool = group(R"({"servers": {"127.0.0.1:1": {"weight": 5}, "127.0.0.1:2": {"weight": 1},
                                      "127.0.0.1:3": {"weight": 1}, "127.0.0.1:4": {"weight": 0}}})");
    auto now = UpstreamGroup::Clock::now();
    std::string order;
    for (int pick = 0; pick < 14; ++pick) {
        auto server = pool->pick({}, now);
        ASSERT_TRUE(server);
        order += std::to_string(*server);
    }
    // nginx's a a b a c a a for 5:1:1, twice: spread out, not "0000012".
    EXPECT_EQ(order, "00102000010200");
}

TEST(UpstreamGroup, FractionalWeights) {
    auto pool =
        group(R"({"servers": {"127.0.0.1:1": {"weight": 0.5}, "[::1]:2": {"weight": 1.5}}})");
    auto now = UpstreamGroup::Clock::now();
    std::map<size_t, int> counts;
    for (int pick = 0; pick < 40; ++pick) {
        ++counts[*pool->pick({}, now)];
    }
    EXPECT_EQ(counts[0], 10);
    EXPECT_EQ(counts[1], 30);
    EXPECT_EQ(pool->address(1).text, "[::1]:2");
}

TEST(UpstreamGroup, FailedServersAreSkippedForAWhile) {
    auto pool = group(R"({"servers": {"127.0.0.1:1": {}, "unix:/run/b.sock": {}}})");
    auto now = UpstreamGroup::Clock::now();
    pool->failed(0, now);
    for (int pick = 0; pick < 5; ++pick) {
        EXPECT_EQ(pool->pick({}, now + std::chrono::seconds(9)), 1u);
    }
    EXPECT_FALSE(pool->pick({1}, now + std::chrono::seconds(9)));  // the other failed too
    std::map<size_t, int> counts;
    for (int pick = 0; pick < 4; ++pick) {
        ++counts[*pool->pick({}, now + UpstreamGroup::kFailureSkip)];
    }
    EXPECT_EQ(counts[0], 2);
    EXPECT_EQ(counts[1], 2);
}

}  // namespace
}  // namespace canopy
