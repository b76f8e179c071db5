// The application messages' payloads: what main and the prototype accept.

#include "core/application/start_request.h"

#include <gtest/gtest.h>

namespace canopy {
namespace {

std::string errorOf(std::string_view payload, std::optional<size_t> fd_count) {
    auto parsed = parseStartRequest(payload, fd_count);
    return parsed ? std::string("(accepted)") : parsed.error().message;
}

TEST(StartRequestTest, ParsesAWholeRequest) {
    auto parsed = parseStartRequest(
        R"({"app": "blog", "generation": 7, "conf": {"type": "python", "module": "wsgi"},
            "attachment": "canopy-app=1 socket=5", "descriptors": [5, 6, 7]})",
        3);
    ASSERT_TRUE(parsed.ok()) << parsed.error().message;
    EXPECT_EQ(parsed->app, "blog");
    EXPECT_EQ(parsed->generation, 7U);
    EXPECT_EQ(parsed->conf["module"], "wsgi");
    EXPECT_EQ(parsed->attachment, "canopy-app=1 socket=5");
    EXPECT_EQ(parsed->descriptors, (std::vector<int>{5, 6, 7}));
}

TEST(StartRequestTest, DescriptorsAndAttachmentMayBeAbsent) {
    auto parsed = parseStartRequest(R"({"app": "a", "generation": 0, "conf": {"type": "x"}})", 0);
    ASSERT_TRUE(parsed.ok()) << parsed.error().message;
    EXPECT_TRUE(parsed->descriptors.empty());
    EXPECT_EQ(parsed->attachment, "");
}

TEST(StartRequestTest, RefusesWhatCannotWork) {
    constexpr std::string_view kWhat = "malformed application start request: ";
    EXPECT_EQ(errorOf("nope", 0), std::string(kWhat) + "not a JSON object");
    EXPECT_EQ(errorOf(R"({"generation": 1, "conf": {"type": "x"}})", 0),
              std::string(kWhat) + "\"app\" must be a non-empty string");
    EXPECT_EQ(errorOf(R"({"app": "a", "generation": -1, "conf": {"type": "x"}})", 0),
              std::string(kWhat) + "\"generation\" must be a non-negative integer");
    EXPECT_EQ(errorOf(R"({"app": "a", "generation": 1, "conf": []})", 0),
              std::string(kWhat) + "\"conf\" must be the application's object");
    EXPECT_EQ(errorOf(R"({"app": "a", "generation": 1, "conf": {}})", 0),
              "application \"a\" has no \"type\"");
    EXPECT_EQ(
        errorOf(R"({"app": "a", "generation": 1, "conf": {"type": "x"}, "attachment": 5})", 0),
        std::string(kWhat) + "\"attachment\" must be a string");
    // 0-2 are the worker's stdin, stdout and stderr.
    EXPECT_EQ(
        errorOf(R"({"app": "a", "generation": 1, "conf": {"type": "x"}, "descriptors": [2]})", 1),
        std::string(kWhat) + "each descriptor number must be an integer from 3 to 1048576");
    EXPECT_EQ(
        errorOf(R"({"app": "a", "generation": 1, "conf": {"type": "x"}, "descriptors": [4, 4]})",
                2),
        std::string(kWhat) + "descriptor number 4 given twice");
    EXPECT_EQ(
        errorOf(R"({"app": "a", "generation": 1, "conf": {"type": "x"}, "descriptors": [4]})", 2),
        std::string(kWhat) + "1 descriptor numbers for 2 descriptors");
    // Without a count (main's prefork, the descriptors are elsewhere).
    EXPECT_EQ(errorOf(R"({"app": "a", "generation": 1, "conf": {"type": "x"}, "descriptors": [4]})",
                      std::nullopt),
              "(accepted)");
}

TEST(StartRequestTest, OtherMessages) {
    auto kill = parseWorkerKill(R"({"app": "blog", "pid": 42})");
    ASSERT_TRUE(kill.ok());
    EXPECT_EQ(kill->app, "blog");
    EXPECT_EQ(kill->pid, 42);
    EXPECT_FALSE(parseWorkerKill(R"({"app": "blog", "pid": 0})").ok());
    EXPECT_FALSE(parseWorkerKill(R"({"pid": 3})").ok());

    auto exited = parseWorkerExited(workerExitedPayload(42, 3 << 8));
    ASSERT_TRUE(exited.ok());
    EXPECT_EQ(exited->pid, 42);
    EXPECT_EQ(exited->status, 3 << 8);

    auto retire = parseRetireRequest(R"({"app": "blog", "generation": 3})");
    ASSERT_TRUE(retire.ok());
    EXPECT_EQ(retire->generation, 3U);
    EXPECT_FALSE(parseRetireRequest(R"({"app": "blog"})").ok());

    EXPECT_EQ(startedPid(startedReply(1234)), 1234);
    EXPECT_EQ(startedPid(startFailedReply("no")), std::nullopt);
    EXPECT_EQ(startFailedReply("user \"x\" not found"), R"({"error":"user \"x\" not found"})");
}

}  // namespace
}  // namespace canopy
