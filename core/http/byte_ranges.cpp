#include "core/http/byte_ranges.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

namespace canopy::http {
namespace {

std::string_view trim(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
        text.remove_prefix(1);
    }
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) {
        text.remove_suffix(1);
    }
    return text;
}

bool equalsIgnoringCase(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) {
        return false;
    }
    for (size_t i = 0; i < a.size(); ++i) {
        char x = a[i] >= 'A' && a[i] <= 'Z' ? static_cast<char>(a[i] + 32) : a[i];
        char y = b[i] >= 'A' && b[i] <= 'Z' ? static_cast<char>(b[i] + 32) : b[i];
        if (x != y) {
            return false;
        }
    }
    return true;
}

// Digits only (no sign, no spaces); nullopt when empty or too large.
std::optional<uint64_t> number(std::string_view text) {
    if (text.empty()) {
        return std::nullopt;
    }
    uint64_t value = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size()) {
        return std::nullopt;
    }
    return value;
}

std::string_view withoutWeak(std::string_view tag) {
    if (tag.starts_with("W/")) {
        tag.remove_prefix(2);
    }
    return tag;
}

}  // namespace

std::string formatEtag(std::time_t mtime, uint64_t size) {
    return fmt::format("\"{:x}-{:x}\"", static_cast<uint64_t>(mtime), size);
}

std::optional<std::time_t> parseHttpDate(std::string_view text) {
    text = trim(text);
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    if (text.size() != 29 || text[3] != ',' || text[4] != ' ' || text[7] != ' ' ||
        text[11] != ' ' || text[16] != ' ' || text[19] != ':' || text[22] != ':' ||
        text.substr(25) != " GMT") {
        return std::nullopt;
    }
    static constexpr std::string_view kMonths = "JanFebMarAprMayJunJulAugSepOctNovDec";
    size_t month = kMonths.find(text.substr(8, 3));
    if (month == std::string_view::npos || month % 3 != 0) {
        return std::nullopt;
    }
    auto day = number(text.substr(5, 2));
    auto year = number(text.substr(12, 4));
    auto hour = number(text.substr(17, 2));
    auto minute = number(text.substr(20, 2));
    auto second = number(text.substr(23, 2));
    if (!day || !year || !hour || !minute || !second || *day < 1 || *day > 31 || *hour > 23 ||
        *minute > 59 || *second > 60) {
        return std::nullopt;
    }
    std::tm parts{};
    parts.tm_year = static_cast<int>(*year) - 1900;
    parts.tm_mon = static_cast<int>(month / 3);
    parts.tm_mday = static_cast<int>(*day);
    parts.tm_hour = static_cast<int>(*hour);
    parts.tm_min = static_cast<int>(*minute);
    parts.tm_sec = static_cast<int>(*second);
    return timegm(&parts);
}

bool etagListMatches(std::string_view if_none_match, std::string_view etag) {
    if_none_match = trim(if_none_match);
    if (if_none_match == "*") {
        return true;
    }
    while (!if_none_match.empty()) {
        size_t comma = if_none_match.find(',');
        std::string_view tag = trim(if_none_match.substr(0, comma));
        if (!tag.empty() && withoutWeak(tag) == withoutWeak(etag)) {
            return true;
        }
        if (comma == std::string_view::npos) {
            break;
        }
        if_none_match.remove_prefix(comma + 1);
    }
    return false;
}

bool notModified(std::string_view if_none_match, std::string_view if_modified_since,
                 std::string_view etag, std::time_t mtime) {
    if (!trim(if_none_match).empty()) {
        return etagListMatches(if_none_match, etag);
    }
    if (trim(if_modified_since).empty()) {
        return false;
    }
    auto since = parseHttpDate(if_modified_since);
    return since && mtime <= *since;
}

bool ifRangeHolds(std::string_view if_range, std::string_view etag,
                  std::string_view last_modified) {
    if_range = trim(if_range);
    if (if_range.empty()) {
        return true;
    }
    if (if_range.starts_with("W/")) {
        return false;  // a weak tag never validates a range
    }
    if (if_range.starts_with('"')) {
        return if_range == etag;
    }
    return if_range == last_modified;
}

RangeRequest parseRange(std::string_view value, uint64_t size) {
    RangeRequest whole;
    value = trim(value);
    size_t equals = value.find('=');
    if (equals == std::string_view::npos ||
        !equalsIgnoringCase(trim(value.substr(0, equals)), "bytes")) {
        return whole;
    }
    std::string_view list = value.substr(equals + 1);
    std::vector<ByteRange> ranges;
    size_t count = 0;
    bool any = false;
    while (true) {
        size_t comma = list.find(',');
        std::string_view item = trim(list.substr(0, comma));
        if (!item.empty()) {  // empty list elements are allowed (RFC 9110 §5.6.1)
            any = true;
            if (++count > kMaxRanges) {
                return whole;
            }
            size_t dash = item.find('-');
            if (dash == std::string_view::npos) {
                return whole;
            }
            std::string_view first_text = trim(item.substr(0, dash));
            std::string_view last_text = trim(item.substr(dash + 1));
            if (first_text.empty()) {
                auto suffix = number(last_text);
                if (!suffix) {
                    return whole;
                }
                if (*suffix > 0 && size > 0) {
                    uint64_t length = std::min(*suffix, size);
                    ranges.push_back({size - length, length});
                }
            } else {
                auto first = number(first_text);
                std::optional<uint64_t> last;
                if (!last_text.empty()) {
                    last = number(last_text);
                    if (!last) {
                        return whole;
                    }
                }
                if (!first || (last && *last < *first)) {
                    return whole;
                }
                if (*first < size) {
                    uint64_t end = last ? std::min(*last, size - 1) : size - 1;
                    ranges.push_back({*first, end - *first + 1});
                }
            }
        }
        if (comma == std::string_view::npos) {
            break;
        }
        list.remove_prefix(comma + 1);
    }
    if (!any) {
        return whole;
    }
    RangeRequest request;
    if (ranges.empty()) {
        request.kind = RangeRequest::Kind::Unsatisfiable;
        return request;
    }
    std::sort(ranges.begin(), ranges.end(),
              [](const ByteRange& a, const ByteRange& b) { return a.first < b.first; });
    for (const auto& range : ranges) {
        if (!request.ranges.empty()) {
            ByteRange& last = request.ranges.back();
            if (range.first <= last.first + last.length) {
                uint64_t end = std::max(last.first + last.length, range.first + range.length);
                last.length = end - last.first;
                continue;
            }
        }
        request.ranges.push_back(range);
    }
    request.kind = RangeRequest::Kind::Partial;
    return request;
}

std::string contentRange(const ByteRange& range, uint64_t size) {
    return fmt::format("bytes {}-{}/{}", range.first, range.first + range.length - 1, size);
}

}  // namespace canopy::http
