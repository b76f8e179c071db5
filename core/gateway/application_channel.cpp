#include "core/gateway/application_channel.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include "core/gateway/channel_state.h"
#include "core/gateway/exchange.h"
#include "core/gateway/port_message.h"

namespace canopy::gateway {

using transport::FileDescriptor;

namespace {

// epoll data for the doorbell; workers use their id (never 0).
constexpr uint64_t kDoorbellKey = 0;

FileDescriptor duplicate(int fd) {
    return FileDescriptor(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
}

// The text of a StartFailed message: at most kStartFailureMax bytes of the
// memfd, control characters (a traceback's newlines) made spaces so it
// stays one line of the log and of an error answer.
std::string readStartFailure(int fd, uint32_t length) {
    std::string text(std::min<size_t>(length, transport::kStartFailureMax), '\0');
    ssize_t got = ::pread(fd, text.data(), text.size(), 0);
    text.resize(got > 0 ? static_cast<size_t>(got) : 0);
    for (char& c : text) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
            c = ' ';
        }
    }
    return text;
}

}  // namespace

bool WorkerLaunch::inheritInChild() const {
    for (const FileDescriptor& fd : descriptors) {
        int flags = ::fcntl(fd.get(), F_GETFD);
        if (flags < 0 || ::fcntl(fd.get(), F_SETFD, flags & ~FD_CLOEXEC) != 0) {
            return false;
        }
    }
    return true;
}

// --- State ------------------------------------------------------------------

void ApplicationChannel::State::announceSegments() {
    size_t created = pool->segmentsCreated();
    while (announced < created) {
        auto id = static_cast<uint32_t>(announced);
        for (auto& [worker_id, worker] : workers) {
            if (worker->alive) {
                // A full socket here means the worker stopped reading it; its
                // requests then fail on the unknown segment, nobody else's.
                (void)sendPortMessage(worker->socket.get(), PortMessageType::RouterSegment, id,
                                      pool->table().find(id)->fd());
            }
        }
        ++announced;
    }
}

std::shared_ptr<WorkerRecord> ApplicationChannel::State::ownerOf(transport::Party party) const {
    if (party == transport::kNoParty || party >= party_owner.size()) {
        return nullptr;
    }
    return party_owner[party];
}

void ApplicationChannel::State::bindSlot(uint32_t slot, Exchange* exchange) {
    if (slot < by_slot.size()) {
        by_slot[slot] = exchange;
    }
}

void ApplicationChannel::State::unbind(Exchange* exchange) {
    for (uint32_t slot : {exchange->request_stream_.slot, exchange->response_stream_.slot}) {
        if (slot < by_slot.size() && by_slot[slot] == exchange) {
            by_slot[slot] = nullptr;
        }
    }
}

void ApplicationChannel::State::drainWorker(const std::shared_ptr<WorkerRecord>& worker) {
    while (worker->alive) {
        auto message = receivePortMessage(worker->socket.get());
        if (message.code() == Errc::WouldBlock) {
            return;
        }
        if (message.code() == Errc::Corrupt) {
            ++counters.protocol_errors;
            continue;
        }
        if (!message) {
            workerDied(worker);
            return;
        }
        switch (message->type) {
            case PortMessageType::AppSegment:
                if (!message->fd.valid() || worker->segments->find(message->id) != nullptr ||
                    !worker->segments->attach(message->id, std::move(message->fd),
                                              options.segments)) {
                    // A bad segment only spoils the refs into it: those
                    // exchanges fail as Corrupt.
                    ++counters.protocol_errors;
                }
                break;
            case PortMessageType::AppFile:
                if (!message->fd.valid() || worker->files.size() >= options.max_worker_files) {
                    ++counters.protocol_errors;
                } else {
                    worker->files[message->id] = std::move(message->fd);
                }
                break;
            case PortMessageType::StartFailed:
                if (!message->fd.valid() || worker->ready) {
                    ++counters.protocol_errors;
                } else {
                    worker->start_failure = readStartFailure(message->fd.get(), message->id);
                }
                break;
            case PortMessageType::Ready:
                if (!worker->ready) {
                    worker->ready = true;
                    if (worker_observer) {
                        worker_observer(worker->id, WorkerEvent::Ready);
                    }
                }
                break;
            default:
                ++counters.protocol_errors;  // router-to-app types, or unknown
                break;
        }
    }
}

