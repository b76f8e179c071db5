#pragma once

// The JSON of the control API and the state file. Unit's users expect their
// configuration echoed as they sent it, so a Value keeps object members in
// insertion order and numbers with their original text; parsing accepts
// Unit's dialect (BOM, comments, trailing commas) and refuses duplicate keys.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace canopy::json {

class Value;
struct Member;
using Array = std::vector<Value>;
using Object = std::vector<Member>;  // insertion order; keys are unique

struct Number {
    std::string text;  // as written in the source, or as formatted when built
    double value = 0;

    // True when the value has no fraction ("2.0" and "1e3" count) and fits
    // int64_t.
    bool integral() const;
    // The value as an integer when integral(), else std::nullopt.
    std::optional<int64_t> integer() const;
};

// GCC's -Wshadow takes the enumerators Array and Object for shadows of the
// aliases above, though a scoped enum's names never clash with them.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
enum class Type { Null, Boolean, Number, String, Array, Object };
#pragma GCC diagnostic pop

class Value {
  public:
    Value() = default;                                            // null
    Value(std::nullptr_t) {}                                      // NOLINT: implicit by design
    Value(bool value) : data_(value) {}                           // NOLINT
    Value(int value);                                             // NOLINT
    Value(int64_t value);                                         // NOLINT
    Value(uint64_t value);                                        // NOLINT
    Value(double value);                                          // NOLINT
    Value(Number value) : data_(std::move(value)) {}              // NOLINT
    Value(std::string value) : data_(std::move(value)) {}         // NOLINT
    Value(std::string_view value) : data_(std::string(value)) {}  // NOLINT
    Value(const char* value) : data_(std::string(value)) {}       // NOLINT
    Value(Array value);                                           // NOLINT
    Value(Object value);                                          // NOLINT

    static Value object() { return Value(Object{}); }
    static Value array() { return Value(Array{}); }

    Type type() const;
    // "null", "boolean", "number" ("integer" for integral numbers when
    // `distinguish_integers`), "string", "array", "object": what validation
    // errors name.
    std::string_view typeName(bool distinguish_integers = false) const;

    bool isNull() const { return type() == Type::Null; }
    bool isBool() const { return type() == Type::Boolean; }
    bool isNumber() const { return type() == Type::Number; }
    bool isInteger() const { return isNumber() && asNumber().integral(); }
    bool isString() const { return type() == Type::String; }
    bool isArray() const { return type() == Type::Array; }
    bool isObject() const { return type() == Type::Object; }

    // Accessors check the type (CANOPY_CHECK) and fail loudly on a mismatch.
    bool asBool() const;
    const Number& asNumber() const;
    const std::string& asString() const;
    const Array& asArray() const;
    Array& asArray();
    const Object& asObject() const;
    Object& asObject();

    // Object members; nullptr when absent or when this is not an object.
    const Value* find(std::string_view key) const;
    Value* find(std::string_view key);
    // Replaces the member's value, or appends a member. Requires an object.
    Value& set(std::string key, Value value);
    // Removes a member; false when absent. Requires an object.
    bool erase(std::string_view key);

    // Structural equality; numbers compare by value, member order matters
    // not.
    bool operator==(const Value& other) const;

  private:
    // Value semantics: a copy is independent of its original.
    using Data = std::variant<std::monostate, bool, Number, std::string, Array, Object>;
    Data data_;
};

struct Member {
    std::string key;
    Value value;
};

struct ParseError {
    std::string detail;            // what is wrong, for the "detail" of an answer
    size_t offset = 0;             // bytes from the start, after a BOM
    std::optional<size_t> line;    // 1-based; absent when the prefix is not valid UTF-8
    std::optional<size_t> column;  // 1-based, in UTF-8 characters
};

// Parses Unit's dialect: optional UTF-8 BOM, // and /* */ comments, trailing
// commas; duplicate member names, numbers longer than 14 characters or
// beyond 2^63-1, and invalid strings are errors.
std::variant<Value, ParseError> parse(std::string_view text);

// Appends `text` as a JSON string literal (quoted, escaped as Unit does).
void appendQuoted(std::string& out, std::string_view text);

// Compact, as conf.json stores it.
std::string serialize(const Value& value);
// As the control API answers: TAB indentation, CRLF line ends, a blank line
// after a member whose value is a non-empty object or array, final CRLF.
std::string serializePretty(const Value& value);

}  // namespace canopy::json
