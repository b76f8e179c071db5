#pragma once

// Addressing inside the configuration tree, as the control API does it
// (control-api.md §4.1, §4.2): a request path becomes a list of decoded
// segments, and segments select object members by name and array elements by
// decimal index. Edits never touch their input; they return a complete new
// tree, because the controller validates and applies a whole tree and keeps
// the old one when that fails.
//
// Two steps, like Unit's two layers:
//   normalizeRequestPath()  what Unit's HTTP parser does to the path: decode
//                           %XX except %2F and %25, merge "//", resolve "."
//                           and ".." segments;
//   splitPath()             what Unit's controller does: split on '/', check
//                           each segment's length, decode each on its own.
// So "%2F" survives the first step and becomes a '/' inside a key in the
// second: /config/listeners/unix:%2Fvar%2Frun%2Fapp.sock names the key
// "unix:/var/run/app.sock".
//
// All functions are pure; call them from any thread.

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "core/base/check.h"
#include "core/json/value.h"

namespace canopy::json {

// Unit refuses longer segments (measured before the segment's own decoding).
inline constexpr size_t kMaxPathSegmentLength = 256;

enum class PathErrorKind {
    // A bad '%' escape (or "%00", or ".." above the root) in the URL itself.
    // Unit's HTTP parser fails there: the connection is closed, no answer.
    MalformedUrl,
    // A segment longer than kMaxPathSegmentLength bytes. Unit: GET → 404,
    // PUT/POST/DELETE → 500 "Memory allocation failed.".
    SegmentTooLong,
    // A segment whose own percent-decoding fails (only possible through an
    // encoded "%25", e.g. "%25zz"). Answered like SegmentTooLong.
    BadSegmentEscape,
    // An empty segment in the middle ("/config//x" that was not normalized
    // first). Nothing is named "", so 404 for every method.
    EmptySegment,
};

struct PathError {
    PathErrorKind kind;
    std::string detail;  // for the log; the API answers with fixed titles
};

// Unit's HTTP-parser step. `raw_path` is the request-target without its
// query ("?...") or fragment, e.g. "/config/listeners/%2A%3A8080". Returns
// the path with every %XX decoded except %2F and %25 (kept as written, so a
// later split still sees them as data), runs of '/' merged into one, and "."
// and ".." segments resolved. Only MalformedUrl is returned as an error.
std::variant<std::string, PathError> normalizeRequestPath(std::string_view raw_path);

// Unit's controller step: "/config/listeners/%2A%3A8080" →
// {"config", "listeners", "*:8080"}. `path` must start with '/' (else
// EmptySegment, as nothing can be named by it); "/" alone
// gives no segments; one trailing '/' is ignored ("/config/" = "/config").
// Each segment is percent-decoded on its own. The first segment names the
// endpoint ("config", "status", ...); tree functions below take the rest.
std::variant<std::vector<std::string>, PathError> splitPath(std::string_view path);

// A segment used as an array index: decimal digits only (no sign, no
// spaces); leading zeros are accepted as Unit accepts them ("01" is 1).
// nullopt when not an index or beyond size_t.
std::optional<size_t> parseArrayIndex(std::string_view segment);

// The node at `path` under `root`, or nullptr when absent: a missing member,
// an index that is not a number or is out of range, or any step into a
// scalar. An empty path is the root itself. The pointer is into `root` and
// lives as long as `root` is not modified.
const Value* lookup(const Value& root, std::span<const std::string> path);

// Why an edit did not happen; the controller answers 404 / 405.
enum class EditError { NotFound, MethodNotAllowed };

// The new tree of a successful edit, or why it failed.
class [[nodiscard]] EditResult {
  public:
    EditResult(Value tree) : state_(std::move(tree)) {}  // NOLINT: implicit by design
    EditResult(EditError error) : state_(error) {}       // NOLINT

    bool ok() const { return std::holds_alternative<Value>(state_); }
    explicit operator bool() const { return ok(); }

    const Value& tree() const& {
        CANOPY_CHECK(ok(), "EditResult::tree() on a failed edit");
        return std::get<Value>(state_);
    }
    Value&& tree() && {
        CANOPY_CHECK(ok(), "EditResult::tree() on a failed edit");
        return std::get<Value>(std::move(state_));
    }
    EditError error() const {
        CANOPY_CHECK(!ok(), "EditResult::error() on a successful edit");
        return std::get<EditError>(state_);
    }

  private:
    std::variant<Value, EditError> state_;
};

// PUT. Empty path: `value` becomes the whole tree. Otherwise the parent
// (path minus its last segment) must exist: an object parent gets the member
// created or replaced (in place, keeping member order); an array parent gets
// element `index` replaced, or `value` appended when index == length.
// NotFound: parent missing or a scalar, index not a number or > length.
EditResult put(const Value& root, std::span<const std::string> path, Value value);

// POST. Appends `value` to the array at `path`. MethodNotAllowed: the path
// is empty (the root) or names something that is not an array. NotFound:
// nothing at `path`.
EditResult post(const Value& root, std::span<const std::string> path, Value value);

// DELETE. Empty path: the tree becomes {} (an empty object). Otherwise the
// member or element is removed, later elements shifting down. NotFound:
// nothing at `path`.
EditResult remove(const Value& root, std::span<const std::string> path);

}  // namespace canopy::json
