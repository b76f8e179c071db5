#pragma once

// A request for routing tests: owns the bytes a RequestView points at, as
// the HTTP engine's buffers do in production.

#include <deque>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "core/routing/request_target.h"
#include "core/routing/request_view.h"

namespace canopy::routing::testing {

class TestRequest {
  public:
    explicit TestRequest(std::string_view method = "GET", std::string_view target = "/") {
        setMethod(method);
        setTarget(target);
        view_.remote = *Address::parseIp("192.0.2.10");
        view_.local = *Address::parseIp("192.0.2.1");
    }
    TestRequest(const TestRequest&) = delete;
    TestRequest& operator=(const TestRequest&) = delete;

    TestRequest& setMethod(std::string_view method) {
        view_.method = keep(method);
        updateRequestLine();
        return *this;
    }
    // Sets $request_uri, the query and $uri as the engine would.
    TestRequest& setTarget(std::string_view target) {
        view_.target = keep(target);
        TargetParts parts = splitTarget(view_.target);
        view_.query = parts.query;
        view_.forgetComputed();
        auto path = normalizePath(parts.path);
        view_.setPath(std::holds_alternative<std::string>(path) ? std::get<std::string>(path)
                                                                : std::string("/"));
        updateRequestLine();
        return *this;
    }
    TestRequest& header(std::string_view name, std::string_view value) {
        headers_.push_back({keep(name), keep(value)});
        view_.headers = headers_;
        view_.forgetComputed();
        if (equalsIgnoreCase(name, "Host")) {
            view_.host = keep(normalizeHost(value).value_or(""));
        }
        return *this;
    }
    TestRequest& responseHeader(std::string_view name, std::string_view value) {
        response_headers_.push_back({keep(name), keep(value)});
        view_.response.headers = response_headers_;
        return *this;
    }
    TestRequest& https() {
        view_.scheme = Scheme::Https;
        return *this;
    }
    TestRequest& remote(Address address) {
        view_.remote = address;
        return *this;
    }
    TestRequest& local(Address address) {
        view_.local = address;
        return *this;
    }

    RequestView& view() { return view_; }
    operator const RequestView&() const { return view_; }  // NOLINT: test convenience

  private:
    std::string_view keep(std::string_view text) { return strings_.emplace_back(text); }
    void updateRequestLine() {
        view_.request_line =
            keep(std::string(view_.method) + " " + std::string(view_.target) + " HTTP/1.1");
    }

    std::deque<std::string> strings_;  // stable addresses
    std::vector<Header> headers_;
    std::vector<Header> response_headers_;
    RequestView view_;
};

// "192.0.2.1:8080" or "[2001:db8::1]:443" or "unix".
inline Address address(std::string_view text) {
    if (text == "unix") {
        return Address::unixSocket();
    }
    size_t colon = text.rfind(':');
    std::string_view host = text.substr(0, colon);
    auto port = static_cast<uint16_t>(std::stoi(std::string(text.substr(colon + 1))));
    Address ip = *Address::parseIp(host);
    if (ip.family() == Address::Family::IPv4) {
        std::array<uint8_t, 4> bytes;
        std::copy(ip.bytes(), ip.bytes() + 4, bytes.begin());
        return Address::ipv4(bytes, port);
    }
    std::array<uint8_t, 16> bytes;
    std::copy(ip.bytes(), ip.bytes() + 16, bytes.begin());
    return Address::ipv6(bytes, port);
}

}  // namespace canopy::routing::testing
