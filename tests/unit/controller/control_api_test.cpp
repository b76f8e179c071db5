// ControlApi against a fake backend: the queue, the router hand-shake and
// the rules that need other processes' answers.

#include "core/controller/control_api.h"

#include <gtest/gtest.h>

#include <variant>

#include "core/json/value.h"

namespace canopy {
namespace {

json::Value parsed(std::string_view text) {
    return std::get<json::Value>(json::parse(text));
}

class FakeBackend : public ControlBackend {
  public:
    void apply(const std::string& tree, std::function<void(Result<void>)> done) override {
        applied.push_back(tree);
        pending_applies.push_back(std::move(done));
    }
    void store(const std::string& tree, std::function<void(Result<void>)> done) override {
        stored.push_back(tree);
        done({});
    }
    void storeCertificate(const std::string&, const std::string&,
                          std::function<void(Result<json::Value>, ApiError)> done) override {
        done(parsed(R"json({"key": "RSA (2048 bits)", "chain": []})json"), {});
    }
    void deleteCertificate(const std::string& name,
                           std::function<void(Result<void>, ApiError)> done) override {
        deleted.push_back(name);
        done({}, {});
    }
    void status(std::function<void(Result<json::Value>)> done) override {
        done(parsed(R"({"connections": {"accepted": 3}, "requests": {"total": 7},
                        "applications": {}})"));
    }
    void restartApplication(const std::string&, std::function<void(Result<void>)> done) override {
        done({});
    }

    // Answers the oldest apply.
    void answerApply(Result<void> outcome) {
        auto done = std::move(pending_applies.front());
        pending_applies.erase(pending_applies.begin());
        done(std::move(outcome));
    }

    std::vector<std::string> applied;
    std::vector<std::string> stored;
    std::vector<std::string> deleted;
    std::vector<std::function<void(Result<void>)>> pending_applies;
};

class ControlApiTest : public ::testing::Test {
  protected:
    ControlApi& api(
        std::string_view configuration = R"({"listeners":{},"routes":[],"applications":{}})",
        std::string_view certificates = "{}") {
        api_ = std::make_unique<ControlApi>(backend_, ModuleRegistry{}, parsed(configuration),
                                            parsed(certificates));
        return *api_;
    }

    // Sends a request; the answer lands in `answers_` when it comes.
    void send(std::string method, std::string target, std::string body = {},
              std::string if_match = {}) {
        api_->handle({std::move(method), std::move(target), std::move(if_match), std::move(body)},
                     [this](ControlResponse response) { answers_.push_back(std::move(response)); });
    }

    json::Value answerJson(size_t index) { return parsed(answers_.at(index).body); }

