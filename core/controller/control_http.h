#pragma once

// The control socket's HTTP/1.1 dialect, as Unit's clients expect it: one
// request per connection, bodies framed by Content-Length, every answer JSON
// with `Connection: close`, `Server`, `Date` and `Content-Length`.

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace canopy {

struct ControlRequest {
    std::string method;
    std::string target;  // as sent: path and query, still percent-encoded
    std::string if_match;
    std::string body;
};

struct ControlResponse {
    int status = 200;
    std::string body;  // serialized JSON
    std::vector<std::pair<std::string, std::string>> headers;
};

using ControlResponder = std::function<void(ControlResponse)>;
using ControlHandler = std::function<void(ControlRequest, ControlResponder)>;

struct ControlHttpLimits {
    size_t max_head = 8 * 1024;
    size_t max_body = 64 * 1024 * 1024;
    std::chrono::seconds head_timeout{300};
    std::chrono::seconds idle_timeout{60};
};

// Accepts connections on a listening socket it does not own and hands each
// parsed request to `handler`, which answers through the responder, now or
// later (a change waits for the router).
class ControlHttpServer {
  public:
    ControlHttpServer(boost::asio::io_context& io, int listen_fd, ControlHandler handler,
                      ControlHttpLimits limits = {});
    void start();

  private:
    void acceptNext();

    boost::asio::io_context& io_;
    boost::asio::posix::stream_descriptor listener_;
    std::shared_ptr<ControlHandler> handler_;
    ControlHttpLimits limits_;
};

}  // namespace canopy
