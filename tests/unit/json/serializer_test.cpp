#include <gtest/gtest.h>

#include <string>
#include <variant>

#include "core/json/value.h"

namespace canopy::json {
namespace {

Value parseOk(std::string_view text) {
    auto result = parse(text);
    EXPECT_TRUE(std::holds_alternative<Value>(result)) << text;
    return std::holds_alternative<Value>(result) ? std::get<Value>(result) : Value();
}

constexpr std::string_view kNested = R"({
    "listeners": {"*:8080": {"pass": "routes"}},
    "routes": [
        {"match": {"uri": "/a"}, "action": {"pass": "applications/blog"}},
        {"action": {"share": "/www"}}
    ],
    "applications": {},
    "settings": {"http": {"max_body_size": 1e3}},
    "empty": [],
    "s": "x"
})";

TEST(JsonSerializePretty, NestedDocumentMatchesUnitByteForByte) {
    // A blank line follows a member whose value is a non-empty object or
    // array when another member follows; never between array elements, never
    // before a closing bracket.
    const std::string expected =
        "{\r\n"
        "\t\"listeners\": {\r\n"
        "\t\t\"*:8080\": {\r\n"
        "\t\t\t\"pass\": \"routes\"\r\n"
        "\t\t}\r\n"
        "\t},\r\n"
        "\r\n"
        "\t\"routes\": [\r\n"
        "\t\t{\r\n"
        "\t\t\t\"match\": {\r\n"
        "\t\t\t\t\"uri\": \"/a\"\r\n"
        "\t\t\t},\r\n"
        "\r\n"
        "\t\t\t\"action\": {\r\n"
        "\t\t\t\t\"pass\": \"applications/blog\"\r\n"
        "\t\t\t}\r\n"
        "\t\t},\r\n"
        "\t\t{\r\n"
        "\t\t\t\"action\": {\r\n"
        "\t\t\t\t\"share\": \"/www\"\r\n"
        "\t\t\t}\r\n"
        "\t\t}\r\n"
        "\t],\r\n"
        "\r\n"
        "\t\"applications\": {},\r\n"
        "\t\"settings\": {\r\n"
        "\t\t\"http\": {\r\n"
        "\t\t\t\"max_body_size\": 1e3\r\n"
        "\t\t}\r\n"
        "\t},\r\n"
        "\r\n"
        "\t\"empty\": [],\r\n"
        "\t\"s\": \"x\"\r\n"
        "}\r\n";
    EXPECT_EQ(serializePretty(parseOk(kNested)), expected);
}

TEST(JsonSerializePretty, ScalarsAndEmptyContainers) {
    EXPECT_EQ(serializePretty(Value("Reconfiguration done.")), "\"Reconfiguration done.\"\r\n");
    EXPECT_EQ(serializePretty(Value::object()), "{}\r\n");
    EXPECT_EQ(serializePretty(Value::array()), "[]\r\n");
    EXPECT_EQ(serializePretty(Value(Array{1, true})), "[\r\n\t1,\r\n\ttrue\r\n]\r\n");
    EXPECT_EQ(serializePretty(Value(Object{{"success", "Reconfiguration done."}})),
              "{\r\n\t\"success\": \"Reconfiguration done.\"\r\n}\r\n");
}

TEST(JsonSerialize, CompactHasNoSpaces) {
    EXPECT_EQ(serialize(parseOk(kNested)),
              R"({"listeners":{"*:8080":{"pass":"routes"}},"routes":[{"match":{"uri":"/a"},)"
              R"("action":{"pass":"applications/blog"}},{"action":{"share":"/www"}}],)"
              R"("applications":{},"settings":{"http":{"max_body_size":1e3}},"empty":[],"s":"x"})");
    EXPECT_EQ(serialize(Value()), "null");
    EXPECT_EQ(serialize(Value(false)), "false");
}

TEST(JsonSerialize, NumbersEchoTheirText) {
    EXPECT_EQ(serialize(parseOk("[2.0, 1e3, -0, 1.50, 12E-1]")), "[2.0,1e3,-0,1.50,12E-1]");
    EXPECT_EQ(serialize(Value(Array{3, 2.0, 0.25, int64_t{-9}})), "[3,2,0.25,-9]");
}

TEST(JsonSerialize, StringsAreEscapedMinimally) {
    Value value(std::string("\"\\/\n\t\r\b\f\x01\x1f\x7f \xC3\xA9\xF0\x9F\x98\x80"));
    EXPECT_EQ(serialize(value),
              "\"\\\"\\\\/\\n\\t\\r\\b\\f\\u0001\\u001F\x7f \xC3\xA9\xF0\x9F\x98\x80\"");
    EXPECT_EQ(serialize(Value(std::string("a\0b", 3))), "\"a\\u0000b\"");
    EXPECT_EQ(serialize(Value(Object{{"k\"ey", 1}})), "{\"k\\\"ey\":1}");
}

TEST(JsonSerialize, RoundTripsThroughTheParser) {
    Value original = parseOk(kNested);
    EXPECT_EQ(parseOk(serialize(original)), original);
    EXPECT_EQ(parseOk(serializePretty(original)), original);
    EXPECT_EQ(serialize(parseOk(serialize(original))), serialize(original));
}

}  // namespace
}  // namespace canopy::json
