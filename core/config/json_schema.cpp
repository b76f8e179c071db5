#include "core/config/json_schema.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <string_view>
#include <vector>

#include "core/config/regex.h"

namespace canopy::config {
namespace {

using Json = nlohmann::json;

constexpr std::array<std::string_view, 8> kAnnotations = {
    "$schema", "$id", "id", "$comment", "title", "description", "default", "examples"};

constexpr std::array<std::string_view, 7> kTypeNames = {"null",   "boolean", "integer", "number",
                                                        "string", "array",   "object"};

bool contains(const auto& list, std::string_view item) {
    return std::find(list.begin(), list.end(), item) != list.end();
}

std::string pointerJoin(const std::string& pointer, std::string_view token) {
    // JSON Pointer escaping: "~" → "~0", "/" → "~1".
    std::string result = pointer + "/";
    for (char character : token) {
        if (character == '~') {
            result += "~0";
        } else if (character == '/') {
            result += "~1";
        } else {
            result += character;
        }
    }
    return result;
}

Error schemaError(const std::string& pointer, const std::string& what) {
    return Error{what + " at " + (pointer.empty() ? std::string("the schema root") : pointer)};
}

bool isNonNegativeInteger(const Json& value) {
    if (value.is_number_unsigned()) {
        return true;
    }
    if (value.is_number_integer()) {
        return value.get<int64_t>() >= 0;
    }
    if (value.is_number_float()) {
        double number = value.get<double>();
        return number >= 0 && std::floor(number) == number;
    }
    return false;
}

Result<void> checkAt(const Json& schema, const std::string& pointer);

Result<void> checkSchemaList(const Json& list, const std::string& pointer,
                             std::string_view keyword) {
    if (!list.is_array() || list.empty()) {
        return schemaError(pointer, "keyword \"" + std::string(keyword) +
                                        "\" must be a non-empty array of schemas");
    }
    for (size_t index = 0; index < list.size(); ++index) {
        if (auto result = checkAt(list[index], pointerJoin(pointer, std::to_string(index)));
            !result) {
            return result;
        }
    }
    return {};
}

Result<void> checkAt(const Json& schema, const std::string& pointer) {
    if (schema.is_boolean()) {
        return {};
    }
    if (!schema.is_object()) {
        return schemaError(pointer, "a schema must be an object or a boolean");
    }
    for (const auto& [keyword, value] : schema.items()) {
        std::string here = pointerJoin(pointer, keyword);
        auto shapeError = [&](std::string_view expected) {
            return schemaError(here,
                               "keyword \"" + keyword + "\" must be " + std::string(expected));
        };
        if (contains(kAnnotations, keyword)) {
            continue;
        }
        if (keyword == "type") {
            auto known = [](const Json& name) {
                return name.is_string() && contains(kTypeNames, name.get<std::string>());
            };
            bool valid = known(value) || (value.is_array() && !value.empty() &&
                                          std::all_of(value.begin(), value.end(), known));
            if (!valid) {
                return shapeError("a type name or a non-empty array of type names");
            }
        } else if (keyword == "enum") {
            if (!value.is_array() || value.empty()) {
                return shapeError("a non-empty array");
            }
        } else if (keyword == "properties") {
            if (!value.is_object()) {
                return shapeError("an object of schemas");
            }
            for (const auto& [name, property] : value.items()) {
                if (auto result = checkAt(property, pointerJoin(here, name)); !result) {
                    return result;
                }
            }
        } else if (keyword == "required") {
            if (!value.is_array() || !std::all_of(value.begin(), value.end(), [](const Json& name) {
                    return name.is_string();
                })) {
                return shapeError("an array of strings");
            }
        } else if (keyword == "additionalProperties") {
            if (auto result = checkAt(value, here); !result) {
                return result;
            }
        } else if (keyword == "items") {
            if (value.is_array()) {
                return schemaError(here,
                                   "unsupported form of keyword \"items\" (an array of schemas)");
            }
            if (auto result = checkAt(value, here); !result) {
                return result;
            }
        } else if (keyword == "minimum" || keyword == "maximum") {
            if (!value.is_number()) {
                return shapeError("a number");
            }
        } else if (keyword == "exclusiveMinimum" || keyword == "exclusiveMaximum") {
            if (!value.is_number() && !value.is_boolean()) {
                return shapeError("a number or a boolean");
            }
        } else if (keyword == "minLength" || keyword == "maxLength" || keyword == "minItems" ||
                   keyword == "maxItems" || keyword == "minProperties" ||
                   keyword == "maxProperties") {
            if (!isNonNegativeInteger(value)) {
                return shapeError("a non-negative integer");
            }
        } else if (keyword == "anyOf" || keyword == "oneOf" || keyword == "allOf") {
            if (auto result = checkSchemaList(value, here, keyword); !result) {
                return result;
            }
        } else if (keyword == "not" || keyword == "propertyNames") {
            if (auto result = checkAt(value, here); !result) {
                return result;
            }
        } else if (keyword == "pattern") {
            if (!value.is_string()) {
                return shapeError("a string");
            }
            if (auto problem = regexCompileError(value.get<std::string>())) {
                return schemaError(here, "invalid regular expression: " + *problem);
            }
        } else {
            return schemaError(here, "unsupported keyword \"" + keyword + "\"");
        }
    }
    return {};
}

bool hasType(const json::Value& instance, std::string_view type) {
    if (type == "integer") {
        return instance.isInteger();
    }
    if (type == "number") {
        return instance.isNumber();
    }
    if (type == "null") {
        return instance.isNull();
    }
    if (type == "boolean") {
        return instance.isBool();
    }
    if (type == "string") {
        return instance.isString();
    }
    if (type == "array") {
        return instance.isArray();
    }
    return type == "object" && instance.isObject();
}

// The type names a "type" keyword allows, in schema order.
std::vector<std::string> typeList(const Json& type) {
    std::vector<std::string> names;
    if (type.is_string()) {
        names.push_back(type.get<std::string>());
    } else {
        for (const auto& name : type) {
            names.push_back(name.get<std::string>());
        }
    }
    return names;
}

// JSON Schema equality: numbers by value (1 equals 1.0), objects regardless
// of member order, booleans never equal to numbers.
bool equalsSchemaValue(const json::Value& instance, const Json& expected) {
    switch (instance.type()) {
        case json::Type::Null:
            return expected.is_null();
        case json::Type::Boolean:
            return expected.is_boolean() && expected.get<bool>() == instance.asBool();
        case json::Type::Number:
            return expected.is_number() && expected.get<double>() == instance.asNumber().value;
        case json::Type::String:
            return expected.is_string() &&
                   expected.get_ref<const std::string&>() == instance.asString();
        case json::Type::Array: {
            const auto& elements = instance.asArray();
            if (!expected.is_array() || expected.size() != elements.size()) {
                return false;
            }
            for (size_t index = 0; index < elements.size(); ++index) {
                if (!equalsSchemaValue(elements[index], expected[index])) {
                    return false;
                }
            }
            return true;
        }
        case json::Type::Object: {
            const auto& members = instance.asObject();
            if (!expected.is_object() || expected.size() != members.size()) {
                return false;
            }
            for (const auto& member : members) {
                auto found = expected.find(member.key);
                if (found == expected.end() || !equalsSchemaValue(member.value, *found)) {
                    return false;
                }
            }
            return true;
        }
    }
    return false;
}

size_t codePoints(std::string_view text) {
    // Counts bytes that start a UTF-8 sequence; a configuration string is
    // valid UTF-8 once parsed.
    return static_cast<size_t>(std::count_if(text.begin(), text.end(), [](char byte) {
        return (static_cast<unsigned char>(byte) & 0xC0) != 0x80;
    }));
}

std::string formatNumber(const Json& number) {
    return number.dump();
}

std::string plural(uint64_t count, std::string_view noun) {
    return std::to_string(count) + " " + std::string(noun) + (count == 1 ? "" : "s");
}

ValidationResult validateAt(const json::Value& instance, const Json& schema, const Location& where);

// Among failed alternatives, the error worth showing: the one of the only
// alternative whose "type" accepts the instance (it is what the user meant),
// else a summary.
ValidationError alternativesError(const json::Value& instance, const Json& alternatives,
                                  const std::vector<ValidationError>& errors,
                                  const Location& where) {
    std::vector<size_t> fitting;
    std::vector<std::string> all_types;
    bool all_typed = true;
    for (size_t index = 0; index < alternatives.size(); ++index) {
        const Json& alternative = alternatives[index];
        auto type = alternative.is_object() ? alternative.find("type") : alternative.end();
        if (!alternative.is_object() || type == alternative.end()) {
            all_typed = false;
            fitting.push_back(index);
            continue;
        }
        bool fits = false;
        for (const auto& name : typeList(*type)) {
            fits = fits || hasType(instance, name);
            if (!contains(all_types, name)) {
                all_types.push_back(name);
            }
        }
        if (fits) {
            fitting.push_back(index);
        }
    }
    if (fitting.size() == 1) {
        return errors[fitting.front()];
    }
    if (fitting.empty() && all_typed) {
        std::string list;
        for (size_t index = 0; index < all_types.size(); ++index) {
            if (index > 0) {
                list += index + 1 == all_types.size() ? (all_types.size() > 2 ? ", or " : " or ")
                                                      : ", ";
            }
            list += withArticle(all_types[index]);
        }
        return where.error("The " + where.subject() + " must be " + list + ", but not " +
                           describeType(instance) + ".");
    }
    return where.error("The " + where.subject() +
                       " does not match any of the allowed forms: " + errors.front().message);
}

ValidationResult validateObject(const json::Value& instance, const Json& schema,
                                const Location& where) {
    auto properties = schema.find("properties");
    auto additional = schema.find("additionalProperties");
    for (const auto& member : instance.asObject()) {
        Location member_where = where.member(member.key);
        const Json* property_schema = nullptr;
        if (properties != schema.end()) {
            auto found = properties->find(member.key);
            if (found != properties->end()) {
                property_schema = &*found;
            }
        }
        if (property_schema == nullptr && additional != schema.end()) {
            if (additional->is_boolean() && !additional->get<bool>()) {
                return member_where.error("Unknown parameter " + inQuotes(member.key) + ".");
            }
            property_schema = &*additional;
        }
        if (property_schema != nullptr) {
            if (auto result = validateAt(member.value, *property_schema, member_where); !result) {
                return result;
            }
        }
    }
    size_t count = instance.asObject().size();
    if (auto minimum = schema.find("minProperties"); minimum != schema.end()) {
        auto bound = minimum->get<uint64_t>();
        if (count < bound) {
            return where.error("The " + where.subject() + " must contain at least " +
                               plural(bound, "member") + ".");
        }
    }
    if (auto maximum = schema.find("maxProperties"); maximum != schema.end()) {
        auto bound = maximum->get<uint64_t>();
        if (count > bound) {
            return where.error("The " + where.subject() + " must contain at most " +
                               plural(bound, "member") + ".");
        }
    }
    if (auto names = schema.find("propertyNames"); names != schema.end()) {
        for (const auto& member : instance.asObject()) {
            Location member_where = where.member(member.key);
            if (auto result = validateAt(json::Value(member.key), *names, member_where); !result) {
                return member_where.error("Invalid member name " + inQuotes(member.key) +
                                          " in the " + where.subject() + ": " +
                                          result.error().message);
            }
        }
    }
    if (auto required = schema.find("required"); required != schema.end()) {
        for (const auto& name : *required) {
            const auto& key = name.get_ref<const std::string&>();
            if (instance.find(key) == nullptr) {
                return where.error("Required parameter " + inQuotes(key) + " is missing.");
            }
        }
    }
    return {};
}

ValidationResult validateAt(const json::Value& instance, const Json& schema,
                            const Location& where) {
    if (schema.is_boolean()) {
        if (schema.get<bool>()) {
            return {};
        }
        return where.error("The " + where.subject() + " is not allowed here.");
    }
    std::string subject = "The " + where.subject();

    if (auto type = schema.find("type"); type != schema.end()) {
        auto names = typeList(*type);
        bool matches = std::any_of(names.begin(), names.end(), [&](const std::string& name) {
            return hasType(instance, name);
        });
        if (!matches) {
            std::string list;
            for (size_t index = 0; index < names.size(); ++index) {
                if (index > 0) {
                    list +=
                        index + 1 == names.size() ? (names.size() > 2 ? ", or " : " or ") : ", ";
                }
                list += withArticle(names[index]);
            }
            return where.error(subject + " must be " + list + ", but not " +
                               describeType(instance) + ".");
        }
    }

    if (auto allowed = schema.find("enum"); allowed != schema.end()) {
        bool found = std::any_of(allowed->begin(), allowed->end(), [&](const Json& candidate) {
            return equalsSchemaValue(instance, candidate);
        });
        if (!found) {
            if (allowed->size() == 1) {
                return where.error(subject + " must be " + allowed->front().dump() + ".");
            }
            std::string list;
            for (size_t index = 0; index < allowed->size(); ++index) {
                list += (index == 0 ? "" : ", ") + (*allowed)[index].dump();
            }
            return where.error(subject + " must be one of " + list + ".");
        }
    }

    if (instance.isNumber()) {
        double value = instance.asNumber().value;
        auto minimum = schema.find("minimum");
        auto maximum = schema.find("maximum");
        auto exclusive_minimum = schema.find("exclusiveMinimum");
        auto exclusive_maximum = schema.find("exclusiveMaximum");
        bool minimum_is_exclusive = exclusive_minimum != schema.end() &&
                                    exclusive_minimum->is_boolean() &&
                                    exclusive_minimum->get<bool>();
        bool maximum_is_exclusive = exclusive_maximum != schema.end() &&
                                    exclusive_maximum->is_boolean() &&
                                    exclusive_maximum->get<bool>();
        if (minimum != schema.end()) {
            double bound = minimum->get<double>();
            if (minimum_is_exclusive ? !(value > bound) : !(value >= bound)) {
                return where.error(subject + " must be greater than " +
                                   (minimum_is_exclusive ? "" : "or equal to ") +
                                   formatNumber(*minimum) + ".");
            }
        }
        if (exclusive_minimum != schema.end() && exclusive_minimum->is_number() &&
            !(value > exclusive_minimum->get<double>())) {
            return where.error(subject + " must be greater than " +
                               formatNumber(*exclusive_minimum) + ".");
        }
        if (maximum != schema.end()) {
            double bound = maximum->get<double>();
            if (maximum_is_exclusive ? !(value < bound) : !(value <= bound)) {
                return where.error(subject + " must be less than " +
                                   (maximum_is_exclusive ? "" : "or equal to ") +
                                   formatNumber(*maximum) + ".");
            }
        }
        if (exclusive_maximum != schema.end() && exclusive_maximum->is_number() &&
            !(value < exclusive_maximum->get<double>())) {
            return where.error(subject + " must be less than " + formatNumber(*exclusive_maximum) +
                               ".");
        }
    }

    if (instance.isString()) {
        size_t length = codePoints(instance.asString());
        if (auto minimum = schema.find("minLength"); minimum != schema.end()) {
            auto bound = minimum->get<uint64_t>();
            if (length < bound) {
                return where.error(subject + " must be at least " + plural(bound, "character") +
                                   " long.");
            }
        }
        if (auto maximum = schema.find("maxLength"); maximum != schema.end()) {
            auto bound = maximum->get<uint64_t>();
            if (length > bound) {
                return where.error(subject + " must be at most " + plural(bound, "character") +
                                   " long.");
            }
        }
        if (auto pattern = schema.find("pattern"); pattern != schema.end()) {
            const auto& expression = pattern->get_ref<const std::string&>();
            if (!regexSearch(expression, instance.asString())) {
                return where.error(subject + " must match the regular expression " +
                                   inQuotes(expression) + ".");
            }
        }
    }

    if (instance.isArray()) {
        const auto& elements = instance.asArray();
        if (auto minimum = schema.find("minItems"); minimum != schema.end()) {
            auto bound = minimum->get<uint64_t>();
            if (elements.size() < bound) {
                return where.error(subject + " must contain at least " + plural(bound, "element") +
                                   ".");
            }
        }
        if (auto maximum = schema.find("maxItems"); maximum != schema.end()) {
            auto bound = maximum->get<uint64_t>();
            if (elements.size() > bound) {
                return where.error(subject + " must contain at most " + plural(bound, "element") +
                                   ".");
            }
        }
        if (auto items = schema.find("items"); items != schema.end()) {
            for (size_t index = 0; index < elements.size(); ++index) {
                if (auto result = validateAt(elements[index], *items, where.element(index));
                    !result) {
                    return result;
                }
            }
        }
    }

    if (instance.isObject()) {
        if (auto result = validateObject(instance, schema, where); !result) {
            return result;
        }
    }

    if (auto all = schema.find("allOf"); all != schema.end()) {
        for (const auto& part : *all) {
            if (auto result = validateAt(instance, part, where); !result) {
                return result;
            }
        }
    }

    if (auto forbidden = schema.find("not"); forbidden != schema.end()) {
        if (validateAt(instance, *forbidden, where)) {
            return where.error(subject + " has a form that is not allowed here.");
        }
    }

    if (auto alternatives = schema.find("anyOf"); alternatives != schema.end()) {
        std::vector<ValidationError> errors;
        for (const auto& alternative : *alternatives) {
            auto result = validateAt(instance, alternative, where);
            if (result) {
                errors.clear();
                break;
            }
            errors.push_back(result.error());
        }
        if (!errors.empty()) {
            return alternativesError(instance, *alternatives, errors, where);
        }
    }

    if (auto alternatives = schema.find("oneOf"); alternatives != schema.end()) {
        std::vector<ValidationError> errors;
        size_t matches = 0;
        for (const auto& alternative : *alternatives) {
            auto result = validateAt(instance, alternative, where);
            if (result) {
                ++matches;
            } else {
                errors.push_back(result.error());
            }
        }
        if (matches == 0) {
            return alternativesError(instance, *alternatives, errors, where);
        }
        if (matches > 1) {
            return where.error(subject + " matches more than one of the allowed forms.");
        }
    }
    return {};
}

}  // namespace

Result<void> checkSchema(const nlohmann::json& schema) {
    return checkAt(schema, "");
}

ValidationResult validateAgainstSchema(const json::Value& instance, const nlohmann::json& schema,
                                       const Location& where) {
    // Checked on every call so that an unchecked schema can never be half
    // applied; it is small next to the configuration it validates.
    if (auto checked = checkSchema(schema); !checked) {
        return where.error("The schema for the " + where.subject() +
                           " is invalid: " + checked.error().message + ".");
    }
    return validateAt(instance, schema, where);
}

}  // namespace canopy::config
