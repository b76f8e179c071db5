#pragma once

// What a failed validation reports: a Unit-style message for the "detail" of
// a 400 answer and the path of the offending value, so a user can GET it.

#include <cstddef>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "core/base/check.h"
#include "core/json/value.h"

namespace canopy::config {

struct ValidationError {
    // Unit-style sentence naming the key and the expected type or range:
    // `The "processes" value must be an integer or an object, but not a string.`
    std::string message;
    // Path of the offending value below /config, segments separated by "/".
    // "%" and "/" inside a key are percent-encoded ("%25", "%2F") so the path
    // can be appended to /config as is: `/listeners/unix:%2Ftmp%2Fa.sock/pass`.
    // "" is the root.
    std::string path;
};

// Success or the first error found.
class [[nodiscard]] ValidationResult {
  public:
    ValidationResult() = default;
    ValidationResult(ValidationError error) : error_(std::move(error)) {}  // NOLINT: implicit

    bool ok() const { return !error_.has_value(); }
    explicit operator bool() const { return ok(); }
    const ValidationError& error() const {
        CANOPY_CHECK(!ok(), "ValidationResult::error() on success");
        return *error_;
    }

  private:
    std::optional<ValidationError> error_;
};

// Where a value sits: its path (as in ValidationError::path) and how messages
// name it. A member is named by its key (`The "pass" value ...`), an array
// element by its array's key (`The "share" array element ...`), the root as
// "configuration".
class Location {
  public:
    Location() = default;  // the root of the configuration
    Location(std::string path, std::string name, bool element)
        : path_(std::move(path)), name_(std::move(name)), element_(element) {}

    const std::string& path() const { return path_; }
    // The member key or, for an element, the key of its array; "" at the root.
    const std::string& name() const { return name_; }

    Location member(std::string_view key) const;
    Location element(size_t index) const;

    // `"pass" value`, `"share" array element`, `configuration`: what follows
    // "The " in a message.
    std::string subject() const;

    // An error at this location.
    ValidationError error(std::string message) const { return {std::move(message), path_}; }

  private:
    std::string path_;
    std::string name_;
    bool element_ = false;
};

// "%" and "/" percent-encoded, so that a key is one path segment.
std::string encodePathSegment(std::string_view key);

// "a string", "an integer", "null": a JSON type name (as
// json::Value::typeName(true) gives it) with its article.
std::string withArticle(std::string_view type_name);

// The type of `value` with its article, integers told apart from numbers.
std::string describeType(const json::Value& value);

// `The "processes" value must be an integer or an object, but not a string.`
// `expected` lists type names ("integer", "object") in the order to print.
ValidationError typeError(const Location& where, std::initializer_list<std::string_view> expected,
                          const json::Value& actual);

// Quotes text for a message: `"text"`, with '"' and '\' escaped.
std::string inQuotes(std::string_view text);

}  // namespace canopy::config