void ApplicationChannel::State::workerDied(const std::shared_ptr<WorkerRecord>& worker) {
    if (!worker->alive) {
        return;
    }
    worker->alive = false;
    ++counters.worker_deaths;
    (void)::epoll_ctl(epoll.get(), EPOLL_CTL_DEL, worker->socket.get(), nullptr);
    worker->socket.reset();
    const transport::Holder router_holder = transport::holderOf(transport::kRouterParty);
    for (uint32_t consumer : worker->consumers) {
        transport::Party party = transport::consumerParty(consumer);
        const transport::Holder dead = transport::holderOf(party);
        for (auto& [id, exchange] : exchanges) {
            if (exchange->ended_ || exchange->stage_ != Exchange::Stage::Queued) {
                continue;
            }
            transport::Party writer = channel->streamWriter(exchange->response_stream_);
            transport::Party reader = exchange->needs_request_stream_
                                          ? channel->streamReader(exchange->request_stream_)
                                          : transport::kNoParty;
            if (writer == party || reader == party) {
                // It was serving this one. What it finished writing can still
                // be read; the exchange fails when it runs dry (nextEntry).
                exchange->worker_ = worker;
                exchange->worker_gone_ = true;
                if (reader == party && exchange->body_writer_) {
                    exchange->body_writer_->reclaimUnread();
                }
                touch(id);
                continue;
            }
            if (writer != transport::kNoParty || reader != transport::kNoParty) {
                continue;  // another worker's
            }
            // Taken off the queue (its head chunks moved to the dead
            // worker) but never claimed: put it back rather than strand it.
            bool taken = false;
            auto& descriptor = exchange->descriptor_;
            for (uint32_t index = 0; index < descriptor.head_chunk_count; ++index) {
                taken |= pool->table().transfer(descriptor.head_chunks[index], dead, router_holder);
            }
            if (taken) {
                ++counters.requeued;
                exchange->stage_ = Exchange::Stage::Stored;
                waiting.push_front(id);
            }
        }
        // Chunks of the router's it took (heads, body chunks) come back.
        pool->table().reclaim(dead);
        party_owner[party] = nullptr;
        free_consumers.push_back(consumer);
    }
    // It may have taken a ticket without its request.
    channel->queue().nudge();
    worker->files.clear();
    if (worker_observer) {
        worker_observer(worker->id, WorkerEvent::Exited);
    }
    workers.erase(worker->id);
}

void ApplicationChannel::State::retryWaiting() {
    while (!waiting.empty()) {
        auto found = exchanges.find(waiting.front());
        if (found == exchanges.end() || found->second->ended_) {
            waiting.pop_front();
            continue;
        }
        auto submitted = found->second->trySubmit();
        if (submitted.code() == Errc::WouldBlock) {
            return;  // keep the order: later requests wait behind it
        }
        waiting.pop_front();
        if (!submitted) {
            found->second->fail(Failure::Unavailable);
        }
        touch(found->first);
    }
}

// --- ApplicationChannel -------------------------------------------------------

ApplicationChannel::ApplicationChannel(std::unique_ptr<State> state) : state_(std::move(state)) {}

ApplicationChannel::~ApplicationChannel() {
    for (auto& [id, worker] : state_->workers) {
        (void)sendPortMessage(worker->socket.get(), PortMessageType::Quit, 0, -1);
    }
}

