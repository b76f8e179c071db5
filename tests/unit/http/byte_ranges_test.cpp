#include "core/http/byte_ranges.h"

#include <gtest/gtest.h>

#include "core/http/response.h"

namespace canopy::http {
namespace {

using Kind = RangeRequest::Kind;

TEST(Etag, MtimeAndSizeInHexLikeNginx) {
    EXPECT_EQ(formatEtag(0x5f5e1000, 0x1a2b), "\"5f5e1000-1a2b\"");
    EXPECT_EQ(formatEtag(0, 0), "\"0-0\"");
    EXPECT_EQ(formatEtag(1700000000, 20 * 1024 * 1024), "\"6553f100-1400000\"");
}

TEST(HttpDate, ParsesImfFixdateBothWays) {
    EXPECT_EQ(parseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
    EXPECT_EQ(parseHttpDate(formatHttpDate(1700000000)), 1700000000);
    EXPECT_EQ(parseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT"), std::nullopt);
    EXPECT_EQ(parseHttpDate("Sun, 06 Xyz 1994 08:49:37 GMT"), std::nullopt);
    EXPECT_EQ(parseHttpDate("Sun, 06 Nov 1994 25:49:37 GMT"), std::nullopt);
    EXPECT_EQ(parseHttpDate(""), std::nullopt);
}

TEST(Conditional, IfNoneMatch) {
    std::string etag = "\"a-b\"";
    EXPECT_TRUE(etagListMatches("\"a-b\"", etag));
    EXPECT_TRUE(etagListMatches("W/\"a-b\"", etag));
    EXPECT_TRUE(etagListMatches("\"x\", \"a-b\"", etag));
    EXPECT_TRUE(etagListMatches(" * ", etag));
    EXPECT_FALSE(etagListMatches("\"a-c\"", etag));
    EXPECT_FALSE(etagListMatches("a-b", etag));
}

TEST(Conditional, IfNoneMatchWinsOverIfModifiedSince) {
    std::string etag = "\"a-b\"";
    std::string date = formatHttpDate(1000);
    EXPECT_TRUE(notModified("", date, etag, 1000));
    EXPECT_TRUE(notModified("", formatHttpDate(2000), etag, 1000));
    EXPECT_FALSE(notModified("", formatHttpDate(999), etag, 1000));
    EXPECT_FALSE(notModified("", "garbage", etag, 1000));
    EXPECT_FALSE(notModified("\"other\"", date, etag, 1000));
    EXPECT_TRUE(notModified("\"a-b\"", formatHttpDate(1), etag, 1000));
    EXPECT_FALSE(notModified("", "", etag, 1000));
}

TEST(Conditional, IfRange) {
    std::string etag = "\"a-b\"";
    std::string date = formatHttpDate(1000);
    EXPECT_TRUE(ifRangeHolds("", etag, date));
    EXPECT_TRUE(ifRangeHolds("\"a-b\"", etag, date));
    EXPECT_TRUE(ifRangeHolds(date, etag, date));
    EXPECT_FALSE(ifRangeHolds("W/\"a-b\"", etag, date));
    EXPECT_FALSE(ifRangeHolds("\"old\"", etag, date));
    EXPECT_FALSE(ifRangeHolds(formatHttpDate(999), etag, date));
}

TEST(Range, SingleForms) {
    auto closed = parseRange("bytes=0-9", 100);
    ASSERT_EQ(closed.kind, Kind::Partial);
    EXPECT_EQ(closed.ranges, (std::vector<ByteRange>{{0, 10}}));

    auto open = parseRange("bytes=5-", 100);
    ASSERT_EQ(open.kind, Kind::Partial);
    EXPECT_EQ(open.ranges, (std::vector<ByteRange>{{5, 95}}));

    auto suffix = parseRange("bytes=-10", 100);
    ASSERT_EQ(suffix.kind, Kind::Partial);
    EXPECT_EQ(suffix.ranges, (std::vector<ByteRange>{{90, 10}}));

    // A suffix longer than the file is the whole file; a last byte past the
    // end is clamped.
    EXPECT_EQ(parseRange("bytes=-500", 100).ranges, (std::vector<ByteRange>{{0, 100}}));
    EXPECT_EQ(parseRange("bytes=90-1000", 100).ranges, (std::vector<ByteRange>{{90, 10}}));
    EXPECT_EQ(parseRange("bytes=99-99", 100).ranges, (std::vector<ByteRange>{{99, 1}}));
    EXPECT_EQ(parseRange("Bytes = 1-2", 100).ranges, (std::vector<ByteRange>{{1, 2}}));
}

TEST(Range, Unsatisfiable) {
    EXPECT_EQ(parseRange("bytes=-0", 100).kind, Kind::Unsatisfiable);
    EXPECT_EQ(parseRange("bytes=100-", 100).kind, Kind::Unsatisfiable);
    EXPECT_EQ(parseRange("bytes=200-300", 100).kind, Kind::Unsatisfiable);
    EXPECT_EQ(parseRange("bytes=0-0", 0).kind, Kind::Unsatisfiable);
    EXPECT_EQ(parseRange("bytes=-5", 0).kind, Kind::Unsatisfiable);
    EXPECT_EQ(parseRange("bytes=200-300, -0", 100).kind, Kind::Unsatisfiable);
    // One satisfiable range is enough.
    auto mixed = parseRange("bytes=200-300, 0-1", 100);
    ASSERT_EQ(mixed.kind, Kind::Partial);
    EXPECT_EQ(mixed.ranges, (std::vector<ByteRange>{{0, 2}}));
}

TEST(Range, InvalidIsIgnored) {
    for (const char* value :
         {"", "bytes", "bytes=", "bytes=,", "items=0-1", "bytes=5-1", "bytes=a-b", "bytes=1",
          "bytes=--1", "bytes=-1-2", "bytes=+1-2", "bytes=0-99999999999999999999999"}) {
        EXPECT_EQ(parseRange(value, 100).kind, Kind::Whole) << value;
    }
}

TEST(Range, MultipleAreSortedAndMerged) {
    auto two = parseRange("bytes=50-59, 0-9", 100);
    ASSERT_EQ(two.kind, Kind::Partial);
    EXPECT_EQ(two.ranges, (std::vector<ByteRange>{{0, 10}, {50, 10}}));

    auto overlapping = parseRange("bytes=0-10,5-20,-5", 100);
    EXPECT_EQ(overlapping.ranges, (std::vector<ByteRange>{{0, 21}, {95, 5}}));

    auto adjacent = parseRange("bytes=0-9,10-19", 100);
    EXPECT_EQ(adjacent.ranges, (std::vector<ByteRange>{{0, 20}}));

    auto contained = parseRange("bytes=0-99,10-19", 100);
    EXPECT_EQ(contained.ranges, (std::vector<ByteRange>{{0, 100}}));

    auto empty_elements = parseRange("bytes=, 1-1 ,,3-3", 100);
    EXPECT_EQ(empty_elements.ranges, (std::vector<ByteRange>{{1, 1}, {3, 1}}));
}

TEST(Range, TooManyRangesAreIgnored) {
    std::string value = "bytes=";
    for (size_t i = 0; i <= kMaxRanges; ++i) {
        value += std::to_string(i * 2) + "-" + std::to_string(i * 2) + ",";
    }
    EXPECT_EQ(parseRange(value, 1000).kind, Kind::Whole);
}

TEST(Range, ContentRange) {
    EXPECT_EQ(contentRange({0, 10}, 100), "bytes 0-9/100");
    EXPECT_EQ(contentRange({99, 1}, 100), "bytes 99-99/100");
}

}  // namespace
}  // namespace canopy::http
