#include "core/routing/pattern.h"

#include <gtest/gtest.h>

#include <string>

namespace canopy::routing {
namespace {

bool matches(std::string_view pattern, std::string_view subject,
             PatternRules rules = PatternRules{}) {
    auto compiled = Pattern::compile(pattern, rules);
    EXPECT_TRUE(compiled.ok()) << pattern;
    return compiled.ok() && compiled->matches(subject);
}

bool setMatches(const json::Value& patterns, std::string_view subject,
                PatternRules rules = PatternRules{}) {
    auto compiled = PatternSet::compile(patterns, rules);
    EXPECT_TRUE(compiled.ok());
    return compiled.ok() && compiled->matches(subject);
}

TEST(PatternTest, ExactAndEmpty) {
    EXPECT_TRUE(matches("abc", "abc"));
    EXPECT_FALSE(matches("abc", "abcd"));
    EXPECT_FALSE(matches("abc", "ab"));
    EXPECT_TRUE(matches("", ""));
    EXPECT_FALSE(matches("", "x"));
}

TEST(PatternTest, Wildcards) {
    EXPECT_TRUE(matches("*", ""));
    EXPECT_TRUE(matches("*", "anything"));
    EXPECT_TRUE(matches("/api/*", "/api/"));
    EXPECT_TRUE(matches("/api/*", "/api/v1/x"));
    EXPECT_FALSE(matches("/api/*", "/apix"));
    EXPECT_TRUE(matches("*.php", "/index.php"));
    EXPECT_FALSE(matches("*.php", "/index.php5"));
    EXPECT_TRUE(matches("*/b/*", "/a/b/c"));
    EXPECT_FALSE(matches("*/b/*", "/a/c"));
    EXPECT_TRUE(matches("a*b*c", "abc"));
    EXPECT_TRUE(matches("a*b*c", "aXbYbZc"));
    EXPECT_FALSE(matches("a*b*c", "acb"));
    // Prefix and suffix must not overlap.
    EXPECT_FALSE(matches("ab*ba", "aba"));
    EXPECT_TRUE(matches("ab*ba", "abba"));
    EXPECT_TRUE(matches("*x*y*", "..x..y.."));
    EXPECT_FALSE(matches("*x*y*", "..y..x.."));
}

TEST(PatternTest, DoubleStarIsRefused) {
    EXPECT_FALSE(Pattern::compile("/a/**", {}).ok());
    EXPECT_FALSE(Pattern::compile("!**", {}).ok());
    // In a regex "**" is the regex's business (and invalid there).
    EXPECT_FALSE(Pattern::compile("~**", {}).ok());
    EXPECT_TRUE(Pattern::compile("~a.*.*", {}).ok());
}

TEST(PatternTest, Negation) {
    EXPECT_FALSE(matches("!abc", "abc"));
    EXPECT_TRUE(matches("!abc", "abd"));
    EXPECT_TRUE(matches("!", "x"));
    EXPECT_FALSE(matches("!", ""));
    EXPECT_FALSE(matches("!/admin/*", "/admin/x"));
    auto compiled = Pattern::compile("!x", {});
    ASSERT_TRUE(compiled.ok());
    EXPECT_TRUE(compiled->negative());
    EXPECT_TRUE(compiled->bodyMatches("x"));
}

TEST(PatternTest, RegexIsUnanchoredAndCaseSensitive) {
    EXPECT_TRUE(matches("~\\.php$", "/a/b.php"));
    EXPECT_FALSE(matches("~\\.php$", "/a/b.php5"));
    EXPECT_TRUE(matches("~b", "abc"));
    EXPECT_TRUE(matches("~^/a", "/abc"));
    EXPECT_FALSE(matches("~^/a", "x/abc"));
    EXPECT_FALSE(matches("!~^/a", "/abc"));
    EXPECT_TRUE(matches("!~^/a", "/b"));
    // Case-sensitive even for keys compared case-insensitively.
    EXPECT_FALSE(matches("~^abc$", "ABC", kHeaderRules));
    // Not decoded, not upper-cased.
    EXPECT_TRUE(matches("~%41", "%41", kUriRules));
    EXPECT_FALSE(matches("~%41", "A", kUriRules));
    EXPECT_TRUE(matches("~^get$", "get", kMethodRules));
    // Subjects need not be UTF-8.
    EXPECT_FALSE(matches("~abc", "\xff\xfe"));
    EXPECT_TRUE(matches("~abc",
                        "\xff"
                        "abc"));
    EXPECT_TRUE(matches("~^$", ""));
}

TEST(PatternTest, BadRegexIsAnErrorNotACrash) {
    auto compiled = Pattern::compile("~(", {});
    ASSERT_FALSE(compiled.ok());
    EXPECT_NE(compiled.error().message.find("offset"), std::string::npos);
}

TEST(PatternTest, CaseRules) {
    // method: pattern upper-cased, request compared as sent.
    EXPECT_TRUE(matches("get", "GET", kMethodRules));
    EXPECT_TRUE(matches("GET", "GET", kMethodRules));
    EXPECT_FALSE(matches("GET", "get", kMethodRules));
    EXPECT_TRUE(matches("p*", "POST", kMethodRules));
    // host, headers: insensitive.
    EXPECT_TRUE(matches("Example.COM", "example.com", kHostRules));
    EXPECT_TRUE(matches("*.EXAMPLE.com", "www.example.COM", kHostRules));
    EXPECT_TRUE(matches("text/*", "TEXT/HTML", kHeaderRules));
    // uri, query, arguments, cookies: sensitive.
    EXPECT_FALSE(matches("/Admin", "/admin", kUriRules));
    EXPECT_FALSE(matches("Q", "q", kQueryRules));
    EXPECT_FALSE(matches("V", "v", kArgumentRules));
    EXPECT_FALSE(matches("V", "v", kCookieRules));
    EXPECT_TRUE(matches("text/HTML", "text/html", kMimeTypeRules));
}

TEST(PatternTest, PercentDecodingOfNonRegexPatterns) {
    EXPECT_TRUE(matches("/caf%C3%A9", "/caf\xC3\xA9", kUriRules));
    EXPECT_TRUE(matches("/a%20*", "/a b/c", kUriRules));
    // An encoded '*' is a literal star, not a wildcard.
    EXPECT_TRUE(matches("/a%2A", "/a*", kUriRules));
    EXPECT_FALSE(matches("/a%2A", "/ab", kUriRules));
    // '+' is a space for query and arguments, not for uri.
    EXPECT_TRUE(matches("a+b", "a b", kArgumentRules));
    EXPECT_TRUE(matches("a+b", "a b", kQueryRules));
    EXPECT_TRUE(matches("a+b", "a+b", kUriRules));
    // Other keys do not decode.
    EXPECT_TRUE(matches("%41", "%41", kHeaderRules));
    EXPECT_FALSE(Pattern::compile("/a%zz", kUriRules).ok());
    EXPECT_FALSE(Pattern::compile("/a%4", kArgumentRules).ok());
    EXPECT_TRUE(Pattern::compile("/a%zz", kHeaderRules).ok());
}

TEST(PatternSetTest, ArrayRule) {
    json::Array positives{"/a", "/b"};
    EXPECT_TRUE(setMatches(positives, "/a"));
    EXPECT_TRUE(setMatches(positives, "/b"));
    EXPECT_FALSE(setMatches(positives, "/c"));

    json::Array negatives{"!/a", "!/b"};
    EXPECT_FALSE(setMatches(negatives, "/a"));
    EXPECT_TRUE(setMatches(negatives, "/c"));

    // No negative may match AND some positive must, in any order.
    json::Array mixed{"!/api/private*", "/api/*"};
    EXPECT_TRUE(setMatches(mixed, "/api/x"));
    EXPECT_FALSE(setMatches(mixed, "/api/private/x"));
    EXPECT_FALSE(setMatches(mixed, "/other"));
    json::Array reversed{"/api/*", "!/api/private*"};
    EXPECT_TRUE(setMatches(reversed, "/api/x"));
    EXPECT_FALSE(setMatches(reversed, "/api/private/x"));
    EXPECT_FALSE(setMatches(reversed, "/other"));

    EXPECT_TRUE(setMatches(json::Array{}, "anything"));
    EXPECT_TRUE(setMatches("x", "x"));
    EXPECT_FALSE(setMatches("x", "y"));
}

TEST(PatternSetTest, WrongTypesAreErrors) {
    EXPECT_FALSE(PatternSet::compile(json::Value(1), {}).ok());
    EXPECT_FALSE(PatternSet::compile(json::Array{"a", 2}, {}).ok());
    EXPECT_FALSE(PatternSet::compile(json::Value(), {}).ok());
    EXPECT_FALSE(PatternSet::compile(json::Array{"a", "b**"}, {}).ok());
}

}  // namespace
}  // namespace canopy::routing
