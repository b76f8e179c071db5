#include "core/config/validation_error.h"

namespace canopy::config {

Location Location::member(std::string_view key) const {
    return Location(path_ + "/" + encodePathSegment(key), std::string(key), false);
}

Location Location::element(size_t index) const {
    // An element keeps its array's name: messages talk about "the "share"
    // array element", the path says which one.
    return Location(path_ + "/" + std::to_string(index), name_, true);
}

std::string Location::subject() const {
    if (name_.empty()) {
        return element_ ? "array element" : "configuration";
    }
    return inQuotes(name_) + (element_ ? " array element" : " value");
}

std::string encodePathSegment(std::string_view key) {
    std::string encoded;
    encoded.reserve(key.size());
    for (char character : key) {
        if (character == '%') {
            encoded += "%25";
        } else if (character == '/') {
            encoded += "%2F";
        } else {
            encoded += character;
        }
    }
    return encoded;
}

std::string withArticle(std::string_view type_name) {
    if (type_name == "null") {
        return "null";
    }
    bool vowel = !type_name.empty() &&
                 std::string_view("aeiou").find(type_name[0]) != std::string_view::npos;
    return std::string(vowel ? "an " : "a ") + std::string(type_name);
}

std::string describeType(const json::Value& value) {
    return withArticle(value.typeName(true));
}

ValidationError typeError(const Location& where, std::initializer_list<std::string_view> expected,
                          const json::Value& actual) {
    std::string list;
    size_t index = 0;
    for (std::string_view name : expected) {
        if (index > 0) {
            list +=
                (index + 1 == expected.size()) ? (expected.size() > 2 ? ", or " : " or ") : ", ";
        }
        list += withArticle(name);
        ++index;
    }
    std::string subject = where.subject();
    // Unit says "The configuration must be ...", never "The configuration value".
    return where.error("The " + subject + " must be " + list + ", but not " + describeType(actual) +
                       ".");
}

std::string inQuotes(std::string_view text) {
    std::string result = "\"";
    for (char character : text) {
        if (character == '"' || character == '\\') {
            result += '\\';
        }
        result += character;
    }
    result += '"';
    return result;
}

}  // namespace canopy::config
