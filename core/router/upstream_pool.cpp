#include "core/router/upstream_pool.h"

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <algorithm>
#include <boost/asio/generic/basic_endpoint.hpp>

namespace canopy {

UpstreamPool& UpstreamPool::forThisThread() {
    thread_local UpstreamPool pool;
    return pool;
}

std::shared_ptr<UpstreamConnection> UpstreamPool::take(const std::string& address) {
    auto found = idle_.find(address);
    if (found == idle_.end()) {
        return nullptr;
    }
    auto& idle = found->second;
    auto now = std::chrono::steady_clock::now();
    while (!idle.empty()) {
        // The most recently used first: the likeliest to be still open.
        std::shared_ptr<UpstreamConnection> connection = std::move(idle.back());
        idle.pop_back();
        connection->pooled = false;
        ++connection->watch_turn;
        boost::system::error_code ignored;
        if (now - connection->idle_since > kIdleTimeout) {
            connection->socket.close(ignored);
            continue;
        }
        connection->socket.cancel(ignored);  // ends the read watch
        return connection;
    }
    return nullptr;
}

void UpstreamPool::closeAll() {
    closed_ = true;
    for (auto& [address, idle] : idle_) {
        for (auto& connection : idle) {
            connection->pooled = false;
            boost::system::error_code ignored;
            connection->socket.close(ignored);
        }
    }
    idle_.clear();
}

void UpstreamPool::give(std::shared_ptr<UpstreamConnection> connection) {
    if (closed_) {
        boost::system::error_code ignored;
        connection->socket.close(ignored);
        return;
    }
    auto& idle = idle_[connection->address];
    auto now = std::chrono::steady_clock::now();
    // Close the connections unused for too long (the oldest are first).
    while (!idle.empty() && now - idle.front()->idle_since > kIdleTimeout) {
        idle.front()->pooled = false;
        boost::system::error_code ignored;
        idle.front()->socket.close(ignored);
        idle.erase(idle.begin());
    }
    if (idle.size() >= kMaxIdlePerServer) {
        boost::system::error_code ignored;
        connection->socket.close(ignored);
        return;
    }
    connection->pooled = true;
    connection->idle_since = now;
    uint64_t turn = ++connection->watch_turn;
    std::weak_ptr<UpstreamConnection> weak = connection;
    connection->socket.async_wait(UpstreamConnection::Socket::wait_read,
                                  [this, weak, turn](const boost::system::error_code& ec) {
                                      auto watched = weak.lock();
                                      if (!watched || ec == boost::asio::error::operation_aborted ||
                                          !watched->pooled || watched->watch_turn != turn) {
                                          return;
                                      }
                                      // Readable while idle: the server closed it (or sent bytes no
                                      // request asked for). Either way it cannot carry a request.
                                      drop(watched);
                                  });
    idle.push_back(std::move(connection));
}

void UpstreamPool::drop(const std::shared_ptr<UpstreamConnection>& connection) {
    auto found = idle_.find(connection->address);
    if (found == idle_.end()) {
        return;
    }
    auto& idle = found->second;
    idle.erase(std::remove(idle.begin(), idle.end(), connection), idle.end());
    connection->pooled = false;
    boost::system::error_code ignored;
    connection->socket.close(ignored);
}

void connectUpstream(
    const boost::asio::any_io_executor& executor, const SocketAddress& address,
    std::chrono::seconds timeout,
    std::function<void(std::shared_ptr<UpstreamConnection>, std::string, bool)> done) {
    using Socket = UpstreamConnection::Socket;
    struct Attempt {
        Attempt(const boost::asio::any_io_executor& executor, std::string text)
            : socket(executor), timer(executor), address(std::move(text)) {}
        Socket socket;
        boost::asio::steady_timer timer;
        std::string address;
        bool finished = false;
        bool timed_out = false;
    };
    auto attempt = std::make_shared<Attempt>(executor, address.text);
    boost::asio::generic::stream_protocol::endpoint endpoint(
        reinterpret_cast<const sockaddr*>(&address.storage), address.length, 0);
    boost::system::error_code ec;
    attempt->socket.open(endpoint.protocol(), ec);
    if (ec) {
        boost::asio::post(executor, [done = std::move(done), message = ec.message()] {
            done(nullptr, message, false);
        });
        return;
    }
    attempt->timer.expires_after(timeout);
    attempt->timer.async_wait([attempt](const boost::system::error_code& error) {
        if (error || attempt->finished) {
            return;
        }
        attempt->timed_out = true;
        boost::system::error_code ignored;
        attempt->socket.close(ignored);  // the connect below ends with an error
    });
    attempt->socket.async_connect(
        endpoint, [attempt, done = std::move(done)](const boost::system::error_code& error) {
            attempt->finished = true;
            attempt->timer.cancel();
            if (attempt->timed_out) {
                done(nullptr, "connecting timed out", true);
                return;
            }
            if (error) {
                done(nullptr, error.message(), false);
                return;
            }
            boost::system::error_code ignored;
            attempt->socket.non_blocking(true, ignored);
            if (attempt->socket.local_endpoint(ignored).protocol().family() != AF_UNIX) {
                int enabled = 1;
                ::setsockopt(attempt->socket.native_handle(), IPPROTO_TCP, TCP_NODELAY, &enabled,
                             sizeof enabled);
            }
            done(std::make_shared<UpstreamConnection>(std::move(attempt->socket), attempt->address),
                 "", false);
        });
}

}  // namespace canopy
