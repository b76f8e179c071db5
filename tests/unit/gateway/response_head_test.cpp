#include "core/gateway/response_head.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

namespace canopy::gateway {
namespace {

std::span<const std::byte> bytes(const std::string& text) {
    return std::as_bytes(std::span(text));
}

TEST(ResponseHeadTest, RoundTripsAValidHead) {
    ResponseHead head{200, false, {{"Content-Type", "text/plain"}, {"X-Empty", ""}}};
    std::string record = encodeResponseHead(head);
    ResponseLimits limits;
    ASSERT_EQ(*responseHeadLength(bytes(record), limits), record.size());
    auto parsed = parseResponseHead(bytes(record), limits);
    ASSERT_TRUE(parsed);
    EXPECT_EQ(parsed->status, 200);
    EXPECT_EQ(parsed->fields, head.fields);
}

TEST(ResponseHeadTest, RefusesWhatNoHonestAppWrites) {
    ResponseLimits limits;
    auto refused = [&](ResponseHead head) {
        return !parseResponseHead(bytes(encodeResponseHead(head)), limits);
    };
    EXPECT_TRUE(refused({99, false, {}}));
    EXPECT_TRUE(refused({1000, false, {}}));
    EXPECT_TRUE(refused({200, false, {{"", "x"}}}));
    EXPECT_TRUE(refused({200, false, {{"Bad Name", "x"}}}));
    EXPECT_TRUE(refused({200, false, {{"X", "a\r\nSet-Cookie: evil"}}}));
    EXPECT_TRUE(refused({200, false, {{"X", std::string("a\0b", 3)}}}));
    std::string record = encodeResponseHead({200, false, {{"A", "b"}}});
    record[0] = 'X';
    EXPECT_FALSE(parseResponseHead(bytes(record), limits));
    record = encodeResponseHead({200, false, {{"A", "b"}}});
    record += "extra";
    EXPECT_FALSE(parseResponseHead(bytes(record), limits));  // length mismatch
    uint32_t huge_count = 0x7FFFFFFF;
    record = encodeResponseHead({200, false, {}});
    std::memcpy(record.data() + 12, &huge_count, 4);
    EXPECT_FALSE(parseResponseHead(bytes(record), limits));
    uint16_t flags = 0x8000;
    record = encodeResponseHead({200, false, {}});
    std::memcpy(record.data() + 10, &flags, 2);
    EXPECT_FALSE(parseResponseHead(bytes(record), limits));
    uint32_t total = 1U << 30;
    std::memcpy(record.data() + 4, &total, 4);
    EXPECT_FALSE(responseHeadLength(bytes(record), limits));
}

TEST(ResponseHeadTest, RandomBytesNeverCrashTheParser) {
    std::mt19937 random(7);
    ResponseLimits limits;
    std::string base = encodeResponseHead({200, false, {{"Content-Type", "a"}, {"B", "c"}}});
    for (int round = 0; round < 20000; ++round) {
        std::string record = base;
        for (int flips = 0; flips < 4; ++flips) {
            record[random() % record.size()] = static_cast<char>(random());
        }
        record.resize(random() % (record.size() + 1));
        (void)parseResponseHead(bytes(record), limits);
        if (record.size() >= 8) {
            (void)responseHeadLength(bytes(record), limits);
        }
        if (record.size() >= kFrameHeaderSize) {
            (void)parseFrameHeader(bytes(record), 1024);
        }
    }
}

}  // namespace
}  // namespace canopy::gateway