Result<std::unique_ptr<ApplicationChannel>> ApplicationChannel::create(
    const ApplicationOptions& options) {
    if (!options.channel.valid() || !options.segments.valid() ||
        options.consumers_per_worker == 0 ||
        options.consumers_per_worker > options.channel.max_consumers ||
        options.app_shm_budget < options.segments.mappedSize()) {
        return Error{Errc::Invalid, 0, "application channel options out of range"};
    }
    auto state = std::make_unique<State>();
    state->options = options;
    auto channel = transport::Channel::create(options.channel);
    if (!channel) {
        return channel.error();
    }
    state->channel = std::move(*channel);
    state->pool = std::make_unique<transport::SegmentPool>(
        options.segments, transport::holderOf(transport::kRouterParty), options.router_shm_budget);
    // One segment up front: the first request needs no segment announcement.
    if (auto reserved = state->pool->reserve(1); !reserved) {
        return reserved.error();
    }
    state->epoll.reset(::epoll_create1(EPOLL_CLOEXEC));
    if (!state->epoll.valid()) {
        return transport::systemError("epoll_create1");
    }
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = kDoorbellKey;
    if (::epoll_ctl(state->epoll.get(), EPOLL_CTL_ADD, state->channel->routerEventFd(), &event) !=
        0) {
        return transport::systemError("epoll_ctl on the router doorbell");
    }
    state->party_owner.resize(options.channel.max_consumers + 1);
    for (uint32_t consumer = 0; consumer < options.channel.max_consumers; ++consumer) {
        state->free_consumers.push_back(consumer);
    }
    state->by_slot.assign(options.channel.stream_slots, nullptr);
    // Arm the doorbell so the first ring writes the eventfd.
    state->channel->doorbell(transport::kRouterParty).collect([](uint32_t) {});
    return std::unique_ptr<ApplicationChannel>(new ApplicationChannel(std::move(state)));
}

Result<WorkerLaunch> ApplicationChannel::addWorker() {
    State& state = *state_;
    const ApplicationOptions& options = state.options;
    if (state.shut_down) {
        return Error{Errc::Invalid, 0, "application channel shut down"};
    }
    if (state.free_consumers.size() < options.consumers_per_worker) {
        return Error{Errc::Exhausted, 0, "no consumer slots left for another worker"};
    }
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
        return transport::systemError("socketpair for a worker");
    }
    FileDescriptor router_end(pair[0]);
    FileDescriptor app_end(pair[1]);
    ::fcntl(router_end.get(), F_SETFL, O_NONBLOCK);

    auto worker = std::make_shared<WorkerRecord>();
    worker->id = state.next_worker++;
    worker->socket = std::move(router_end);

    WorkerLaunch launch;
    launch.worker = worker->id;
    auto keep = [&](FileDescriptor fd) {
        int number = fd.get();
        launch.descriptors.push_back(std::move(fd));
        return std::to_string(number);
    };
    std::string text = "canopy-app=1";
    text += " socket=" + keep(std::move(app_end));
    text += " channel=" + keep(duplicate(state.channel->memoryFd()));
    text += " queue=" + keep(duplicate(state.channel->queueEventFd()));
    text += " router=" + keep(duplicate(state.channel->routerEventFd()));
    std::string consumers;
    for (uint32_t index = 0; index < options.consumers_per_worker; ++index) {
        uint32_t consumer = state.free_consumers.front();
        auto event = state.channel->consumerEventFd(consumer);
        if (!event) {
            return event.error();
        }
        state.free_consumers.pop_front();
        worker->consumers.push_back(consumer);
        if (!consumers.empty()) {
            consumers += ',';
        }
        consumers += std::to_string(consumer) + ':' + keep(duplicate(*event));
    }
    text += " consumers=" + consumers;
    const auto& geometry = options.channel;
    text += " geometry=" + std::to_string(geometry.queue_capacity) + ',' +
            std::to_string(geometry.stream_slots) + ',' + std::to_string(geometry.max_consumers) +
            ',' + std::to_string(geometry.stream_credit);
    text += " segments=" + std::to_string(options.segments.chunk_size) + ',' +
            std::to_string(options.segments.chunk_count);
    text += " shm=" + std::to_string(options.app_shm_budget);
    if (options.request_limit != 0) {
        text += " requests=" + std::to_string(options.request_limit);
    }
    launch.attachment = std::move(text);
    for (const FileDescriptor& fd : launch.descriptors) {
        if (!fd.valid()) {
            for (uint32_t consumer : worker->consumers) {
                state.free_consumers.push_front(consumer);
            }
            return transport::systemError("duplicating a descriptor for a worker");
        }
    }

    // The segments wait in its socket: it attaches them before its first take.
    for (size_t id = 0; id < state.announced; ++id) {
        auto sent = sendPortMessage(worker->socket.get(), PortMessageType::RouterSegment,
                                    static_cast<uint32_t>(id),
                                    state.pool->table().find(static_cast<uint32_t>(id))->fd());
        if (!sent) {
            for (uint32_t consumer : worker->consumers) {
                state.free_consumers.push_front(consumer);
            }
            return sent.error();
        }
    }
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = worker->id;
    if (::epoll_ctl(state.epoll.get(), EPOLL_CTL_ADD, worker->socket.get(), &event) != 0) {
        for (uint32_t consumer : worker->consumers) {
            state.free_consumers.push_front(consumer);
        }
        return transport::systemError("epoll_ctl on a worker socket");
    }
    for (uint32_t consumer : worker->consumers) {
        state.party_owner[transport::consumerParty(consumer)] = worker;
    }
    state.workers.emplace(worker->id, worker);
    return launch;
}

