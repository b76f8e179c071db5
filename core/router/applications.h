#pragma once

// The router's applications: for each, the generation that takes new
// requests (an ApplicationPool: the gateway channel plus the processes that
// serve it) and older generations draining what they hold. Everything here
// runs on the router's main thread, which also talks to main: connections
// on the worker threads reach it through AppCall (app_call.h).
//
// Processes follow `processes` {max, spare, idle_timeout} as Unit's router
// does (shared/spec/process-model.md §5): `spare` started with the
// configuration and kept ready, more while requests outnumber processes, up
// to `max`, idle ones beyond `spare` stopped after idle_timeout; a process
// that fails to start is retried with a doubling back-off.

#include <sys/types.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/gateway/application_channel.h"
#include "core/json/value.h"
#include "core/router/app_call.h"
#include "core/router/router_snapshot.h"

namespace canopy {

class ChildContext;
class Applications;

class ApplicationPool : public std::enable_shared_from_this<ApplicationPool> {
  public:
    ApplicationPool(Applications& owner, std::shared_ptr<const ApplicationSpec> spec,
                    uint64_t generation);
    ~ApplicationPool();

    Result<void> open();
    const ApplicationSpec& spec() const { return *spec_; }
    const std::shared_ptr<const ApplicationSpec>& specPointer() const { return spec_; }
    uint64_t generation() const { return generation_; }

    void submit(const std::shared_ptr<AppCall>& call);
    // Starts the spare processes; `done` runs once with nullopt when they are
    // all ready, or with the reason the first one failed.
    void startSpares(std::function<void(std::optional<std::string>)> done);
    // Takes no new requests; once what it holds is answered its processes
    // quit and main retires the generation.
    void drain();
    bool retired() const { return retired_ && workers_.empty(); }

    void tick(std::chrono::steady_clock::time_point now);
    void callFinished(AppCall& call);

    struct Counts {
        size_t running = 0;
        size_t starting = 0;
        size_t idle = 0;
        size_t active = 0;
    };
    Counts counts() const;

  private:
    struct Worker {
        pid_t pid = -1;
        bool ready = false;
        bool quitting = false;
        std::chrono::steady_clock::time_point last_busy;
    };

    void watchChannel();
    void onWorkerEvent(gateway::WorkerId id, gateway::WorkerEvent event);
    void startWorker();
    void startFailed(gateway::WorkerId id, const std::string& reason);
    void maybeStart();
    void failWaiting(int status);
    void finishInitialIfDone();
    void retireIfDrained();
    std::map<gateway::WorkerId, size_t> busyWorkers() const;

    Applications& owner_;
    std::shared_ptr<const ApplicationSpec> spec_;
    uint64_t generation_;
    std::unique_ptr<gateway::ApplicationChannel> channel_;
    std::unique_ptr<boost::asio::posix::stream_descriptor> watch_;
    std::map<gateway::WorkerId, Worker> workers_;
    std::vector<std::shared_ptr<AppCall>> calls_;
    size_t starting_ = 0;
    unsigned failures_ = 0;  // consecutive start failures
    std::chrono::steady_clock::time_point retry_at_{};
    std::string last_failure_;
    std::function<void(std::optional<std::string>)> initial_done_;
    bool draining_ = false;
    bool retired_ = false;
};

class Applications {
  public:
    explicit Applications(ChildContext& child);
    ~Applications();

    ChildContext& child() { return child_; }

    // Starts the applications of `specs` that are new or changed (their
    // spare processes); `done` gets nullopt when all are ready or the first
    // reason one failed. Then commit() or abandon().
    void prepare(
        const std::map<std::string, std::shared_ptr<const ApplicationSpec>, std::less<>>& specs,
        std::function<void(std::optional<std::string>)> done);
    // The prepared generations take new requests; replaced ones and those
    // absent from `specs` drain.
    void commit(
        const std::map<std::string, std::shared_ptr<const ApplicationSpec>, std::less<>>& specs);
    // The prepared generations are dropped (the configuration was refused).
    void abandon();
    // A new generation of `name` replaces the current one once its spare
    // processes are ready; queued requests are served by the old one.
    void restart(const std::string& name, std::function<void(std::optional<std::string>)> done);
    bool has(const std::string& name) const { return current_.contains(name); }

    // Main thread: a connection's request for `call->app`.
    void submit(const std::shared_ptr<AppCall>& call);
    json::Value status() const;

  private:
    void tick();
    void collectRetired();

    ChildContext& child_;
    std::map<std::string, std::shared_ptr<ApplicationPool>> current_;
    std::map<std::string, std::shared_ptr<ApplicationPool>> prepared_;
    std::vector<std::shared_ptr<ApplicationPool>> draining_;
    std::map<std::string, uint64_t> generations_;
    boost::asio::steady_timer ticker_;
};

}  // namespace canopy
