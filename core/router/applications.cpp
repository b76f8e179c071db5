#include "core/router/applications.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cstring>

#include "core/base/log.h"
#include "core/port/message.h"
#include "core/process/child_context.h"
#include "core/router/main_reply.h"

namespace canopy {
namespace {

constexpr auto kTickInterval = std::chrono::milliseconds(250);
constexpr auto kStartTimeout = std::chrono::seconds(60);
constexpr auto kFirstRetry = std::chrono::milliseconds(100);
constexpr auto kLongestRetry = std::chrono::seconds(10);

std::string describe(const transport::Error& error) {
    std::string text = error.detail;
    if (error.system_errno != 0) {
        text += ": ";
        text += std::strerror(error.system_errno);
    }
    return text;
}

std::optional<pid_t> replyPid(const Result<Message>& reply) {
    if (!reply) {
        return std::nullopt;
    }
    auto parsed = json::parse(reply->payload);
    const auto* tree = std::get_if<json::Value>(&parsed);
    const json::Value* pid = tree == nullptr ? nullptr : tree->find("pid");
    if (pid == nullptr || !pid->isNumber() || !pid->asNumber().integer()) {
        return std::nullopt;
    }
    return static_cast<pid_t>(*pid->asNumber().integer());
}

gateway::ApplicationOptions channelOptions(const ApplicationSpec& spec) {
    gateway::ApplicationOptions options;
    options.consumers_per_worker = spec.threads;
    options.request_limit = spec.request_limit;
    if (spec.shm_limit != 0) {
        options.app_shm_budget = spec.shm_limit;
    }
    // Room for every process twice over: replacements start while the
    // processes they replace still hold their slots.
    uint64_t consumers = uint64_t{spec.max_processes} * spec.threads * 2 + spec.threads;
    options.channel.max_consumers = static_cast<uint32_t>(std::clamp<uint64_t>(consumers, 8, 4096));
    return options;
}

}  // namespace

// ---- ApplicationPool --------------------------------------------------------

ApplicationPool::ApplicationPool(Applications& owner, std::shared_ptr<const ApplicationSpec> spec,
                                 uint64_t generation)
    : owner_(owner), spec_(std::move(spec)), generation_(generation) {}

ApplicationPool::~ApplicationPool() {
    for (auto& call : calls_) {
        call->failUnavailable(503);
    }
    calls_.clear();
    if (watch_) {
        boost::system::error_code ignored;
        watch_->cancel(ignored);
        watch_->close(ignored);
    }
}

Result<void> ApplicationPool::open() {
    auto channel = gateway::ApplicationChannel::create(channelOptions(*spec_));
    if (!channel) {
        return Error{"cannot create the request channel of application \"" + spec_->name +
                     "\": " + describe(channel.error())};
    }
    channel_ = std::move(*channel);
    channel_->setWorkerObserver(
        [this](gateway::WorkerId id, gateway::WorkerEvent event) { onWorkerEvent(id, event); });
    int watched = ::dup(channel_->fd());
    if (watched < 0) {
        return systemError("dup of an application channel's descriptor");
    }
    watch_ = std::make_unique<boost::asio::posix::stream_descriptor>(owner_.child().io(), watched);
    watchChannel();
    return {};
}

void ApplicationPool::watchChannel() {
    watch_->async_wait(boost::asio::posix::stream_descriptor::wait_read,
                       [weak = weak_from_this()](const boost::system::error_code& ec) {
                           auto self = weak.lock();
                           if (ec || !self) {
                               return;
                           }
                           self->channel_->process();
                           // The channel's epoll set is level-triggered inside an
                           // edge-triggered watch: events left after one pass give
                           // no new edge, so look again before waiting.
                           pollfd ready{self->channel_->fd(), POLLIN, 0};
                           if (::poll(&ready, 1, 0) > 0) {
                               boost::asio::post(self->owner_.child().io(), [weak] {
                                   if (auto again = weak.lock()) {
                                       again->channel_->process();
                                       again->watchChannel();
                                   }
                               });
                               return;
                           }
                           self->watchChannel();
                       });
}

void ApplicationPool::submit(const std::shared_ptr<AppCall>& call) {
    gateway::RequestInfo info;
    info.method = call->method;
    info.target = call->target;
    info.path = call->path;
    info.query = call->query;
    info.version = call->version;
    info.remote = call->remote;
    info.local_address = call->local_address;
    info.local_port = call->local_port;
    info.server_name = call->server_name;
    info.app_target = call->app_target;
    info.tls = call->tls;
    info.headers.reserve(call->headers.size());
    for (const auto& [name, value] : call->headers) {
        info.headers.push_back({name, value});
    }
    info.content_length =
        call->content_length == UINT64_MAX ? transport::kUnknownLength : call->content_length;
    info.body_complete = call->body_complete;
    info.websocket = call->websocket;
    auto exchange =
        channel_->submit(info, std::as_bytes(std::span(call->preread.data(), call->preread.size())),
                         [weak = std::weak_ptr<AppCall>(call)] {
                             if (auto live = weak.lock()) {
                                 live->pump();
                             }
                         });
    if (!exchange) {
        log::error("application \"{}\": cannot queue a request: {}", spec_->name,
                   describe(exchange.error()));
        call->failUnavailable(503);
        return;
    }
    calls_.push_back(call);
    call->start(*this, std::move(*exchange));
    maybeStart();
    if (workers_.empty() && starting_ == 0 && !last_failure_.empty() &&
        std::chrono::steady_clock::now() < retry_at_) {
        // The application cannot start right now: answer rather than wait
        // out the back-off.
        failWaiting(503);
    }
}

void ApplicationPool::callFinished(AppCall& call) {
    if (auto* exchange = call.exchange(); exchange != nullptr) {
        if (auto worker = exchange->worker(); worker) {
            if (auto found = workers_.find(*worker); found != workers_.end()) {
                found->second.last_busy = std::chrono::steady_clock::now();
            }
        }
    }
    std::erase_if(calls_, [&](const auto& held) { return held.get() == &call; });
    retireIfDrained();
}

std::map<gateway::WorkerId, size_t> ApplicationPool::busyWorkers() const {
    std::map<gateway::WorkerId, size_t> busy;
    for (const auto& call : calls_) {
        if (auto* exchange = const_cast<AppCall&>(*call).exchange(); exchange != nullptr) {
            if (auto worker = exchange->worker(); worker) {
                ++busy[*worker];
            }
        }
    }
    return busy;
}

ApplicationPool::Counts ApplicationPool::counts() const {
    Counts counts;
    auto busy = busyWorkers();
    for (const auto& [id, worker] : workers_) {
        if (!worker.ready) {
            continue;
        }
        ++counts.running;
        if (!busy.contains(id) && !worker.quitting) {
            ++counts.idle;
        }
    }
    counts.starting = starting_;
    counts.active = calls_.size();
    return counts;
}

void ApplicationPool::startSpares(std::function<void(std::optional<std::string>)> done) {
    initial_done_ = std::move(done);
    for (uint32_t index = 0; index < spec_->spare_processes; ++index) {
        startWorker();
    }
    finishInitialIfDone();
}

void ApplicationPool::finishInitialIfDone() {
    if (!initial_done_) {
        return;
    }
    size_t ready = 0;
    for (const auto& [id, worker] : workers_) {
        ready += worker.ready ? 1 : 0;
    }
    if (ready >= spec_->spare_processes) {
        std::exchange(initial_done_, {})(std::nullopt);
    }
}

void ApplicationPool::startWorker() {
    auto launch = channel_->addWorker();
    if (!launch) {
        startFailed(0, describe(launch.error()));
        return;
    }
    gateway::WorkerId id = launch->worker;
    Worker& worker = workers_[id];
    worker.last_busy = std::chrono::steady_clock::now();
    ++starting_;

    std::string payload = "{\"app\":";
    json::appendQuoted(payload, spec_->name);
    payload += ",\"generation\":" + std::to_string(generation_);
    payload += ",\"conf\":" + spec_->conf;
    payload += ",\"attachment\":";
    json::appendQuoted(payload, launch->attachment);
    payload += ",\"descriptors\":[";
    std::vector<int> fds;
    for (const auto& descriptor : launch->descriptors) {
        if (!fds.empty()) {
            payload += ',';
        }
        payload += std::to_string(descriptor.get());
        fds.push_back(descriptor.get());
    }
    payload += "]}";
    // The descriptors travel in the message; the launch closes this
    // process's copies when it goes out of scope, so a dead worker's socket
    // reads as closed.
    owner_.child().request(
        "main", MessageType::AppProcessStart, payload, kStartTimeout,
        [weak = weak_from_this(), id](Result<Message> reply) {
            auto self = weak.lock();
            if (!self) {
                return;
            }
            auto found = self->workers_.find(id);
            if (auto pid = replyPid(reply); pid) {
                if (found != self->workers_.end()) {
                    found->second.pid = *pid;
                }
                return;
            }
            self->startFailed(id, replyReason(reply, "no answer from main"));
        },
        fds);
}

void ApplicationPool::startFailed(gateway::WorkerId id, const std::string& reason) {
    auto found = workers_.find(id);
    if (id != 0 && found == workers_.end()) {
        return;  // already counted (its socket closed first)
    }
    if (found != workers_.end()) {
        if (!found->second.ready && starting_ > 0) {
            --starting_;
        }
        workers_.erase(found);
        channel_->removeWorker(id);
    }
    last_failure_ = reason;
    ++failures_;
    auto delay = std::min<std::chrono::milliseconds>(
        kFirstRetry * (1U << std::min(failures_ - 1, 16U)), kLongestRetry);
    retry_at_ = std::chrono::steady_clock::now() + delay;
    log::error("application \"{}\": a process failed to start: {}", spec_->name, reason);
    if (initial_done_) {
        std::exchange(initial_done_,
                      {})("Failed to start application \"" + spec_->name + "\": " + reason);
    }
    if (workers_.empty() && starting_ == 0) {
        failWaiting(503);
    }
}

void ApplicationPool::onWorkerEvent(gateway::WorkerId id, gateway::WorkerEvent event) {
    auto found = workers_.find(id);
    if (found == workers_.end()) {
        return;
    }
    Worker& worker = found->second;
    if (event == gateway::WorkerEvent::Ready) {
        if (!worker.ready) {
            worker.ready = true;
            worker.last_busy = std::chrono::steady_clock::now();
            --starting_;
            failures_ = 0;
            last_failure_.clear();
        }
        if (draining_ && calls_.empty()) {
            worker.quitting = true;
            channel_->quitWorker(id);
        }
        finishInitialIfDone();
        return;
    }
    // Exited.
    if (!worker.ready && !worker.quitting) {
        // Its own words when it gave them (canopy_app_start_failed).
        std::string said = channel_->workerStartFailure(id);
        startFailed(id, said.empty()
                            ? "the application process exited before it was ready (see the log)"
                            : said);
        return;
    }
    if (!worker.quitting) {
        log::warn("application \"{}\": process {} exited unexpectedly", spec_->name, worker.pid);
    }
    workers_.erase(found);
    retireIfDrained();
    maybeStart();
}

void ApplicationPool::maybeStart() {
    if (retired_) {
        return;
    }
    auto now = std::chrono::steady_clock::now();
    if (now < retry_at_) {
        return;  // the tick tries again after the back-off
    }
    while (true) {
        Counts current = counts();
        size_t running = 0;
        for (const auto& [id, worker] : workers_) {
            running += worker.ready && !worker.quitting ? 1 : 0;
        }
        size_t max_pending = std::max<size_t>(spec_->spare_processes, 1);
        bool can = running + starting_ < spec_->max_processes && starting_ < max_pending;
        size_t capacity = (running + starting_) * spec_->threads;
        bool need = calls_.size() > capacity ||
                    (!draining_ && spec_->spare_processes > current.idle + starting_);
        if (!(need && can)) {
            return;
        }
        size_t before = starting_;
        startWorker();
        if (starting_ == before) {
            return;  // failed at once
        }
    }
}

void ApplicationPool::failWaiting(int status) {
    auto waiting = calls_;
    for (auto& call : waiting) {
        if (!call->headRead() && call->exchange() != nullptr && !call->exchange()->claimed()) {
            call->failUnavailable(status);
        }
    }
}

void ApplicationPool::tick(std::chrono::steady_clock::time_point now) {
    if (spec_->request_timeout.count() > 0) {
        auto held = calls_;
        for (auto& call : held) {
            if (!call->headRead() && !call->finished() &&
                now - call->submitted() >= spec_->request_timeout) {
                std::optional<gateway::WorkerId> worker;
                if (auto* exchange = call->exchange(); exchange != nullptr) {
                    worker = exchange->worker();
                }
                log::error("application \"{}\": a request got no answer within {} ms", spec_->name,
                           spec_->request_timeout.count());
                call->timeOut();
                if (worker) {
                    auto found = workers_.find(*worker);
                    if (found != workers_.end() && found->second.pid > 0) {
                        // Stuck: replaced, not waited for.
                        std::string payload = "{\"app\":";
                        json::appendQuoted(payload, spec_->name);
                        payload += ",\"pid\":" + std::to_string(found->second.pid) + "}";
                        (void)owner_.child().mainPort().send(MessageType::AppWorkerKill, payload);
                        found->second.quitting = true;
                    }
                }
            }
        }
    }
    // Idle processes beyond the spare ones quit after idle_timeout.
    if (!draining_) {
        auto busy = busyWorkers();
        std::vector<std::pair<std::chrono::steady_clock::time_point, gateway::WorkerId>> idle;
        for (auto& [id, worker] : workers_) {
            if (busy.contains(id)) {
                worker.last_busy = now;
            } else if (worker.ready && !worker.quitting) {
                idle.emplace_back(worker.last_busy, id);
            }
        }
        std::sort(idle.begin(), idle.end());
        size_t surplus =
            idle.size() > spec_->spare_processes ? idle.size() - spec_->spare_processes : 0;
        for (size_t index = 0; index < surplus; ++index) {
            if (now - idle[index].first < spec_->idle_timeout) {
                break;
            }
            Worker& worker = workers_[idle[index].second];
            worker.quitting = true;
            log::info("application \"{}\": process {} idle for {} s, stopping it", spec_->name,
                      worker.pid, spec_->idle_timeout.count());
            channel_->quitWorker(idle[index].second);
        }
    }
    maybeStart();
}

void ApplicationPool::drain() {
    draining_ = true;
    initial_done_ = {};
    retireIfDrained();
}

void ApplicationPool::retireIfDrained() {
    if (!draining_ || !calls_.empty() || retired_) {
        return;
    }
    retired_ = true;
    for (auto& [id, worker] : workers_) {
        worker.quitting = true;
        channel_->quitWorker(id);
    }
    std::string payload = "{\"app\":";
    json::appendQuoted(payload, spec_->name);
    payload += ",\"generation\":" + std::to_string(generation_) + "}";
    (void)owner_.child().mainPort().send(MessageType::AppRetire, payload);
}

// ---- Applications -----------------------------------------------------------

Applications::Applications(ChildContext& child) : child_(child), ticker_(child.io()) {
    tick();
}

Applications::~Applications() {
    ticker_.cancel();
}

void Applications::tick() {
    ticker_.expires_after(kTickInterval);
    ticker_.async_wait([this](const boost::system::error_code& ec) {
        if (ec) {
            return;
        }
        auto now = std::chrono::steady_clock::now();
        for (auto& [name, pool] : current_) {
            pool->tick(now);
        }
        for (auto& pool : draining_) {
            pool->tick(now);
        }
        collectRetired();
        tick();
    });
}

void Applications::collectRetired() {
    std::erase_if(draining_, [](const auto& pool) { return pool->retired(); });
}

void Applications::prepare(
    const std::map<std::string, std::shared_ptr<const ApplicationSpec>, std::less<>>& specs,
    std::function<void(std::optional<std::string>)> done) {
    abandon();
    struct Waiting {
        size_t left = 0;
        std::optional<std::string> error;
        std::function<void(std::optional<std::string>)> done;
    };
    auto waiting = std::make_shared<Waiting>();
    waiting->done = std::move(done);
    waiting->left = 1;  // released below, once every pool was started
    auto oneDone = [waiting](std::optional<std::string> error) {
        if (error && !waiting->error) {
            waiting->error = std::move(error);
        }
        if (--waiting->left == 0) {
            waiting->done(waiting->error);
        }
    };
    for (const auto& [name, spec] : specs) {
        auto existing = current_.find(name);
        if (existing != current_.end() && existing->second->spec().conf == spec->conf) {
            continue;
        }
        auto pool = std::make_shared<ApplicationPool>(*this, spec, ++generations_[name]);
        if (auto opened = pool->open(); !opened) {
            ++waiting->left;
            oneDone(opened.error().message);
            continue;
        }
        prepared_[name] = pool;
        ++waiting->left;
        pool->startSpares(oneDone);
    }
    oneDone(std::nullopt);
}

void Applications::commit(
    const std::map<std::string, std::shared_ptr<const ApplicationSpec>, std::less<>>& specs) {
    for (auto& [name, pool] : prepared_) {
        if (auto existing = current_.find(name); existing != current_.end()) {
            existing->second->drain();
            draining_.push_back(existing->second);
        }
        current_[name] = pool;
    }
    prepared_.clear();
    for (auto it = current_.begin(); it != current_.end();) {
        if (specs.contains(it->first)) {
            ++it;
            continue;
        }
        it->second->drain();
        draining_.push_back(it->second);
        it = current_.erase(it);
    }
    collectRetired();
}

void Applications::abandon() {
    for (auto& [name, pool] : prepared_) {
        pool->drain();
        draining_.push_back(pool);
    }
    prepared_.clear();
}

void Applications::restart(const std::string& name,
                           std::function<void(std::optional<std::string>)> done) {
    auto existing = current_.find(name);
    if (existing == current_.end()) {
        done("No such application: \"" + name + "\"");
        return;
    }
    auto pool = std::make_shared<ApplicationPool>(*this, existing->second->specPointer(),
                                                  ++generations_[name]);
    if (auto opened = pool->open(); !opened) {
        done(opened.error().message);
        return;
    }
    log::info("application \"{}\": restarting (generation {})", name, pool->generation());
    pool->startSpares([this, name, pool, done = std::move(done)](std::optional<std::string> error) {
        if (error) {
            pool->drain();
            draining_.push_back(pool);
            done(std::move(error));
            return;
        }
        auto current = current_.find(name);
        if (current != current_.end()) {
            current->second->drain();
            draining_.push_back(current->second);
            current->second = pool;
        } else {
            pool->drain();
            draining_.push_back(pool);
        }
        done(std::nullopt);
    });
}

void Applications::submit(const std::shared_ptr<AppCall>& call) {
    auto found = current_.find(call->app);
    if (found == current_.end()) {
        call->failUnavailable(503);
        return;
    }
    found->second->submit(call);
}

json::Value Applications::status() const {
    json::Value applications = json::Value::object();
    std::map<std::string, ApplicationPool::Counts> totals;
    for (const auto& [name, pool] : current_) {
        totals[name] = pool->counts();
    }
    for (const auto& pool : draining_) {
        auto counts = pool->counts();
        auto& total = totals[pool->spec().name];
        total.running += counts.running;
        total.starting += counts.starting;
        total.active += counts.active;
    }
    for (const auto& [name, counts] : totals) {
        if (!current_.contains(name)) {
            continue;
        }
        json::Value processes = json::Value::object();
        processes.set("running", static_cast<uint64_t>(counts.running));
        processes.set("starting", static_cast<uint64_t>(counts.starting));
        processes.set("idle", static_cast<uint64_t>(counts.idle));
        json::Value requests = json::Value::object();
        requests.set("active", static_cast<uint64_t>(counts.active));
        json::Value app = json::Value::object();
        app.set("processes", std::move(processes));
        app.set("requests", std::move(requests));
        applications.set(name, std::move(app));
    }
    return applications;
}

}  // namespace canopy
