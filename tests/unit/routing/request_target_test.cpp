#include "core/routing/request_target.h"

#include <gtest/gtest.h>

#include <string>
#include <variant>

namespace canopy::routing {
namespace {

std::string normalized(std::string_view raw) {
    auto result = normalizePath(raw);
    return std::holds_alternative<std::string>(result) ? std::get<std::string>(result) : "ERROR";
}

std::optional<PathError> pathError(std::string_view raw) {
    auto result = normalizePath(raw);
    if (auto* error = std::get_if<PathError>(&result)) {
        return *error;
    }
    return std::nullopt;
}

TEST(NormalizePathTest, ResolvesDotSegmentsAndSlashes) {
    EXPECT_EQ(normalized("/"), "/");
    EXPECT_EQ(normalized("/a/./b/../c"), "/a/c");
    EXPECT_EQ(normalized("//a///b"), "/a/b");
    EXPECT_EQ(normalized("/a/"), "/a/");
    EXPECT_EQ(normalized("/a//"), "/a/");
    EXPECT_EQ(normalized("/a/."), "/a/");
    EXPECT_EQ(normalized("/a/.."), "/");
    EXPECT_EQ(normalized("/a/b/../"), "/a/");
    EXPECT_EQ(normalized("/a/..b/.c"), "/a/..b/.c");
    EXPECT_EQ(normalized("/..a"), "/..a");
}

TEST(NormalizePathTest, DecodesEscapesAndTreatsDecodedSeparatorsLikePlainOnes) {
    EXPECT_EQ(normalized("/caf%C3%A9"), "/caf\xC3\xA9");
    EXPECT_EQ(normalized("/a%2Fb"), "/a/b");
    EXPECT_EQ(normalized("/a/%2e%2E/b"), "/b");
    EXPECT_EQ(normalized("/a%20b"), "/a b");
    EXPECT_EQ(normalized("/100%25"), "/100%");
    EXPECT_EQ(normalized("/a+b"), "/a+b");  // '+' is not a space in paths
}

TEST(NormalizePathTest, RefusesWhatTheEngineAnswers400) {
    EXPECT_EQ(pathError("/%00"), PathError::NulByte);
    EXPECT_EQ(pathError(std::string_view("/a\0b", 4)), PathError::NulByte);
    EXPECT_EQ(pathError("/%zz"), PathError::BadEscape);
    EXPECT_EQ(pathError("/%4"), PathError::BadEscape);
    EXPECT_EQ(pathError("/.."), PathError::AboveRoot);
    EXPECT_EQ(pathError("/a/../.."), PathError::AboveRoot);
    EXPECT_EQ(pathError("/%2e%2e/etc/passwd"), PathError::AboveRoot);
    EXPECT_EQ(pathError("a/b"), PathError::NotAbsolute);
    EXPECT_EQ(pathError(""), PathError::NotAbsolute);
    EXPECT_FALSE(pathErrorText(PathError::AboveRoot).empty());
}

TEST(SplitTargetTest, SplitsAtTheFirstQuestionMarkAndDropsTheFragment) {
    auto parts = splitTarget("/a?b=1?c#frag");
    EXPECT_EQ(parts.path, "/a");
    EXPECT_EQ(parts.query, "b=1?c");
    EXPECT_TRUE(parts.has_query);
    parts = splitTarget("/a");
    EXPECT_EQ(parts.path, "/a");
    EXPECT_FALSE(parts.has_query);
    parts = splitTarget("/a?");
    EXPECT_TRUE(parts.has_query);
    EXPECT_EQ(parts.query, "");
    parts = splitTarget("/a#x?y");
    EXPECT_EQ(parts.path, "/a");
    EXPECT_FALSE(parts.has_query);
}

TEST(PercentDecodeTest, StrictAndLenient) {
    EXPECT_EQ(percentDecode("a%41+b"), "aA+b");
    EXPECT_EQ(percentDecode("a%41+b", true), "aA b");
    EXPECT_EQ(percentDecode("%"), std::nullopt);
    EXPECT_EQ(percentDecode("%g0"), std::nullopt);
    std::string out;
    percentDecodeLenient("a%zz%41+%", true, out);
    EXPECT_EQ(out, "a%zzA %");
    EXPECT_EQ(hexDigitValue('f'), 15);
    EXPECT_EQ(hexDigitValue('F'), 15);
    EXPECT_EQ(hexDigitValue('g'), -1);
}

TEST(NormalizeHostTest, RemovesPortAndTrailingDotAndLowerCases) {
    EXPECT_EQ(normalizeHost("Example.COM:8080"), "example.com");
    EXPECT_EQ(normalizeHost("example.com."), "example.com");
    EXPECT_EQ(normalizeHost("example.com.:80"), "example.com");
    EXPECT_EQ(normalizeHost("[::1]:8080"), "[::1]");
    EXPECT_EQ(normalizeHost("[2001:DB8::1]"), "[2001:db8::1]");
    EXPECT_EQ(normalizeHost(""), "");
    EXPECT_EQ(normalizeHost("192.0.2.1:80"), "192.0.2.1");
}

TEST(NormalizeHostTest, RefusesBadHosts) {
    EXPECT_EQ(normalizeHost("a/b"), std::nullopt);
    EXPECT_EQ(normalizeHost("a\\b"), std::nullopt);
    EXPECT_EQ(normalizeHost("a..b"), std::nullopt);
    EXPECT_EQ(normalizeHost("[::1"), std::nullopt);
    EXPECT_EQ(normalizeHost("[::1]x"), std::nullopt);
    EXPECT_EQ(normalizeHost(std::string_view("a\0b", 3)), std::nullopt);
    EXPECT_EQ(normalizeHost("a\tb"), std::nullopt);
}

TEST(EncodeLocationTest, KeepsEncodedValuesAndEncodesOthers) {
    EXPECT_EQ(encodeLocation("https://example.com/a%20b?x=1"), "https://example.com/a%20b?x=1");
    EXPECT_EQ(encodeLocation("/a b"), "/a%20b");
    EXPECT_EQ(encodeLocation("/a\"<>b"), "/a%22%3C%3Eb");
    EXPECT_EQ(encodeLocation("/100%"), "/100%25");
    EXPECT_EQ(encodeLocation("/%41 x"), "/%41%20x");
    EXPECT_EQ(encodeLocation("/caf\xC3\xA9"), "/caf%C3%A9");
    EXPECT_EQ(encodeLocation(""), "");
}

}  // namespace
}  // namespace canopy::routing
