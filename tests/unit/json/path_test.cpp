#include "core/json/path.h"

#include <gtest/gtest.h>

#include <string>
#include <variant>
#include <vector>

namespace canopy::json {
namespace {

using Segments = std::vector<std::string>;

Segments split(std::string_view path) {
    auto result = splitPath(path);
    if (auto* error = std::get_if<PathError>(&result)) {
        ADD_FAILURE() << path << ": " << error->detail;
        return {};
    }
    return std::get<Segments>(result);
}

PathErrorKind splitError(std::string_view path) {
    auto result = splitPath(path);
    EXPECT_TRUE(std::holds_alternative<PathError>(result)) << path;
    return std::holds_alternative<PathError>(result) ? std::get<PathError>(result).kind
                                                     : PathErrorKind::EmptySegment;
}

std::string normalize(std::string_view raw) {
    auto result = normalizeRequestPath(raw);
    if (auto* error = std::get_if<PathError>(&result)) {
        ADD_FAILURE() << raw << ": " << error->detail;
        return {};
    }
    return std::get<std::string>(result);
}

Value parseOk(std::string_view text) {
    return std::get<Value>(parse(text));
}

Value sampleConfig() {
    return parseOk(R"({
        "listeners": {"*:8080": {"pass": "routes"}, "unix:/var/run/app.sock": {"pass": "x"}},
        "routes": [{"action": {"pass": "a"}}, {"action": {"pass": "b"}}],
        "applications": {}
    })");
}

// --- splitting ---------------------------------------------------------------

TEST(JsonPathSplit, DecodesEachSegment) {
    EXPECT_EQ(split("/config/listeners/%2A%3A8080"), (Segments{"config", "listeners", "*:8080"}));
    EXPECT_EQ(split("/config/listeners/*:8080"), (Segments{"config", "listeners", "*:8080"}));
    EXPECT_EQ(split("/config/listeners/unix:%2Fvar%2Frun%2Fapp.sock"),
              (Segments{"config", "listeners", "unix:/var/run/app.sock"}));
    EXPECT_EQ(split("/config/routes/0/action/pass"),
              (Segments{"config", "routes", "0", "action", "pass"}));
}

TEST(JsonPathSplit, RootAndTrailingSlash) {
    EXPECT_EQ(split("/"), Segments{});
    EXPECT_EQ(split("/config/"), Segments{"config"});
    EXPECT_EQ(split("/config"), Segments{"config"});
}

TEST(JsonPathSplit, EmptySegmentsNameNothing) {
    EXPECT_EQ(splitError("/config//listeners"), PathErrorKind::EmptySegment);
    EXPECT_EQ(splitError("/config//"), PathErrorKind::EmptySegment);
    EXPECT_EQ(splitError("//"), PathErrorKind::EmptySegment);
    EXPECT_EQ(splitError("config"), PathErrorKind::EmptySegment);
}

TEST(JsonPathSplit, SegmentLengthIsCheckedBeforeDecoding) {
    std::string at_limit(256, 'a');
    EXPECT_EQ(split("/config/" + at_limit), (Segments{"config", at_limit}));
    EXPECT_EQ(splitError("/config/" + std::string(257, 'a')), PathErrorKind::SegmentTooLong);
    // 86 escapes are 258 bytes encoded but only 86 decoded: still too long.
    std::string encoded;
    for (int i = 0; i < 86; ++i) {
        encoded += "%2F";
    }
    EXPECT_EQ(splitError("/config/" + encoded), PathErrorKind::SegmentTooLong);
}

TEST(JsonPathSplit, BadEscapeInASegment) {
    EXPECT_EQ(splitError("/config/%zz"), PathErrorKind::BadSegmentEscape);
    EXPECT_EQ(splitError("/config/a%2"), PathErrorKind::BadSegmentEscape);
    EXPECT_EQ(splitError("/config/%"), PathErrorKind::BadSegmentEscape);
}

// --- the HTTP parser's step -------------------------------------------------

TEST(JsonPathNormalize, DecodesAllButSlashAndPercent) {
    EXPECT_EQ(normalize("/config/listeners/%2A%3A8080"), "/config/listeners/*:8080");
    EXPECT_EQ(normalize("/config/listeners/unix:%2Fvar%2frun"),
              "/config/listeners/unix:%2Fvar%2frun");
    EXPECT_EQ(normalize("/config/a%2541"), "/config/a%2541");
    // Then the controller's step decodes them once.
    EXPECT_EQ(split(normalize("/config/a%2541")), (Segments{"config", "a%41"}));
    EXPECT_EQ(split(normalize("/config/unix:%2Fa")), (Segments{"config", "unix:/a"}));
}

TEST(JsonPathNormalize, MergesSlashesAndResolvesDots) {
    EXPECT_EQ(normalize("/config//listeners"), "/config/listeners");
    EXPECT_EQ(normalize("/config/"), "/config/");
    EXPECT_EQ(normalize("/config///"), "/config/");
    EXPECT_EQ(normalize("/config/./listeners/../routes"), "/config/routes");
    EXPECT_EQ(normalize("/config/%2E%2E/status"), "/status");
    EXPECT_EQ(normalize("/config/."), "/config/.");  // a final dot is a name
}

TEST(JsonPathNormalize, MalformedUrls) {
    for (std::string_view raw : {"/config/%", "/config/%2", "/config/%G0", "/a%00", "/../x", "x"}) {
        auto result = normalizeRequestPath(raw);
        ASSERT_TRUE(std::holds_alternative<PathError>(result)) << raw;
        EXPECT_EQ(std::get<PathError>(result).kind, PathErrorKind::MalformedUrl) << raw;
    }
}

// --- lookup -----------------------------------------------------------------

TEST(JsonPathLookup, MembersElementsAndScalars) {
    Value config = sampleConfig();
    EXPECT_EQ(lookup(config, Segments{}), &config);
    ASSERT_NE(lookup(config, Segments{"listeners", "*:8080", "pass"}), nullptr);
    EXPECT_EQ(*lookup(config, Segments{"listeners", "*:8080", "pass"}), Value("routes"));
    EXPECT_EQ(*lookup(config, Segments{"listeners", "unix:/var/run/app.sock", "pass"}), Value("x"));
    EXPECT_EQ(*lookup(config, Segments{"routes", "1", "action", "pass"}), Value("b"));
    EXPECT_EQ(*lookup(config, Segments{"routes", "01", "action", "pass"}), Value("b"));
}

TEST(JsonPathLookup, NotFound) {
    Value config = sampleConfig();
    EXPECT_EQ(lookup(config, Segments{"nope"}), nullptr);
    EXPECT_EQ(lookup(config, Segments{"routes", "2"}), nullptr);
    EXPECT_EQ(lookup(config, Segments{"routes", "-1"}), nullptr);
    EXPECT_EQ(lookup(config, Segments{"routes", "+1"}), nullptr);
    EXPECT_EQ(lookup(config, Segments{"routes", "1a"}), nullptr);
    EXPECT_EQ(lookup(config, Segments{"routes", " 1"}), nullptr);
    EXPECT_EQ(lookup(config, Segments{"routes", "99999999999999999999999"}), nullptr);
    EXPECT_EQ(lookup(config, Segments{"routes", "action"}), nullptr);
    EXPECT_EQ(lookup(config, Segments{"listeners", "*:8080", "pass", "x"}), nullptr);
    EXPECT_EQ(lookup(config, Segments{"listeners", "0"}), nullptr);
}

TEST(JsonPathLookup, ArrayIndexSyntax) {
    EXPECT_EQ(parseArrayIndex("0"), 0u);
    EXPECT_EQ(parseArrayIndex("007"), 7u);
    EXPECT_FALSE(parseArrayIndex("").has_value());
    EXPECT_FALSE(parseArrayIndex("-0").has_value());
    EXPECT_FALSE(parseArrayIndex("+1").has_value());
    EXPECT_FALSE(parseArrayIndex("1.0").has_value());
}

// --- PUT --------------------------------------------------------------------

TEST(JsonPathPut, EmptyPathReplacesTheRoot) {
    EditResult result = put(sampleConfig(), Segments{}, Value(Object{{"a", 1}}));
    ASSERT_TRUE(result.ok());
    EXPECT_EQ(result.tree(), Value(Object{{"a", 1}}));
}

TEST(JsonPathPut, CreatesAndReplacesMembersLeavingTheInputAlone) {
    const Value config = sampleConfig();
    const Value before = config;
    EditResult created = put(config, Segments{"listeners", "*:8081"}, Value(Object{{"pass", "y"}}));
    ASSERT_TRUE(created.ok());
    EXPECT_EQ(*lookup(created.tree(), Segments{"listeners", "*:8081", "pass"}), Value("y"));
    EXPECT_EQ(created.tree().find("listeners")->asObject().back().key, "*:8081");

    EditResult replaced = put(config, Segments{"listeners", "*:8080", "pass"}, Value("z"));
    ASSERT_TRUE(replaced.ok());
    EXPECT_EQ(*lookup(replaced.tree(), Segments{"listeners", "*:8080", "pass"}), Value("z"));
    EXPECT_EQ(replaced.tree().find("listeners")->asObject().front().key, "*:8080");

    EXPECT_EQ(config, before);
    EXPECT_EQ(*lookup(config, Segments{"listeners", "*:8080", "pass"}), Value("routes"));
}

TEST(JsonPathPut, KeysFromEncodedPaths) {
    auto segments = std::get<Segments>(splitPath("/config/listeners/%2A%3A9000"));
    EditResult result = put(sampleConfig(), std::span(segments).subspan(1), Value(Object{}));
    ASSERT_TRUE(result.ok());
    EXPECT_NE(result.tree().find("listeners")->find("*:9000"), nullptr);

    segments = std::get<Segments>(splitPath("/config/listeners/unix:%2Ftmp%2Fa.sock"));
    result = put(sampleConfig(), std::span(segments).subspan(1), Value(Object{}));
    ASSERT_TRUE(result.ok());
    EXPECT_NE(result.tree().find("listeners")->find("unix:/tmp/a.sock"), nullptr);
}

TEST(JsonPathPut, ArrayParent) {
    const Value config = sampleConfig();
    EditResult replaced = put(config, Segments{"routes", "0"}, Value("r0"));
    ASSERT_TRUE(replaced.ok());
    EXPECT_EQ(replaced.tree().find("routes")->asArray().size(), 2u);
    EXPECT_EQ(replaced.tree().find("routes")->asArray()[0], Value("r0"));

    EditResult appended = put(config, Segments{"routes", "2"}, Value("r2"));
    ASSERT_TRUE(appended.ok());
    EXPECT_EQ(appended.tree().find("routes")->asArray().size(), 3u);
    EXPECT_EQ(appended.tree().find("routes")->asArray()[2], Value("r2"));

    EditResult beyond = put(config, Segments{"routes", "3"}, Value("r3"));
    ASSERT_FALSE(beyond.ok());
    EXPECT_EQ(beyond.error(), EditError::NotFound);
    EXPECT_EQ(put(config, Segments{"routes", "x"}, Value(1)).error(), EditError::NotFound);
    EXPECT_EQ(put(config, Segments{"routes", "-1"}, Value(1)).error(), EditError::NotFound);
}

TEST(JsonPathPut, MissingOrScalarParentIsNotFound) {
    const Value config = sampleConfig();
    EXPECT_EQ(put(config, Segments{"nope", "x"}, Value(1)).error(), EditError::NotFound);
    EXPECT_EQ(put(config, Segments{"listeners", "*:8080", "pass", "x"}, Value(1)).error(),
              EditError::NotFound);
    EXPECT_EQ(put(config, Segments{"routes", "5", "action"}, Value(1)).error(),
              EditError::NotFound);
}

// --- POST -------------------------------------------------------------------

TEST(JsonPathPost, AppendsToAnExistingArray) {
    const Value config = sampleConfig();
    EditResult result = post(config, Segments{"routes"}, Value(Object{{"action", "c"}}));
    ASSERT_TRUE(result.ok());
    const Array& routes = result.tree().find("routes")->asArray();
    ASSERT_EQ(routes.size(), 3u);
    EXPECT_EQ(routes[2], Value(Object{{"action", "c"}}));
    EXPECT_EQ(config.find("routes")->asArray().size(), 2u);
}

TEST(JsonPathPost, RootOrNonArrayIsMethodNotAllowed) {
    const Value config = sampleConfig();
    EXPECT_EQ(post(config, Segments{}, Value(1)).error(), EditError::MethodNotAllowed);
    EXPECT_EQ(post(config, Segments{"listeners"}, Value(1)).error(), EditError::MethodNotAllowed);
    EXPECT_EQ(post(config, Segments{"listeners", "*:8080", "pass"}, Value(1)).error(),
              EditError::MethodNotAllowed);
}

TEST(JsonPathPost, MissingTargetIsNotFound) {
    const Value config = sampleConfig();
    EXPECT_EQ(post(config, Segments{"nope"}, Value(1)).error(), EditError::NotFound);
    EXPECT_EQ(post(config, Segments{"routes", "7"}, Value(1)).error(), EditError::NotFound);
}

// --- DELETE -----------------------------------------------------------------

TEST(JsonPathRemove, EmptyPathLeavesAnEmptyObject) {
    EditResult result = remove(sampleConfig(), Segments{});
    ASSERT_TRUE(result.ok());
    EXPECT_EQ(result.tree(), Value::object());
}

TEST(JsonPathRemove, MembersAndShiftingElements) {
    const Value config = sampleConfig();
    EditResult member = remove(config, Segments{"listeners", "*:8080"});
    ASSERT_TRUE(member.ok());
    EXPECT_EQ(member.tree().find("listeners")->find("*:8080"), nullptr);
    EXPECT_NE(member.tree().find("listeners")->find("unix:/var/run/app.sock"), nullptr);

    EditResult element = remove(config, Segments{"routes", "0"});
    ASSERT_TRUE(element.ok());
    const Array& routes = element.tree().find("routes")->asArray();
    ASSERT_EQ(routes.size(), 1u);
    EXPECT_EQ(*lookup(element.tree(), Segments{"routes", "0", "action", "pass"}), Value("b"));

    EXPECT_EQ(config, sampleConfig());
}

TEST(JsonPathRemove, MissingIsNotFound) {
    const Value config = sampleConfig();
    EXPECT_EQ(remove(config, Segments{"nope"}).error(), EditError::NotFound);
    EXPECT_EQ(remove(config, Segments{"routes", "2"}).error(), EditError::NotFound);
    EXPECT_EQ(remove(config, Segments{"routes", "x"}).error(), EditError::NotFound);
    EXPECT_EQ(remove(config, Segments{"listeners", "*:8080", "pass", "x"}).error(),
              EditError::NotFound);
}

}  // namespace
}  // namespace canopy::json