void ApplicationChannel::quitWorker(WorkerId id) {
    auto found = state_->workers.find(id);
    if (found != state_->workers.end()) {
        (void)sendPortMessage(found->second->socket.get(), PortMessageType::Quit, 0, -1);
    }
}

void ApplicationChannel::removeWorker(WorkerId id) {
    auto found = state_->workers.find(id);
    if (found != state_->workers.end()) {
        auto worker = found->second;
        state_->drainWorker(worker);  // files and segments it sent before dying
        state_->workerDied(worker);
    }
}

bool ApplicationChannel::workerAlive(WorkerId id) const {
    return state_->workers.count(id) != 0;
}

std::string ApplicationChannel::workerStartFailure(WorkerId id) const {
    auto found = state_->workers.find(id);
    return found != state_->workers.end() ? found->second->start_failure : std::string();
}

bool ApplicationChannel::workerReady(WorkerId id) const {
    auto found = state_->workers.find(id);
    return found != state_->workers.end() && found->second->ready;
}

void ApplicationChannel::setWorkerObserver(std::function<void(WorkerId, WorkerEvent)> observer) {
    state_->worker_observer = std::move(observer);
}

Result<std::unique_ptr<Exchange>> ApplicationChannel::submit(const RequestInfo& request,
                                                             std::span<const std::byte> preread,
                                                             std::function<void()> on_ready) {
    State& state = *state_;
    if (state.shut_down) {
        return Error{Errc::Invalid, 0, "application channel shut down"};
    }
    std::unique_ptr<Exchange> exchange(
        new Exchange(state, state.next_exchange++, std::move(on_ready)));
    // Own copies of every view: the request may wait for the queue.
    std::string& storage = exchange->head_storage_;
    size_t total = request.method.size() + request.target.size() + request.path.size() +
                   request.query.size() + request.version.size() + request.remote.size() +
                   request.local_address.size() + request.server_name.size() +
                   request.app_target.size();
    for (const auto& field : request.headers) {
        total += field.name.size() + field.value.size();
    }
    if (total > transport::kMaxHeadBytes) {
        return Error{Errc::TooLarge, 0, "request head too large for the transport"};
    }
    storage.reserve(total);
    auto copy = [&](std::string_view text) {
        size_t offset = storage.size();
        storage.append(text);
        return std::pair{offset, text.size()};
    };
    std::vector<std::pair<size_t, size_t>> places;
    for (std::string_view text :
         {request.method, request.target, request.path, request.query, request.version,
          request.remote, request.local_address, request.server_name, request.app_target}) {
        places.push_back(copy(text));
    }
    for (const auto& field : request.headers) {
        places.push_back(copy(field.name));
        places.push_back(copy(field.value));
    }
    auto view = [&](size_t index) {
        return std::string_view(storage).substr(places[index].first, places[index].second);
    };
    transport::RequestHead& head = exchange->head_;
    head.method = view(0);
    head.target = view(1);
    head.path = view(2);
    head.query = view(3);
    head.version = view(4);
    head.remote = view(5);
    head.local_address = view(6);
    head.server_name = view(7);
    head.app_target = view(8);
    head.local_port = request.local_port;
    head.tls = request.tls;
    head.content_length = request.websocket ? transport::kUnknownLength : request.content_length;
    for (size_t index = 0; index < request.headers.size(); ++index) {
        head.fields.push_back({view(9 + 2 * index), view(10 + 2 * index)});
    }
    size_t head_size = transport::encodedSize(head);
    size_t room = size_t{transport::kMaxHeadChunks} * state.options.segments.chunk_size;
    if (head_size > room || head_size > transport::kMaxHeadBytes) {
        return Error{Errc::TooLarge, 0, "request head too large for the transport"};
    }
    // What does not ride with the head goes on the request stream.
    size_t with_head = std::min(preread.size(), room - head_size);
    exchange->descriptor_.preread_length = static_cast<uint32_t>(with_head);
    exchange->pending_.assign(reinterpret_cast<const char*>(preread.data()), preread.size());
    exchange->websocket_ = request.websocket;
    exchange->needs_request_stream_ =
        request.websocket || !request.body_complete || with_head < preread.size();
    exchange->finish_requested_ = !request.websocket && request.body_complete;

    state.exchanges.emplace(exchange->id_, exchange.get());
    if (state.waiting.empty()) {
        auto submitted = exchange->trySubmit();
        if (submitted.code() != Errc::WouldBlock) {
            if (!submitted) {
                state.exchanges.erase(exchange->id_);
                return submitted.error();
            }
            exchange->flushPending();
            return exchange;
        }
    }
    state.waiting.push_back(exchange->id_);
    ++state.counters.waiting;
    return exchange;
}

