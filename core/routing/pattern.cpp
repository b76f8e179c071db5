#include "core/routing/pattern.h"

#include "core/routing/request_target.h"

namespace canopy::routing {
namespace {

char lowerAscii(char character) {
    return character >= 'A' && character <= 'Z' ? static_cast<char>(character - 'A' + 'a')
                                                : character;
}

char upperAscii(char character) {
    return character >= 'a' && character <= 'z' ? static_cast<char>(character - 'a' + 'A')
                                                : character;
}

// `segment` (already folded when insensitive) equals subject[at, at + size).
bool segmentAt(std::string_view subject, size_t at, std::string_view segment, bool insensitive) {
    if (!insensitive) {
        return subject.compare(at, segment.size(), segment) == 0;
    }
    for (size_t index = 0; index < segment.size(); ++index) {
        if (lowerAscii(subject[at + index]) != segment[index]) {
            return false;
        }
    }
    return true;
}

// First position >= from where `segment` occurs within subject[from, limit).
std::optional<size_t> findSegment(std::string_view subject, size_t from, size_t limit,
                                  std::string_view segment, bool insensitive) {
    if (segment.size() > limit - from) {
        return std::nullopt;
    }
    for (size_t at = from; at + segment.size() <= limit; ++at) {
        if (segmentAt(subject, at, segment, insensitive)) {
            return at;
        }
    }
    return std::nullopt;
}

}  // namespace

Result<Pattern> Pattern::compile(std::string_view text, PatternRules rules) {
    Pattern pattern;
    if (text.starts_with('!')) {
        pattern.negative_ = true;
        text.remove_prefix(1);
    }
    if (text.starts_with('~')) {
        // Expressions are used as written: no decoding, no case folding
        // (§3.2: case-sensitive whatever the key).
        auto regex = Regex::compile(text.substr(1));
        if (!regex) {
            return regex.error();
        }
        pattern.regex_ = std::move(regex.value());
        return pattern;
    }
    if (text.find("**") != std::string_view::npos) {
        return Error{"the pattern \"" + std::string(text) + "\" has adjacent \"*\" wildcards"};
    }
    pattern.case_insensitive_ = rules.case_rule == PatternCase::Insensitive;
    // Split before decoding, as Unit does, so that "%2A" is a literal '*'.
    size_t start = 0;
    while (true) {
        size_t star = text.find('*', start);
        std::string_view raw = text.substr(
            start, star == std::string_view::npos ? std::string_view::npos : star - start);
        std::string segment;
        if (rules.decoding == PatternDecoding::None) {
            segment = std::string(raw);
        } else {
            auto decoded = percentDecode(raw, rules.decoding == PatternDecoding::PercentPlus);
            if (!decoded) {
                return Error{"the pattern \"" + std::string(text) +
                             "\" has an invalid percent-encoded sequence"};
            }
            segment = std::move(*decoded);
        }
        for (char& character : segment) {
            if (rules.case_rule == PatternCase::Insensitive) {
                character = lowerAscii(character);
            } else if (rules.case_rule == PatternCase::UpperCasedExact) {
                character = upperAscii(character);
            }
        }
        pattern.segments_.push_back(std::move(segment));
        if (star == std::string_view::npos) {
            break;
        }
        start = star + 1;
    }
    return pattern;
}

bool Pattern::bodyMatches(std::string_view subject) const {
    if (regex_) {
        return regex_->search(subject);
    }
    bool insensitive = case_insensitive_;
    if (segments_.size() == 1) {
        return subject.size() == segments_[0].size() &&
               segmentAt(subject, 0, segments_[0], insensitive);
    }
    // With wildcards: the first segment is a prefix, the last a suffix, the
    // ones between occur in order in what is left. Taking each middle one at
    // its earliest position is optimal because '*' absorbs any gap.
    const std::string& prefix = segments_.front();
    const std::string& suffix = segments_.back();
    if (prefix.size() + suffix.size() > subject.size()) {
        return false;
    }
    if (!segmentAt(subject, 0, prefix, insensitive) ||
        !segmentAt(subject, subject.size() - suffix.size(), suffix, insensitive)) {
        return false;
    }
    size_t position = prefix.size();
    size_t limit = subject.size() - suffix.size();
    for (size_t index = 1; index + 1 < segments_.size(); ++index) {
        auto found = findSegment(subject, position, limit, segments_[index], insensitive);
        if (!found) {
            return false;
        }
        position = *found + segments_[index].size();
    }
    return true;
}

Result<PatternSet> PatternSet::compile(const json::Value& value, PatternRules rules) {
    auto list = PatternList<Pattern>::compile(
        value, "a pattern", [&](std::string_view text) { return Pattern::compile(text, rules); });
    if (!list) {
        return list.error();
    }
    return PatternSet(std::move(*list));
}

}  // namespace canopy::routing
