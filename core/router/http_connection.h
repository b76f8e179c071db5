#pragma once

// One client connection on a worker thread: reads requests (pipelined and
// kept alive), routes each through the snapshot current at its arrival,
// answers, and enforces the timeouts and limits of settings.http.

#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/http/chunked_decoder.h"
#include "core/http/request_parser.h"
#include "core/router/router_snapshot.h"
#include "core/routing/address.h"

namespace canopy {

class RouterEngine;

class HttpConnection : public std::enable_shared_from_this<HttpConnection> {
  public:
    using Socket = boost::asio::generic::stream_protocol::socket;

    HttpConnection(Socket socket, std::string listener, RouterEngine& engine);
    ~HttpConnection();
    void start();

  private:
    enum class Phase { Idle, Head, Body, Sending, Closed };

    void waitForRequest();
    void readMore();
    void readAvailable();
    void beginHead();
    void onData(size_t length);
    void parseHead();
    void startRequest();
    void consumeBody();
    void dropConsumed();
    void respond();
    void send(bool close_after);
    void finishRequest();
    void fail(int status, const char* reason);
    void close();
    void armTimer(std::chrono::seconds timeout);
    void waitForDeadline();
    void setIdle(bool idle);

    Socket socket_;
    boost::asio::steady_timer timer_;
    std::string listener_;
    RouterEngine& engine_;
    std::shared_ptr<const RouterSnapshot> snapshot_;
    routing::Address remote_;
    routing::Address local_;

    std::vector<char> buffer_;
    size_t begin_ = 0;  // first byte of the current request
    size_t end_ = 0;    // end of the data read
    size_t head_size_ = 0;
    // Allocated while a request is read; an idle connection holds neither.
    std::unique_ptr<http::RequestParser> parser_;
    Phase phase_ = Phase::Idle;
    bool idle_counted_ = false;

    uint64_t body_remaining_ = 0;
    std::unique_ptr<http::ChunkedDecoder> chunked_;
    bool head_request_ = false;
    bool keep_alive_ = true;
    int status_ = 0;
    std::string response_;
    std::chrono::steady_clock::time_point deadline_;
    bool timer_waiting_ = false;
};

}  // namespace canopy
