#pragma once

// The router's worker threads: one event loop per thread, each accepting on
// every listening socket and serving its connections to the end. The
// configuration they serve is an immutable snapshot swapped atomically: a
// request uses the snapshot current when it arrived, so connections in
// flight finish on the old configuration while new ones see the new.

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/base/unique_fd.h"
#include "core/json/value.h"
#include "core/router/app_call.h"
#include "core/router/router_snapshot.h"

namespace canopy {

struct RouterCounters {
    std::atomic<uint64_t> accepted{0};
    std::atomic<uint64_t> closed{0};
    std::atomic<uint64_t> idle{0};  // keep-alive connections waiting for a request
    std::atomic<uint64_t> requests{0};
};

class RouterEngine {
  public:
    explicit RouterEngine(unsigned threads);
    ~RouterEngine();
    RouterEngine(const RouterEngine&) = delete;
    RouterEngine& operator=(const RouterEngine&) = delete;

    // Called from the router's main thread only.
    void publish(std::shared_ptr<const RouterSnapshot> snapshot);
    void resize(unsigned threads);
    bool listening(const std::string& address) const { return listeners_.contains(address); }
    // Starts accepting on `fd` (a listening socket owned by main; a
    // duplicate is kept) in every worker.
    void addListener(const std::string& address, int fd, int family);
    // Stops accepting; connections already accepted carry on.
    void removeListener(const std::string& address);
    std::vector<std::string> listenerAddresses() const;

    // For any thread.
    std::shared_ptr<const RouterSnapshot> snapshot() const {
        std::lock_guard lock(snapshot_mutex_);
        return snapshot_;
    }
    RouterCounters& counters() { return counters_; }

    // Where requests for applications go: `submit` runs on `executor` (the
    // router's main thread, which drives the applications).
    void setApplications(boost::asio::any_io_executor executor,
                         std::function<void(std::shared_ptr<AppCall>)> submit) {
        applications_executor_ = std::move(executor);
        submit_application_ = std::move(submit);
    }
    // Any worker thread.
    void submitApplication(std::shared_ptr<AppCall> call);
    const boost::asio::any_io_executor& applicationsExecutor() const {
        return applications_executor_;
    }
    json::Value connectionsStatus() const;

  private:
    struct Listener {
        UniqueFd fd;
        int family;
    };
    struct Worker;

    void startWorker();
    void retireWorker();
    void accept(Worker& worker, const std::string& address);

    // A mutex, not std::atomic<std::shared_ptr>: libstdc++ 12's lock bit is
    // invisible to ThreadSanitizer, and one uncontended lock per request
    // costs nothing measurable.
    mutable std::mutex snapshot_mutex_;
    std::shared_ptr<const RouterSnapshot> snapshot_;
    RouterCounters counters_;
    std::map<std::string, Listener> listeners_;
    std::vector<std::unique_ptr<Worker>> workers_;
    std::vector<std::unique_ptr<Worker>> retired_;
    boost::asio::any_io_executor applications_executor_;
    std::function<void(std::shared_ptr<AppCall>)> submit_application_;
};

}  // namespace canopy
