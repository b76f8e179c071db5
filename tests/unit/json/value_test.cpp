#include "core/json/value.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>

namespace canopy::json {
namespace {

TEST(JsonValue, TypesAndNames) {
    EXPECT_EQ(Value().typeName(), "null");
    EXPECT_EQ(Value(nullptr).type(), Type::Null);
    EXPECT_EQ(Value(true).typeName(), "boolean");
    EXPECT_EQ(Value(3).typeName(), "number");
    EXPECT_EQ(Value(3).typeName(true), "integer");
    EXPECT_EQ(Value(2.5).typeName(true), "number");
    EXPECT_EQ(Value("x").typeName(), "string");
    EXPECT_EQ(Value::array().typeName(), "array");
    EXPECT_EQ(Value::object().typeName(), "object");
}

TEST(JsonValue, IntegersAreFormattedWithoutFraction) {
    EXPECT_EQ(Value(42).asNumber().text, "42");
    EXPECT_EQ(Value(int64_t{-7}).asNumber().text, "-7");
    EXPECT_EQ(Value(std::numeric_limits<uint64_t>::max()).asNumber().text, "18446744073709551615");
    EXPECT_EQ(Value(2.0).asNumber().text, "2");
    EXPECT_EQ(Value(0.1).asNumber().text, "0.1");
    EXPECT_EQ(Value(1e20).asNumber().text, "1e+20");
}

TEST(JsonValue, IntegralNumbers) {
    EXPECT_TRUE(Value(2.0).isInteger());
    EXPECT_FALSE(Value(2.5).isInteger());
    EXPECT_EQ(Value(2.0).asNumber().integer(), 2);
    EXPECT_EQ(Value(std::numeric_limits<int64_t>::max()).asNumber().integer(),
              std::numeric_limits<int64_t>::max());
    EXPECT_FALSE(Value(std::numeric_limits<uint64_t>::max()).asNumber().integral());
    EXPECT_TRUE((Number{"1e3", 1000}).integral());
    EXPECT_EQ((Number{"1e3", 1000}).integer(), 1000);
    EXPECT_FALSE((Number{"1.5", 1.5}).integer().has_value());
}

TEST(JsonValue, ObjectMembersKeepInsertionOrder) {
    Value object = Value::object();
    object.set("b", 1);
    object.set("a", 2);
    object.set("b", 3);  // replaced in place
    ASSERT_EQ(object.asObject().size(), 2u);
    EXPECT_EQ(object.asObject()[0].key, "b");
    EXPECT_EQ(*object.find("b"), Value(3));
    EXPECT_EQ(object.find("missing"), nullptr);
    EXPECT_EQ(Value(1).find("b"), nullptr);
    EXPECT_TRUE(object.erase("b"));
    EXPECT_FALSE(object.erase("b"));
    EXPECT_EQ(object.asObject().size(), 1u);
}

TEST(JsonValue, CopiesAreIndependent) {
    Value original = Value::object();
    original.set("list", Array{1, 2});
    Value copy = original;
    copy.find("list")->asArray().push_back(3);
    copy.set("extra", true);
    EXPECT_EQ(original.find("list")->asArray().size(), 2u);
    EXPECT_EQ(original.find("extra"), nullptr);
    EXPECT_NE(original, copy);
}

TEST(JsonValue, EqualityIgnoresMemberOrderAndNumberSpelling) {
    Value left(Object{{"a", 1}, {"b", Array{"x", nullptr}}});
    Value right(Object{{"b", Array{"x", nullptr}}, {"a", Value(Number{"1.0", 1.0})}});
    EXPECT_EQ(left, right);
    EXPECT_EQ(Value(Number{"1e3", 1000}), Value(1000));
    EXPECT_NE(Value(Array{1, 2}), Value(Array{2, 1}));
    EXPECT_NE(Value(1), Value("1"));
    EXPECT_NE(Value(Object{{"a", 1}}), Value(Object{{"a", 1}, {"b", 2}}));
    EXPECT_NE(Value(std::numeric_limits<int64_t>::max()),
              Value(std::numeric_limits<int64_t>::max() - 1));
}

TEST(JsonValueDeathTest, AccessorOfTheWrongTypeFailsLoudly) {
    EXPECT_DEATH((void)Value(1).asString(), "not a string");
}

}  // namespace
}  // namespace canopy::json
