#pragma once

// Connections from a router worker to upstream servers, kept alive between
// requests: one pool per worker thread (a connection lives on the thread
// whose event loop drives it), keyed by the server's address. A connection
// goes back only after a complete response with nothing left unread and no
// request bytes left unsent; while it waits, a read watch drops it as soon
// as the server closes it or sends anything unasked.

#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/base/socket_address.h"

namespace canopy {

struct UpstreamConnection {
    using Socket = boost::asio::generic::stream_protocol::socket;

    explicit UpstreamConnection(Socket connected, std::string server)
        : socket(std::move(connected)), address(std::move(server)) {}

    Socket socket;
    std::string address;  // as configured: the pool's key and the logs' name
    // Pool bookkeeping: whether it waits in the pool, since when, and the
    // turn of its read watch (a watch from an earlier stay ignores itself).
    bool pooled = false;
    std::chrono::steady_clock::time_point idle_since{};
    uint64_t watch_turn = 0;
};

class UpstreamPool {
  public:
    // An idle connection is closed after this long unused (nginx's
    // keepalive_timeout default), and a worker keeps at most this many per
    // server.
    static constexpr std::chrono::seconds kIdleTimeout{60};
    static constexpr size_t kMaxIdlePerServer = 64;

    // The pool of the calling worker thread.
    static UpstreamPool& forThisThread();

    // An idle connection to `address`, or null.
    std::shared_ptr<UpstreamConnection> take(const std::string& address);
    // Keeps `connection` for the next request to its server.
    void give(std::shared_ptr<UpstreamConnection> connection);
    // For a worker that retires: closes the idle connections and keeps none
    // from now on (their read watches would keep its event loop alive).
    void closeAll();

  private:
    void drop(const std::shared_ptr<UpstreamConnection>& connection);

    std::map<std::string, std::vector<std::shared_ptr<UpstreamConnection>>, std::less<>> idle_;
    bool closed_ = false;
};

// Connects to `address` on `executor` within `timeout`. `done(connection,
// error)`: error is "" on success, else what went wrong ("connection
// refused", "timed out"...), and `timed_out` tells a timeout (504) from a
// refusal (502).
void connectUpstream(
    const boost::asio::any_io_executor& executor, const SocketAddress& address,
    std::chrono::seconds timeout,
    std::function<void(std::shared_ptr<UpstreamConnection>, std::string error, bool timed_out)>
        done);

}  // namespace canopy
