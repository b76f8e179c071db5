#pragma once

// The configuration's `upstreams` (config-schema §4) as the proxy uses them:
// each group's servers with their weights, chosen by smooth weighted
// round-robin (nginx's algorithm: every pick adds each live server's weight
// to its score, takes the highest score and subtracts the total from it, so
// weights 1 and 3 give b a b b, a b b b... — exactly 1:3 over every 4 picks).
// A server that refused a connection or timed out is skipped for
// kFailureSkip, then tried again.
//
// A group belongs to one snapshot but is shared by every worker thread: its
// scores and failure marks are the only state of a snapshot that changes
// after publication, behind the group's own lock (held for a few
// additions per request).

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/base/result.h"
#include "core/base/socket_address.h"
#include "core/json/value.h"

namespace canopy {

class UpstreamGroup {
  public:
    using Clock = std::chrono::steady_clock;
    // How long a failed server is left out (nginx's fail_timeout default).
    static constexpr std::chrono::seconds kFailureSkip{10};

    // `value` is the validated `{"servers": {"ADDRESS": {"weight": N}}}`.
    static Result<std::shared_ptr<UpstreamGroup>> compile(const std::string& name,
                                                          const json::Value& value);

    const std::string& name() const { return name_; }
    size_t size() const { return servers_.size(); }
    const SocketAddress& address(size_t server) const { return servers_[server].address; }

    // The next server by smooth weighted round-robin among those with a
    // weight above 0 that are not failed and not in `tried` (the servers
    // this request already failed on); nullopt when there is none.
    std::optional<size_t> pick(const std::vector<size_t>& tried, Clock::time_point now);
    // The server refused, reset or timed out: skip it for kFailureSkip.
    void failed(size_t server, Clock::time_point now);

  private:
    struct Server {
        SocketAddress address;
        double weight = 1;
        double score = 0;                  // smooth WRR's current weight
        Clock::time_point failed_until{};  // skipped until then
    };

    std::string name_;
    std::mutex mutex_;
    std::vector<Server> servers_;
};

}  // namespace canopy
