#include "core/router/upstreams.h"

#include <fmt/format.h>

#include <algorithm>

namespace canopy {

Result<std::shared_ptr<UpstreamGroup>> UpstreamGroup::compile(const std::string& name,
                                                              const json::Value& value) {
    auto group = std::make_shared<UpstreamGroup>();
    group->name_ = name;
    const json::Value* servers = value.find("servers");
    if (servers == nullptr || !servers->isObject()) {
        return Error{fmt::format("The upstream \"{}\" has no \"servers\" object.", name)};
    }
    for (const auto& member : servers->asObject()) {
        auto address = parseSocketAddress(member.key);
        if (!address) {
            return Error{fmt::format("upstreams/{}: {}", name, address.error().message)};
        }
        Server server;
        server.address = std::move(*address);
        if (const json::Value* weight = member.value.find("weight");
            weight != nullptr && weight->isNumber()) {
            server.weight = weight->asNumber().value;
        }
        group->servers_.push_back(std::move(server));
    }
    return group;
}

std::optional<size_t> UpstreamGroup::pick(const std::vector<size_t>& tried, Clock::time_point now) {
    std::lock_guard lock(mutex_);
    std::optional<size_t> best;
    double total = 0;
    for (size_t index = 0; index < servers_.size(); ++index) {
        Server& server = servers_[index];
        if (server.weight <= 0 || now < server.failed_until ||
            std::find(tried.begin(), tried.end(), index) != tried.end()) {
            continue;
        }
        server.score += server.weight;
        total += server.weight;
        if (!best || server.score > servers_[*best].score) {
            best = index;
        }
    }
    if (best) {
        servers_[*best].score -= total;
    }
    return best;
}

void UpstreamGroup::failed(size_t server, Clock::time_point now) {
    std::lock_guard lock(mutex_);
    servers_[server].failed_until = now + kFailureSkip;
}

}  // namespace canopy
