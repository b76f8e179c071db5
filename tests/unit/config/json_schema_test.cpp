#include "core/config/json_schema.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace canopy::config {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;

json::Value toValue(const Json& input) {
    switch (input.type()) {
        case Json::value_t::null:
            return json::Value();
        case Json::value_t::boolean:
            return json::Value(input.get<bool>());
        case Json::value_t::number_integer:
            return json::Value(input.get<int64_t>());
        case Json::value_t::number_unsigned:
            return json::Value(input.get<uint64_t>());
        case Json::value_t::number_float:
            return json::Value(input.get<double>());
        case Json::value_t::string:
            return json::Value(input.get<std::string>());
        case Json::value_t::array: {
            json::Array elements;
            for (const auto& element : input) {
                elements.push_back(toValue(element));
            }
            return json::Value(std::move(elements));
        }
        case Json::value_t::object: {
            json::Object members;
            for (const auto& [key, value] : input.items()) {
                members.push_back({key, toValue(value)});
            }
            return json::Value(std::move(members));
        }
        default:
            ADD_FAILURE() << "unexpected JSON type in the test suite";
            return json::Value();
    }
}

// ---- Debian's json-schema-test-suite, draft 4, supported keywords ----

class SchemaSuiteTest : public ::testing::TestWithParam<std::string> {};

TEST_P(SchemaSuiteTest, MatchesTheSuite) {
    std::filesystem::path file = std::filesystem::path(CANOPY_SCHEMA_SUITE_DIR) / GetParam();
    if (!std::filesystem::exists(file)) {
        GTEST_SKIP() << file << " is missing (install json-schema-test-suite)";
    }
    std::ifstream stream(file);
    Json groups = Json::parse(stream);
    size_t ran = 0;
    for (const auto& group : groups) {
        const Json& schema = group.at("schema");
        // Groups that lean on keywords outside the subset (patternProperties,
        // $ref, ...) are skipped; checkSchema must refuse exactly those.
        if (!checkSchema(schema)) {
            continue;
        }
        for (const auto& test : group.at("tests")) {
            auto result = validateAgainstSchema(toValue(test.at("data")), schema);
            EXPECT_EQ(result.ok(), test.at("valid").get<bool>())
                << GetParam() << ": " << group.at("description").get<std::string>() << " / "
                << test.at("description").get<std::string>()
                << (result.ok() ? std::string() : " — " + result.error().message);
            ++ran;
        }
    }
    EXPECT_GT(ran, 0u) << "no case of " << GetParam() << " ran";
}

INSTANTIATE_TEST_SUITE_P(Draft4, SchemaSuiteTest,
                         ::testing::Values("type.json", "properties.json", "required.json",
                                           "additionalProperties.json", "enum.json", "items.json",
                                           "minimum.json", "maximum.json", "oneOf.json",
                                           "anyOf.json", "allOf.json", "not.json", "minLength.json",
                                           "maxLength.json", "minItems.json", "maxItems.json",
                                           "minProperties.json", "maxProperties.json",
                                           "pattern.json"),
                         [](const ::testing::TestParamInfo<std::string>& param) {
                             std::string name = param.param.substr(0, param.param.find('.'));
                             return name;
                         });

// ---- checkSchema ----

TEST(CheckSchemaTest, AcceptsTheSubsetAndAnnotations) {
    Json schema = Json::parse(R"({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "python", "description": "keys", "default": {},
        "type": "object",
        "properties": {
            "module": {"type": "string", "minLength": 1},
            "threads": {"type": "integer", "minimum": 1, "exclusiveMaximum": 100},
            "path": {"type": ["string", "array"], "items": {"type": "string"}},
            "protocol": {"enum": ["wsgi", "asgi"]}
        },
        "required": ["module"],
        "additionalProperties": false,
        "oneOf": [true, {"maxProperties": 3}]
    })");
    EXPECT_TRUE(checkSchema(schema).ok());
}

TEST(CheckSchemaTest, RefusesAnUnsupportedKeywordNamingIt) {
    auto result = checkSchema(
        Json::parse(R"({"properties": {"module": {"type": "string", "format": "uri"}}})"));
    ASSERT_FALSE(result.ok());
    EXPECT_THAT(result.error().message, HasSubstr("unsupported keyword \"format\""));
    EXPECT_THAT(result.error().message, HasSubstr("/properties/module/format"));
}

