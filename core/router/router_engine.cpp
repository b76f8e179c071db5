#include "core/router/router_engine.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "core/base/log.h"
#include "core/router/http_connection.h"
#include "core/router/upstream_pool.h"

namespace canopy {

using Protocol = boost::asio::generic::stream_protocol;
using Acceptor = boost::asio::basic_socket_acceptor<Protocol>;

struct RouterEngine::Worker {
    boost::asio::io_context io{1};
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work =
        boost::asio::make_work_guard(io);
    std::map<std::string, std::unique_ptr<Acceptor>> acceptors;  // touched on `io` only
    std::thread thread;
};

void RouterEngine::submitApplication(std::shared_ptr<AppCall> call) {
    boost::asio::post(applications_executor_, [this, call = std::move(call)]() mutable {
        submit_application_(std::move(call));
    });
}

RouterEngine::RouterEngine(unsigned threads) {
    resize(threads);
}

RouterEngine::~RouterEngine() {
    for (auto& worker : workers_) {
        boost::asio::post(worker->io, [raw = worker.get()] { raw->io.stop(); });
    }
    for (auto& worker : retired_) {
        worker->io.stop();
    }
    for (auto* list : {&workers_, &retired_}) {
        for (auto& worker : *list) {
            if (worker->thread.joinable()) {
                worker->thread.join();
            }
        }
    }
}

void RouterEngine::publish(std::shared_ptr<const RouterSnapshot> snapshot) {
    std::lock_guard lock(snapshot_mutex_);
    snapshot_ = std::move(snapshot);
}

void RouterEngine::resize(unsigned threads) {
    threads = std::max(1U, threads);
    while (workers_.size() < threads) {
        startWorker();
    }
    while (workers_.size() > threads) {
        retireWorker();
    }
}

void RouterEngine::startWorker() {
    auto worker = std::make_unique<Worker>();
    Worker& added = *worker;
    workers_.push_back(std::move(worker));
    for (const auto& [address, listener] : listeners_) {
        int copy = ::fcntl(listener.fd.get(), F_DUPFD_CLOEXEC, 3);
        boost::asio::post(added.io,
                          [this, &added, address = address, copy, family = listener.family] {
                              auto acceptor = std::make_unique<Acceptor>(added.io);
                              acceptor->assign(Protocol(family, 0), copy);
                              added.acceptors[address] = std::move(acceptor);
                              accept(added, address);
                          });
    }
    added.thread = std::thread([&added] { added.io.run(); });
}

void RouterEngine::retireWorker() {
    // A retired worker stops accepting and ends when its connections have.
    std::unique_ptr<Worker> worker = std::move(workers_.back());
    workers_.pop_back();
    Worker* raw = worker.get();
    boost::asio::post(raw->io, [raw] {
        raw->acceptors.clear();
        UpstreamPool::forThisThread().closeAll();
        raw->work.reset();
    });
    retired_.push_back(std::move(worker));
}

void RouterEngine::addListener(const std::string& address, int fd, int family) {
    Listener listener{UniqueFd(::fcntl(fd, F_DUPFD_CLOEXEC, 3)), family};
    for (auto& worker : workers_) {
        int copy = ::fcntl(listener.fd.get(), F_DUPFD_CLOEXEC, 3);
        Worker* raw = worker.get();
        boost::asio::post(raw->io, [this, raw, address, copy, family] {
            auto acceptor = std::make_unique<Acceptor>(raw->io);
            acceptor->assign(Protocol(family, 0), copy);
            raw->acceptors[address] = std::move(acceptor);
            accept(*raw, address);
        });
    }
    listeners_[address] = std::move(listener);
}

void RouterEngine::removeListener(const std::string& address) {
    for (auto& worker : workers_) {
        Worker* raw = worker.get();
        boost::asio::post(raw->io, [raw, address] { raw->acceptors.erase(address); });
    }
    listeners_.erase(address);
}

std::vector<std::string> RouterEngine::listenerAddresses() const {
    std::vector<std::string> addresses;
    for (const auto& [address, listener] : listeners_) {
        addresses.push_back(address);
    }
    return addresses;
}

void RouterEngine::accept(Worker& worker, const std::string& address) {
    auto found = worker.acceptors.find(address);
    if (found == worker.acceptors.end()) {
        return;
    }
    Acceptor* acceptor = found->second.get();
    acceptor->async_accept([this, &worker, address, acceptor](const boost::system::error_code& ec,
                                                              Protocol::socket socket) {
        auto still = worker.acceptors.find(address);
        if (still == worker.acceptors.end() || still->second.get() != acceptor) {
            return;  // removed while waiting
        }
        if (ec) {
            if (ec == boost::asio::error::operation_aborted) {
                return;
            }
            // Out of descriptors and the like: say so, and try again a little
            // later instead of spinning on the same error.
            log::error("accept() on {} failed: {}", address, ec.message());
            auto pause = std::make_shared<boost::asio::steady_timer>(
                worker.io, std::chrono::milliseconds(100));
            pause->async_wait([this, &worker, address, pause](const boost::system::error_code&) {
                accept(worker, address);
            });
            return;
        }
        std::make_shared<HttpConnection>(std::move(socket), address, *this)->start();
        accept(worker, address);
    });
}

json::Value RouterEngine::connectionsStatus() const {
    uint64_t accepted = counters_.accepted.load(std::memory_order_relaxed);
    uint64_t closed = counters_.closed.load(std::memory_order_relaxed);
    uint64_t idle = counters_.idle.load(std::memory_order_relaxed);
    uint64_t open = accepted >= closed ? accepted - closed : 0;
    json::Value connections = json::Value::object();
    connections.set("accepted", accepted);
    connections.set("active", open >= idle ? open - idle : 0);
    connections.set("idle", idle);
    connections.set("closed", closed);
    return connections;
}

}  // namespace canopy
