#pragma once

// A minimal HTTP/1.1 client for the control API: one request per
// connection (the API closes after each answer), over a Unix socket or TCP,
// with one deadline for the whole exchange.

#include <sys/socket.h>

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/base/result.h"

namespace canopy::cli {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
    std::string method;
    std::string target;  // already percent-encoded: "/config/listeners/%2A%3A8080"
    std::string body;
    Headers headers;  // beyond Host, Content-Length and Connection
};

struct HttpAnswer {
    int status = 0;
    std::string reason;
    Headers headers;  // names in lower case
    std::string body;

    // The first header of that name (case-insensitive), or nullptr.
    const std::string* header(std::string_view name) const;
};

class ControlClient {
  public:
    // `address`: "unix:PATH" (relative paths allowed), "unix:@NAME"
    // (abstract), a path containing '/', or "ADDRESS:PORT" as canopyd's
    // --control takes it ("*:PORT" and "[::]:PORT" reach the loopback).
    static Result<ControlClient> create(std::string address, std::chrono::milliseconds timeout);

    // Sends one request and reads the whole answer. Errors are one line for
    // the user: what failed, on which address, and what to do about it.
    Result<HttpAnswer> send(const HttpRequest& request) const;

    const std::string& address() const { return address_; }
    // Another address that was looked for, named in "no answer" errors.
    void setAlsoTried(std::string address) { also_tried_ = std::move(address); }

  private:
    ControlClient() = default;

    std::string address_;
    std::string also_tried_;
    sockaddr_storage storage_{};
    socklen_t length_ = 0;
    std::chrono::milliseconds timeout_{0};
};

}  // namespace canopy::cli