TEST(CheckSchemaTest, RefusesRefsAndTupleItems) {
    EXPECT_FALSE(checkSchema(Json::parse(R"({"$ref": "#/definitions/a"})")).ok());
    auto tuple = checkSchema(Json::parse(R"({"items": [{"type": "string"}]})"));
    ASSERT_FALSE(tuple.ok());
    EXPECT_THAT(tuple.error().message, HasSubstr("items"));
}

TEST(CheckSchemaTest, RefusesMalformedKeywords) {
    EXPECT_FALSE(checkSchema(Json::parse(R"({"type": "float"})")).ok());
    EXPECT_FALSE(checkSchema(Json::parse(R"({"required": "module"})")).ok());
    EXPECT_FALSE(checkSchema(Json::parse(R"({"minLength": -1})")).ok());
    EXPECT_FALSE(checkSchema(Json::parse(R"({"oneOf": []})")).ok());
    EXPECT_FALSE(checkSchema(Json::parse(R"({"pattern": "("})")).ok());
    EXPECT_FALSE(checkSchema(Json::parse(R"("string")")).ok());
}

// ---- messages and paths ----

const Json kPython = Json::parse(R"({
    "type": "object",
    "properties": {
        "module": {"type": "string"},
        "threads": {"type": "integer", "minimum": 1},
        "path": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "protocol": {"enum": ["wsgi", "asgi"]},
        "prefix": {"type": "string", "pattern": "^/"},
        "targets": {
            "type": "object",
            "maxProperties": 254,
            "propertyNames": {"minLength": 1},
            "additionalProperties": {
                "type": "object",
                "properties": {"module": {"type": "string"}},
                "required": ["module"],
                "additionalProperties": false
            }
        }
    },
    "additionalProperties": false
})");

ValidationError failure(const char* instance, const Json& schema = kPython) {
    auto parsed = json::parse(instance);
    EXPECT_TRUE(std::holds_alternative<json::Value>(parsed)) << instance;
    auto result = validateAgainstSchema(std::get<json::Value>(parsed), schema,
                                        Location("/applications/app", "app", false));
    EXPECT_FALSE(result.ok()) << instance;
    return result.ok() ? ValidationError{} : result.error();
}

TEST(ValidateAgainstSchemaTest, TypeErrorNamesTheKeyAndBothTypes) {
    auto error = failure(R"({"module": 3})");
    EXPECT_EQ(error.message, "The \"module\" value must be a string, but not an integer.");
    EXPECT_EQ(error.path, "/applications/app/module");
}

TEST(ValidateAgainstSchemaTest, IntegralNumbersAreIntegers) {
    auto parsed = json::parse(R"({"threads": 2.0})");
    ASSERT_TRUE(std::holds_alternative<json::Value>(parsed));
    EXPECT_TRUE(validateAgainstSchema(std::get<json::Value>(parsed), kPython).ok());
    auto error = failure(R"({"threads": 2.5})");
    EXPECT_EQ(error.message, "The \"threads\" value must be an integer, but not a number.");
}

TEST(ValidateAgainstSchemaTest, RangeError) {
    auto error = failure(R"({"threads": 0})");
    EXPECT_EQ(error.message, "The \"threads\" value must be greater than or equal to 1.");
    EXPECT_EQ(error.path, "/applications/app/threads");
}

TEST(ValidateAgainstSchemaTest, UnknownKeyIsNamedWithItsPath) {
    auto error = failure(R"({"module": "wsgi", "callabel": "app"})");
    EXPECT_EQ(error.message, "Unknown parameter \"callabel\".");
    EXPECT_EQ(error.path, "/applications/app/callabel");
}

TEST(ValidateAgainstSchemaTest, RequiredKeyPointsAtTheObject) {
    auto error = failure(R"({"targets": {"front": {}}})");
    EXPECT_EQ(error.message, "Required parameter \"module\" is missing.");
    EXPECT_EQ(error.path, "/applications/app/targets/front");
}

TEST(ValidateAgainstSchemaTest, ArrayElementsHaveIndexedPaths) {
    auto error = failure(R"({"path": ["/a", 7]})");
    EXPECT_EQ(error.message, "The \"path\" array element must be a string, but not an integer.");
    EXPECT_EQ(error.path, "/applications/app/path/1");
}

TEST(ValidateAgainstSchemaTest, AlternativesSummarizeTypes) {
    auto error = failure(R"({"path": true})");
    EXPECT_EQ(error.message, "The \"path\" value must be a string or an array, but not a boolean.");
}

TEST(ValidateAgainstSchemaTest, EnumListsTheChoices) {
    auto error = failure(R"({"protocol": "cgi"})");
    EXPECT_EQ(error.message, "The \"protocol\" value must be one of \"wsgi\", \"asgi\".");
}

TEST(ValidateAgainstSchemaTest, PatternAndPropertyNames) {
    EXPECT_THAT(failure(R"({"prefix": "app"})").message, HasSubstr("regular expression \"^/\""));
    auto error = failure(R"({"targets": {"": {"module": "a"}}})");
    EXPECT_THAT(error.message, HasSubstr("Invalid member name \"\""));
    EXPECT_EQ(error.path, "/applications/app/targets/");
}

TEST(ValidateAgainstSchemaTest, KeysWithSlashesAreEncodedInPaths) {
    auto error = failure(R"({"targets": {"a/b%": {"module": 1}}})");
    EXPECT_EQ(error.path, "/applications/app/targets/a%2Fb%25/module");
}

TEST(ValidateAgainstSchemaTest, OneOfWithSeveralMatchesFails) {
    Json schema = Json::parse(R"({"oneOf": [{"type": "integer"}, {"minimum": 2}]})");
    auto error = failure("3", schema);
    EXPECT_THAT(error.message, HasSubstr("more than one"));
}

TEST(ValidateAgainstSchemaTest, UncheckedSchemaIsRefusedNotHalfApplied) {
    Json schema = Json::parse(R"({"type": "object", "patternProperties": {"^x": false}})");
    auto error = failure(R"({"xa": 1})", schema);
    EXPECT_THAT(error.message, HasSubstr("patternProperties"));
}

TEST(ValidateAgainstSchemaTest, LengthsCountCodePoints) {
    Json schema = Json::parse(R"({"maxLength": 2})");
    auto parsed = json::parse("\"\xC3\xA9\xC3\xA9\"");  // "éé": 4 bytes, 2 characters
    ASSERT_TRUE(std::holds_alternative<json::Value>(parsed));
    EXPECT_TRUE(validateAgainstSchema(std::get<json::Value>(parsed), schema).ok());
}

TEST(ValidateAgainstSchemaTest, RootMessagesSayConfiguration) {
    auto result = validateAgainstSchema(json::Value("x"), Json::parse(R"({"type": "object"})"));
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.error().message, "The configuration must be an object, but not a string.");
    EXPECT_EQ(result.error().path, "");
}

}  // namespace
}  // namespace canopy::config
