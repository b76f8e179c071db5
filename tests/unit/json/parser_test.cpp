#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <variant>

#include "core/json/value.h"

namespace canopy::json {
namespace {

Value parseOk(std::string_view text) {
    auto result = parse(text);
    if (auto* error = std::get_if<ParseError>(&result)) {
        ADD_FAILURE() << "unexpected error for <" << text << ">: " << error->detail << " at "
                      << error->offset;
        return Value();
    }
    return std::get<Value>(std::move(result));
}

ParseError parseError(std::string_view text) {
    auto result = parse(text);
    if (!std::holds_alternative<ParseError>(result)) {
        ADD_FAILURE() << "<" << text << "> parsed, but an error was expected";
        return ParseError{};
    }
    return std::get<ParseError>(std::move(result));
}

TEST(JsonParse, ScalarsAtTopLevel) {
    EXPECT_EQ(parseOk("4"), Value(4));
    EXPECT_EQ(parseOk("\"4\""), Value("4"));
    EXPECT_EQ(parseOk(" true "), Value(true));
    EXPECT_EQ(parseOk("false"), Value(false));
    EXPECT_EQ(parseOk("null"), Value());
}

TEST(JsonParse, NestedDocumentKeepsMemberOrder) {
    Value value = parseOk(R"({"z": [1, {"y": null}], "a": "b"})");
    ASSERT_TRUE(value.isObject());
    EXPECT_EQ(value.asObject()[0].key, "z");
    EXPECT_EQ(value.asObject()[1].key, "a");
    EXPECT_EQ(*value.find("z"), Value(Array{1, Value(Object{{"y", nullptr}})}));
}

TEST(JsonParse, ByteOrderMarkIsSkippedAndNotCounted) {
    EXPECT_EQ(parseOk("\xEF\xBB\xBF{\"a\": 1}"), Value(Object{{"a", 1}}));
    ParseError error = parseError("\xEF\xBB\xBF[1,x]");
    EXPECT_EQ(error.offset, 3u);
    EXPECT_EQ(error.column, 4u);
}

TEST(JsonParse, LineComments) {
    EXPECT_EQ(parseOk("// head\n{\"a\": // after colon\n 1 // tail\n}// end"),
              Value(Object{{"a", 1}}));
}

TEST(JsonParse, BlockComments) {
    EXPECT_EQ(parseOk("/* a */[/* b */1/* c */,/**/2/* d\n e */]/* f */"), Value(Array{1, 2}));
}

TEST(JsonParse, UnterminatedBlockCommentIsAnError) {
    ParseError error = parseError("[1] /* open");
    EXPECT_EQ(error.offset, 4u);
    EXPECT_NE(error.detail.find("comment"), std::string::npos) << error.detail;
}

TEST(JsonParse, LoneSlashIsAnError) {
    EXPECT_EQ(parseError("[1 / 2]").offset, 3u);
}

TEST(JsonParse, TrailingCommasAreAccepted) {
    EXPECT_EQ(parseOk("[1, 2,]"), Value(Array{1, 2}));
    EXPECT_EQ(parseOk("{\"a\": 1,}"), Value(Object{{"a", 1}}));
    EXPECT_EQ(parseOk("{\"a\": [1,], }"), Value(Object{{"a", Array{1}}}));
}

TEST(JsonParse, OnlyOneTrailingCommaAndNoLeadingComma) {
    EXPECT_EQ(parseError("[1,,]").offset, 3u);
    EXPECT_EQ(parseError("[,]").offset, 1u);
    EXPECT_EQ(parseError("{,}").offset, 1u);
    EXPECT_EQ(parseError("{\"a\":1,,}").offset, 7u);
}

TEST(JsonParse, DuplicateKeyIsAnErrorThatNamesTheKey) {
    ParseError error = parseError(R"({"pass": 1, "pass": 2})");
    EXPECT_EQ(error.offset, 12u);
    EXPECT_NE(error.detail.find("\"pass\""), std::string::npos) << error.detail;
    // Keys are compared after unescaping.
    EXPECT_EQ(parseError(R"({"a": 1, "\u0061": 2})").offset, 9u);
    // The same key in different objects is fine.
    EXPECT_TRUE(parseOk(R"({"a": {"a": 1}})").isObject());
}

TEST(JsonParse, NumberTextIsKept) {
    Value value = parseOk("[2.0, 1e3, -0, 1.50, 12E-1]");
    const Array& numbers = value.asArray();
    EXPECT_EQ(numbers[0].asNumber().text, "2.0");
    EXPECT_EQ(numbers[1].asNumber().text, "1e3");
    EXPECT_EQ(numbers[2].asNumber().text, "-0");
    EXPECT_EQ(numbers[3].asNumber().text, "1.50");
    EXPECT_EQ(numbers[4].asNumber().value, 1.2);
}

TEST(JsonParse, IntegralNumbersCountAsIntegers) {
    EXPECT_TRUE(parseOk("2.0").isInteger());
    EXPECT_TRUE(parseOk("1e3").isInteger());
    EXPECT_EQ(parseOk("1e3").asNumber().integer(), 1000);
    EXPECT_FALSE(parseOk("2.5").isInteger());
    EXPECT_EQ(parseOk("2.0").typeName(true), "integer");
}

TEST(JsonParse, NumberLiteralOfAtMostFourteenCharacters) {
    EXPECT_EQ(parseOk("99999999999999").asNumber().integer(), 99999999999999);  // 14
    EXPECT_EQ(parseOk("-9999999999999").asNumber().integer(), -9999999999999);  // 14 with '-'
    ParseError error = parseError("[100000000000000]");                         // 15
    EXPECT_EQ(error.offset, 1u);
    EXPECT_NE(error.detail.find("14"), std::string::npos) << error.detail;
    EXPECT_TRUE(std::holds_alternative<ParseError>(parse("-99999999999999")));
    EXPECT_FALSE(std::holds_alternative<ParseError>(parse("1.000000000000")));  // 14
    EXPECT_TRUE(std::holds_alternative<ParseError>(parse("1.0000000000000")));  // 15
    EXPECT_FALSE(std::holds_alternative<ParseError>(parse("1e000000000003")));  // 14
    EXPECT_TRUE(std::holds_alternative<ParseError>(parse("1e0000000000003")));
}

TEST(JsonParse, NumberMagnitudeAtMostTwoToThe63MinusOne) {
    EXPECT_EQ(parseOk("9.2e18").asNumber().integer(), 9200000000000000000);
    EXPECT_EQ(parseOk("-9.2e18").asNumber().integer(), -9200000000000000000);
    EXPECT_EQ(parseError("9.3e18").offset, 0u);
    EXPECT_EQ(parseError("-9.3e18").offset, 0u);
    EXPECT_EQ(parseError("1e19").offset, 0u);
    EXPECT_TRUE(std::holds_alternative<ParseError>(parse("1e400")));
    EXPECT_TRUE(std::holds_alternative<ParseError>(parse("1e-400")));
}

TEST(JsonParse, StrictNumberSyntax) {
    for (std::string_view bad : {"01", "-", "-a", "1.", "1.e3", "1e", "1e+", "+1", ".5", "0x1"}) {
        EXPECT_TRUE(std::holds_alternative<ParseError>(parse(bad))) << bad;
    }
    EXPECT_EQ(parseOk("0"), Value(0));
    EXPECT_EQ(parseOk("-0.5e+2"), Value(-50));
}

TEST(JsonParse, EscapesAndSurrogatePairs) {
    EXPECT_EQ(parseOk(R"("\"\\\/\b\f\n\r\t")"), Value("\"\\/\b\f\n\r\t"));
    EXPECT_EQ(parseOk(R"("\u00e9\u20AC")"), Value("\xC3\xA9\xE2\x82\xAC"));
    EXPECT_EQ(parseOk(R"("\ud83d\ude00")"), Value("\xF0\x9F\x98\x80"));  // U+1F600
    EXPECT_EQ(parseOk(R"("a\u0000b")").asString(), std::string("a\0b", 3));
}

TEST(JsonParse, LoneSurrogatesAreErrors) {
    EXPECT_EQ(parseError(R"(["\ud83d"])").offset, 2u);
    EXPECT_EQ(parseError(R"(["\ud83dx"])").offset, 2u);
    EXPECT_EQ(parseError(R"(["\ud83d\u0041"])").offset, 2u);
    EXPECT_EQ(parseError(R"(["\ude00"])").offset, 2u);
}

TEST(JsonParse, BadEscapesAreErrors) {
    EXPECT_EQ(parseError(R"("ab\x")").offset, 3u);
    EXPECT_EQ(parseError(R"("\u12G4")").offset, 1u);
    EXPECT_EQ(parseError(R"("\u12")").offset, 1u);
}

TEST(JsonParse, UnescapedControlCharacterIsAnError) {
    ParseError error = parseError("[\"a\tb\"]");
    EXPECT_EQ(error.offset, 3u);
    EXPECT_NE(error.detail.find("0x09"), std::string::npos) << error.detail;
    EXPECT_EQ(parseError("\"a\nb\"").offset, 2u);
}

TEST(JsonParse, InvalidUtf8InStringsIsAnError) {
    EXPECT_EQ(parseOk("\"caf\xC3\xA9\""), Value("caf\xC3\xA9"));
    EXPECT_EQ(parseError("\"ab\xFF\"").offset, 3u);
    EXPECT_EQ(parseError("\"ab\xC3\"").offset, 3u);            // truncated sequence
    EXPECT_EQ(parseError("\"\xC0\xAF\"").offset, 1u);          // overlong '/'
    EXPECT_EQ(parseError("\"\xED\xA0\x80\"").offset, 1u);      // encoded surrogate
    EXPECT_EQ(parseError("\"\xF4\x90\x80\x80\"").offset, 1u);  // beyond U+10FFFF
}

TEST(JsonParse, UnterminatedString) {
    EXPECT_EQ(parseError("[\"abc").offset, 1u);
}

TEST(JsonParse, ErrorLocationCountsCharactersNotBytes) {
    // Line 2; "é" and "€" are two and three bytes but one character each.
    ParseError error = parseError("{\"a\": 1,\n \"\xC3\xA9\xE2\x82\xAC\": x}");
    EXPECT_EQ(error.offset, 19u);
    EXPECT_EQ(error.line, 2u);
    EXPECT_EQ(error.column, 8u);
}

TEST(JsonParse, ErrorLocationOnFirstLine) {
    ParseError error = parseError("[1 2]");
    EXPECT_EQ(error.offset, 3u);
    EXPECT_EQ(error.line, 1u);
    EXPECT_EQ(error.column, 4u);
    EXPECT_FALSE(error.detail.empty());
}

TEST(JsonParse, ErrorLocationAbsentWhenTheLineIsNotUtf8) {
    // Invalid UTF-8 inside a comment is skipped, so the parser goes on to a
    // later error on the same line, whose column cannot be counted.
    ParseError error = parseError("[1 /* \xFF */ x]");
    EXPECT_EQ(error.offset, 11u);
    EXPECT_FALSE(error.line.has_value());
    EXPECT_FALSE(error.column.has_value());
}

TEST(JsonParse, DepthLimit) {
    std::string deep_ok = std::string(512, '[') + std::string(512, ']');
    EXPECT_TRUE(parseOk(deep_ok).isArray());
    std::string too_deep = std::string(513, '[') + std::string(513, ']');
    ParseError error = parseError(too_deep);
    EXPECT_EQ(error.offset, 512u);
    std::string hostile(1000000, '{');
    EXPECT_TRUE(std::holds_alternative<ParseError>(parse(hostile)));
}

TEST(JsonParse, TrailingGarbageIsAnError) {
    ParseError error = parseError("{} x");
    EXPECT_EQ(error.offset, 3u);
    EXPECT_EQ(parseError("1 2").offset, 2u);
    EXPECT_EQ(parseError("[]]").offset, 2u);
    EXPECT_EQ(parseError("truex").offset, 4u);
}

TEST(JsonParse, EmptyAndTruncatedDocuments) {
    EXPECT_EQ(parseError("").offset, 0u);
    EXPECT_EQ(parseError("  // only a comment").offset, 19u);
    EXPECT_EQ(parseError("{\"a\"").offset, 4u);
    EXPECT_EQ(parseError("{\"a\":").offset, 5u);
    EXPECT_EQ(parseError("[1,").offset, 3u);
    EXPECT_EQ(parseError("tru").offset, 0u);
}

TEST(JsonParse, MissingColonOrSeparator) {
    EXPECT_EQ(parseError(R"({"a" 1})").offset, 5u);
    EXPECT_EQ(parseError(R"({"a": 1 "b": 2})").offset, 8u);
    EXPECT_EQ(parseError(R"({a: 1})").offset, 1u);
}

}  // namespace
}  // namespace canopy::json