    FakeBackend backend_;
    std::unique_ptr<ControlApi> api_;
    std::vector<ControlResponse> answers_;
};

TEST_F(ControlApiTest, RequestsWaitUntilTheRouterTookTheStoredTree) {
    api(R"({"routes": [{"action": {"return": 204}}]})");
    send("GET", "/config");
    EXPECT_TRUE(answers_.empty());
    api_->routerConnected();
    ASSERT_EQ(backend_.applied.size(), 1U);
    EXPECT_NE(backend_.applied[0].find("204"), std::string::npos);
    EXPECT_TRUE(answers_.empty());
    backend_.answerApply({});
    ASSERT_EQ(answers_.size(), 1U);
    EXPECT_EQ(answers_[0].status, 200);
}

TEST_F(ControlApiTest, RefusedStoredTreeFallsBackToTheDefault) {
    api(R"({"routes": [{"action": {"return": 204}}]})");
    api_->routerConnected();
    backend_.answerApply(Error{"cannot bind"});
    ASSERT_EQ(backend_.applied.size(), 2U);
    backend_.answerApply({});
    send("GET", "/config");
    ASSERT_EQ(answers_.size(), 1U);
    EXPECT_EQ(answerJson(0), parsed(R"({"listeners":{},"routes":[],"applications":{}})"));
}

TEST_F(ControlApiTest, RouterThatDiesBeforeAnsweringDoesNotCostTheConfiguration) {
    api(R"({"routes": [{"action": {"return": 204}}]})");
    api_->routerConnected();
    backend_.answerApply(Error{"the router process exited", EPIPE});
    EXPECT_EQ(backend_.applied.size(), 1U);  // no fallback to the empty tree
    send("GET", "/config/routes/0/action/return");
    EXPECT_TRUE(answers_.empty());  // waits for a router
    api_->routerConnected();
    ASSERT_EQ(backend_.applied.size(), 2U);
    EXPECT_NE(backend_.applied[1].find("204"), std::string::npos);
    backend_.answerApply({});
    ASSERT_EQ(answers_.size(), 1U);
    EXPECT_EQ(answers_[0].body, "204\r\n");
}

TEST_F(ControlApiTest, ChangesAreSerialisedAndEachIsAnswered) {
    api();
    api_->routerConnected();
    backend_.answerApply({});
    send("PUT", "/config/routes", R"([{"action": {"return": 204}}])");
    send("POST", "/config/routes", R"({"action": {"return": 404}})");
    // The second change waits for the first to be applied.
    ASSERT_EQ(backend_.pending_applies.size(), 1U);
    backend_.answerApply({});
    ASSERT_EQ(backend_.pending_applies.size(), 1U);
    backend_.answerApply({});
    ASSERT_EQ(answers_.size(), 2U);
    EXPECT_EQ(answers_[0].status, 200);
    EXPECT_EQ(answers_[1].status, 200);
    EXPECT_EQ(backend_.stored.size(), 2U);
    EXPECT_EQ(api_->configuration().find("routes")->asArray().size(), 2U);
}

TEST_F(ControlApiTest, RouterFailureKeepsTheOldTreeAndSaysWhy) {
    api();
    api_->routerConnected();
    backend_.answerApply({});
    send("PUT", "/config/routes", R"([{"action": {"return": 204}}])");
    backend_.answerApply(Error{"address already in use"});
    ASSERT_EQ(answers_.size(), 1U);
    EXPECT_EQ(answers_[0].status, 500);
    EXPECT_EQ(answerJson(0).find("detail")->asString(), "address already in use");
    EXPECT_TRUE(api_->configuration().find("routes")->asArray().empty());
    EXPECT_TRUE(backend_.stored.empty());
}

TEST_F(ControlApiTest, UsedCertificateCannotBeDeleted) {
    api(R"({"listeners": {"*:443": {"pass": "routes", "tls": {"certificate": ["a", "site"]}}},
            "routes": []})",
        R"({"site": {"key": null, "chain": []}, "spare": {"key": null, "chain": []}})");
    api_->routerConnected();
    backend_.answerApply({});
    send("DELETE", "/certificates/site");
    send("DELETE", "/certificates/spare");
    ASSERT_EQ(answers_.size(), 2U);
    EXPECT_EQ(answers_[0].status, 400);
    EXPECT_EQ(answerJson(0).find("error")->asString(), "Certificate is used in the configuration.");
    EXPECT_EQ(answers_[1].status, 200);
    EXPECT_EQ(backend_.deleted, std::vector<std::string>{"spare"});
}

TEST_F(ControlApiTest, StatusMergesModulesAndRouterCounters) {
    api();
    api_->routerConnected();
    backend_.answerApply({});
    send("GET", "/status/requests/total");
    send("GET", "/status/connections");
    ASSERT_EQ(answers_.size(), 2U);
    EXPECT_EQ(answers_[0].body, "7\r\n");
    EXPECT_EQ(answerJson(1).find("accepted")->asNumber().integer(), 3);
}

TEST_F(ControlApiTest, IfMatchGuardsWrites) {
    api();
    api_->routerConnected();
    backend_.answerApply({});
    std::string tag = api_->etag();
    send("PUT", "/config/routes", "[]", "\"0000\"");
    ASSERT_EQ(answers_.size(), 1U);
    EXPECT_EQ(answers_[0].status, 412);
    send("PUT", "/config/routes", "[]", tag);
    backend_.answerApply({});
    EXPECT_EQ(answers_.back().status, 200);
}

}  // namespace
}  // namespace canopy
