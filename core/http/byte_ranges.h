#pragma once

// The validators and partial answers of a static file (RFC 9110 §8.8, §13,
// §14): its ETag, conditional requests (304) and byte ranges (206, 416).
// Pure functions over header values; the router does the I/O.

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace canopy::http {

// `"<mtime hex>-<size hex>"`, quotes included, as nginx writes it.
std::string formatEtag(std::time_t mtime, uint64_t size);

// An IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") as a time; nullopt for
// anything else (the obsolete formats are not accepted).
std::optional<std::time_t> parseHttpDate(std::string_view text);

// Whether `if_none_match` (a field value: "*" or a list of entity tags)
// names `etag`, by weak comparison (a "W/" prefix is ignored).
bool etagListMatches(std::string_view if_none_match, std::string_view etag);

// Whether a GET or HEAD with these conditional fields (empty when absent)
// gets 304: If-None-Match decides when present, else If-Modified-Since
// (the file not changed since that date).
bool notModified(std::string_view if_none_match, std::string_view if_modified_since,
                 std::string_view etag, std::time_t mtime);

// Whether an If-Range value (empty when absent) lets the Range field apply:
// it must be the file's strong ETag or exactly its Last-Modified date.
bool ifRangeHolds(std::string_view if_range, std::string_view etag, std::string_view last_modified);

struct ByteRange {
    uint64_t first = 0;
    uint64_t length = 0;
    bool operator==(const ByteRange& other) const = default;
};

struct RangeRequest {
    enum class Kind : uint8_t {
        Whole,          // no usable Range field: 200 with the whole file
        Partial,        // 206 with `ranges` (one: single part; more: multipart)
        Unsatisfiable,  // 416 with "Content-Range: bytes */size"
    };
    Kind kind = Kind::Whole;
    // Sorted, overlapping and adjacent ranges merged, each within the file.
    std::vector<ByteRange> ranges;
};

// Most ranges one request may ask for; more and the field is ignored (a
// defence against requests that cost far more than the file).
inline constexpr size_t kMaxRanges = 64;

// Interprets a Range field value for a file of `size` bytes. A field with
// another unit, bad syntax or too many ranges is ignored (Whole), as
// RFC 9110 §14.2 allows; satisfiable ranges are kept and clamped to the
// file; none satisfiable (including "bytes=-0" and any range of an empty
// file) is Unsatisfiable.
RangeRequest parseRange(std::string_view value, uint64_t size);

// "bytes first-last/size".
std::string contentRange(const ByteRange& range, uint64_t size);

}  // namespace canopy::http