int ApplicationChannel::fd() const {
    return state_->epoll.get();
}

void ApplicationChannel::process() {
    State& state = *state_;
    constexpr int kEvents = 64;
    epoll_event events[kEvents];
    int count = ::epoll_wait(state.epoll.get(), events, kEvents, 0);
    for (int index = 0; index < count; ++index) {
        uint64_t key = events[index].data.u64;
        if (key == kDoorbellKey) {
            continue;  // collected below, every time
        }
        auto found = state.workers.find(static_cast<WorkerId>(key));
        if (found != state.workers.end()) {
            auto worker = found->second;
            state.drainWorker(worker);
        }
    }
    bool memory = false;
    const auto& geometry = state.options.channel;
    state.channel->doorbell(transport::kRouterParty).collect([&](uint32_t bit) {
        if (bit < geometry.stream_slots) {
            if (Exchange* exchange = state.by_slot[bit]) {
                state.touch(exchange->id_);
            }
            // A release of request-body chunks frees router memory too.
            memory = true;
        } else {
            memory = true;  // memory bit, or queue bit (a cell is free)
        }
    });
    if (memory) {
        state.retryWaiting();
        // Exchanges with body bytes waiting for chunks or credit.
        for (auto& [id, exchange] : state.exchanges) {
            if (exchange->pending_offset_ < exchange->pending_.size() ||
                (exchange->finish_requested_ && !exchange->body_finished_)) {
                state.touch(id);
            }
        }
    }
    std::vector<uint64_t> touched;
    touched.swap(state.touched);
    std::sort(touched.begin(), touched.end());
    touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
    for (uint64_t id : touched) {
        auto found = state.exchanges.find(id);
        if (found != state.exchanges.end()) {
            found->second->flushPending();
        }
    }
    state.counters.waiting = state.waiting.size();
    // Callbacks last, looked up again: one may destroy another exchange.
    for (uint64_t id : touched) {
        auto found = state.exchanges.find(id);
        if (found != state.exchanges.end()) {
            found->second->notify();
        }
    }
}

void ApplicationChannel::shutdown() {
    State& state = *state_;
    state.shut_down = true;
    for (auto& [id, exchange] : state.exchanges) {
        if (!exchange->ended_) {
            exchange->fail(Failure::Unavailable);
            state.touch(id);
        }
    }
    for (auto& [id, worker] : state.workers) {
        (void)sendPortMessage(worker->socket.get(), PortMessageType::Quit, 0, -1);
    }
}

ChannelCounters ApplicationChannel::counters() const {
    ChannelCounters counters = state_->counters;
    counters.workers = state_->workers.size();
    counters.exchanges = state_->exchanges.size();
    counters.waiting = state_->waiting.size();
    return counters;
}

size_t ApplicationChannel::routerChunksInUse() const {
    return state_->pool->table().usedChunks();
}

transport::Channel& ApplicationChannel::channel() {
    return *state_->channel;
}

const ApplicationOptions& ApplicationChannel::options() const {
    return state_->options;
}

}  // namespace canopy::gateway
