#pragma once

// Main answers the router's requests with a Reply whose payload is JSON:
// the result, or {"error": "<reason>"}.

#include <string>
#include <variant>

#include "core/base/result.h"
#include "core/json/value.h"
#include "core/port/message.h"

namespace canopy {

// The reason in an {"error": ...} reply (or of the exchange's own failure),
// or `fallback` when the reply carries none.
inline std::string replyReason(const Result<Message>& reply, const std::string& fallback) {
    if (!reply) {
        return reply.error().message;
    }
    auto answer = json::parse(reply->payload);
    const auto* tree = std::get_if<json::Value>(&answer);
    const auto* error = tree == nullptr ? nullptr : tree->find("error");
    return error != nullptr && error->isString() ? error->asString() : fallback;
}

}  // namespace canopy
