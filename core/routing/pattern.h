#pragma once

// String patterns of route matches (config-schema §3.2), compiled once per
// configuration: "" (only the empty value), literal text, '*' wildcards,
// a leading '!' that negates, '~' / "!~" PCRE2 expressions. Compiled
// patterns are immutable; match from any number of threads at once.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/result.h"
#include "core/json/value.h"
#include "core/routing/pattern_list.h"
#include "core/routing/regex.h"

namespace canopy::routing {

// How a match key compares (config-schema §3.1 "Case").
enum class PatternCase : uint8_t {
    Sensitive,
    Insensitive,     // ASCII case folded on both sides
    UpperCasedExact  // `method`: the pattern is upper-cased, the request compared as sent
};

// How a non-regex pattern is decoded before use.
enum class PatternDecoding : uint8_t {
    None,
    Percent,      // `uri`: %XX
    PercentPlus,  // `query`, `arguments`: %XX and '+' as space
};

struct PatternRules {
    PatternCase case_rule = PatternCase::Sensitive;
    PatternDecoding decoding = PatternDecoding::None;
};

inline constexpr PatternRules kMethodRules{PatternCase::UpperCasedExact, PatternDecoding::None};
inline constexpr PatternRules kHostRules{PatternCase::Insensitive, PatternDecoding::None};
inline constexpr PatternRules kUriRules{PatternCase::Sensitive, PatternDecoding::Percent};
inline constexpr PatternRules kQueryRules{PatternCase::Sensitive, PatternDecoding::PercentPlus};
inline constexpr PatternRules kArgumentRules{PatternCase::Sensitive, PatternDecoding::PercentPlus};
inline constexpr PatternRules kHeaderRules{PatternCase::Insensitive, PatternDecoding::None};
inline constexpr PatternRules kCookieRules{PatternCase::Sensitive, PatternDecoding::None};
// `share.types` (§3.5): MIME types compare case-insensitively.
inline constexpr PatternRules kMimeTypeRules{PatternCase::Insensitive, PatternDecoding::None};

// One pattern string.
class Pattern {
  public:
    // Fails on "**", a bad %-escape (decoding keys) or a bad expression.
    static Result<Pattern> compile(std::string_view text, PatternRules rules);

    // True for a leading '!'.
    bool negative() const { return negative_; }
    // Whether the pattern, without its '!', matches `subject`.
    bool bodyMatches(std::string_view subject) const;
    // bodyMatches() with the negation applied.
    bool matches(std::string_view subject) const { return bodyMatches(subject) != negative_; }

  private:
    Pattern() = default;

    bool negative_ = false;
    bool case_insensitive_ = false;
    std::optional<Regex> regex_;
    // Non-regex: the text split at each '*' (decoded, lower-cased when
    // insensitive). One segment means no wildcard: an exact comparison.
    std::vector<std::string> segments_;
};

// A string or an array of strings, with the array rule of §3.2: holds when
// no negative pattern matches and, if there are positive ones, at least one
// of them matches.
class PatternSet {
  public:
    // `value` must be a string or an array of strings.
    static Result<PatternSet> compile(const json::Value& value, PatternRules rules);

    bool matches(std::string_view subject) const { return list_.matches(subject); }

  private:
    explicit PatternSet(PatternList<Pattern> list) : list_(std::move(list)) {}

    PatternList<Pattern> list_;
};

}  // namespace canopy::routing
