#include "core/json/value.h"

#include <array>
#include <charconv>
#include <cmath>
#include <limits>
#include <system_error>

#include "core/base/check.h"

namespace canopy::json {

namespace {

// 2^63 as a double: the first magnitude an int64_t cannot hold.
constexpr double kTwoTo63 = 9223372036854775808.0;

template <typename Integer>
Number integerNumber(Integer value) {
    std::array<char, 32> buffer{};
    auto [end, error] = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
    CANOPY_CHECK(error == std::errc(), "formatting an integer cannot fail");
    return Number{std::string(buffer.data(), end), static_cast<double>(value)};
}

// True when `text` is an optional '-' and decimal digits only: then the exact
// integer is in the text, while `value` may have lost precision past 2^53.
bool isIntegerLiteral(std::string_view text) {
    if (!text.empty() && text.front() == '-') {
        text.remove_prefix(1);
    }
    if (text.empty()) {
        return false;
    }
    for (char c : text) {
        if (c < '0' || c > '9') {
            return false;
        }
    }
    return true;
}

bool numbersEqual(const Number& left, const Number& right) {
    // Integers compare exactly (two int64_t above 2^53 may share a double);
    // everything else by value, so "1e3" equals "1000" and "2.0" equals "2".
    auto left_integer = left.integer();
    auto right_integer = right.integer();
    if (left_integer && right_integer) {
        return *left_integer == *right_integer;
    }
    return left.value == right.value;
}

}  // namespace

bool Number::integral() const {
    return integer().has_value();
}

std::optional<int64_t> Number::integer() const {
    if (isIntegerLiteral(text)) {
        int64_t result = 0;
        auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), result);
        if (error == std::errc() && end == text.data() + text.size()) {
            return result;
        }
        // Out of int64_t range (a uint64_t beyond 2^63-1): not an integer here.
        return std::nullopt;
    }
    if (!std::isfinite(value) || std::trunc(value) != value) {
        return std::nullopt;
    }
    if (value >= kTwoTo63 || value < -kTwoTo63) {
        return std::nullopt;
    }
    return static_cast<int64_t>(value);
}

Value::Value(int value) : data_(integerNumber(value)) {}
Value::Value(int64_t value) : data_(integerNumber(value)) {}
Value::Value(uint64_t value) : data_(integerNumber(value)) {}

Value::Value(double value) {
    // JSON has no NaN or infinity; producing one is a bug in the caller.
    CANOPY_CHECK(std::isfinite(value), "a JSON number must be finite");
    std::array<char, 32> buffer{};
    // Shortest text that reads back as the same double; integral values come
    // out without ".0" ("2"), large ones in exponent form ("1e+20").
    auto [end, error] = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
    CANOPY_CHECK(error == std::errc(), "formatting a double cannot fail");
    data_ = Number{std::string(buffer.data(), end), value};
}

Value::Value(Array value) : data_(std::move(value)) {}
Value::Value(Object value) : data_(std::move(value)) {}

Type Value::type() const {
    switch (data_.index()) {
        case 0:
            return Type::Null;
        case 1:
            return Type::Boolean;
        case 2:
            return Type::Number;
        case 3:
            return Type::String;
        case 4:
            return Type::Array;
        default:
            return Type::Object;
    }
}

std::string_view Value::typeName(bool distinguish_integers) const {
    switch (type()) {
        case Type::Null:
            return "null";
        case Type::Boolean:
            return "boolean";
        case Type::Number:
            return distinguish_integers && asNumber().integral() ? "integer" : "number";
        case Type::String:
            return "string";
        case Type::Array:
            return "array";
        case Type::Object:
            return "object";
    }
    return "null";
}

bool Value::asBool() const {
    CANOPY_CHECK(isBool(), "json::Value is not a boolean");
    return std::get<bool>(data_);
}

const Number& Value::asNumber() const {
    CANOPY_CHECK(isNumber(), "json::Value is not a number");
    return std::get<Number>(data_);
}

const std::string& Value::asString() const {
    CANOPY_CHECK(isString(), "json::Value is not a string");
    return std::get<std::string>(data_);
}

const Array& Value::asArray() const {
    CANOPY_CHECK(isArray(), "json::Value is not an array");
    return std::get<Array>(data_);
}

Array& Value::asArray() {
    CANOPY_CHECK(isArray(), "json::Value is not an array");
    return std::get<Array>(data_);
}

const Object& Value::asObject() const {
    CANOPY_CHECK(isObject(), "json::Value is not an object");
    return std::get<Object>(data_);
}

Object& Value::asObject() {
    CANOPY_CHECK(isObject(), "json::Value is not an object");
    return std::get<Object>(data_);
}

const Value* Value::find(std::string_view key) const {
    if (!isObject()) {
        return nullptr;
    }
    // Linear: configuration objects are small, and order must be kept anyway.
    for (const Member& member : std::get<Object>(data_)) {
        if (member.key == key) {
            return &member.value;
        }
    }
    return nullptr;
}

Value* Value::find(std::string_view key) {
    return const_cast<Value*>(static_cast<const Value*>(this)->find(key));
}

Value& Value::set(std::string key, Value value) {
    Object& members = asObject();
    for (Member& member : members) {
        if (member.key == key) {
            member.value = std::move(value);
            return member.value;
        }
    }
    members.push_back(Member{std::move(key), std::move(value)});
    return members.back().value;
}

bool Value::erase(std::string_view key) {
    Object& members = asObject();
    for (auto it = members.begin(); it != members.end(); ++it) {
        if (it->key == key) {
            members.erase(it);
            return true;
        }
    }
    return false;
}

bool Value::operator==(const Value& other) const {
    if (type() != other.type()) {
        return false;
    }
    switch (type()) {
        case Type::Null:
            return true;
        case Type::Boolean:
            return asBool() == other.asBool();
        case Type::Number:
            return numbersEqual(asNumber(), other.asNumber());
        case Type::String:
            return asString() == other.asString();
        case Type::Array:
            return asArray() == other.asArray();
        case Type::Object: {
            const Object& members = asObject();
            if (members.size() != other.asObject().size()) {
                return false;
            }
            // Keys are unique, so equal sizes plus "every member found and
            // equal" is equality regardless of order.
            for (const Member& member : members) {
                const Value* counterpart = other.find(member.key);
                if (counterpart == nullptr || !(member.value == *counterpart)) {
                    return false;
                }
            }
            return true;
        }
    }
    return false;
}

}  // namespace canopy::json
