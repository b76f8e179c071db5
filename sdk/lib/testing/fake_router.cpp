#include "canopy/testing/fake_router.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "attachment.h"
#include "canopy/transport/channel.h"
#include "canopy/transport/request_head.h"
#include "canopy/transport/segment.h"
#include "canopy/transport/stream.h"
#include "port_message.h"

namespace canopy::testing {
inline namespace v1 {

namespace transport = canopy::transport;
using transport::Errc;
using transport::FileDescriptor;

namespace {

constexpr uint32_t kResponseMagic = 0x31505243;  // "CRP1"
constexpr size_t kFrameHeader = 8;

// A test fixture must not limp on after the transport failed under it.
template <typename T>
T must(transport::Result<T> result, const char* what) {
    if (!result) {
        throw std::runtime_error(std::string(what) + ": " + result.error().detail);
    }
    return std::move(*result);
}

void must(transport::Result<void> result, const char* what) {
    if (!result) {
        throw std::runtime_error(std::string(what) + ": " + result.error().detail);
    }
}

FileDescriptor duplicate(int fd) {
    return FileDescriptor(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
}

bool equalsIgnoringCase(std::string_view left, std::string_view right) {
    if (left.size() != right.size()) {
        return false;
    }
    for (size_t index = 0; index < left.size(); ++index) {
        if ((left[index] | 0x20) != (right[index] | 0x20)) {
            return false;
        }
    }
    return true;
}

template <typename T>
T load(const std::string& bytes, size_t offset) {
    T value{};
    std::memcpy(&value, bytes.data() + offset, sizeof value);
    return value;
}

// Parses a response head record at the start of `raw`; false until whole.
bool parseHead(const std::string& raw, FakeResponse& response, size_t& consumed) {
    if (raw.size() < 16) {
        return false;
    }
    if (load<uint32_t>(raw, 0) != kResponseMagic) {
        throw std::runtime_error("response head record: bad magic");
    }
    auto total = load<uint32_t>(raw, 4);
    if (raw.size() < total) {
        return false;
    }
    response.status = load<uint16_t>(raw, 8);
    response.upgraded = (load<uint16_t>(raw, 10) & 1) != 0;
    auto count = load<uint32_t>(raw, 12);
    size_t offset = 16;
    for (uint32_t index = 0; index < count; ++index) {
        if (offset + 6 > total) {
            throw std::runtime_error("response head record: truncated field");
        }
        auto name_length = load<uint16_t>(raw, offset);
        auto value_length = load<uint32_t>(raw, offset + 2);
        offset += 6;
        if (offset + name_length + value_length > total) {
            throw std::runtime_error("response head record: field overruns");
        }
        response.headers.emplace_back(raw.substr(offset, name_length),
                                      raw.substr(offset + name_length, value_length));
        offset += name_length + value_length;
    }
    if (offset != total) {
        throw std::runtime_error("response head record: bytes left over");
    }
    consumed = total;
    return true;
}

// Moves whole frames from the front of `bytes` into `frames`.
void parseFrames(std::string& bytes, size_t& offset, std::vector<FakeFrame>& frames) {
    while (bytes.size() - offset >= kFrameHeader) {
        auto length = load<uint32_t>(bytes, offset + 4);
        if (bytes.size() - offset - kFrameHeader < length) {
            break;
        }
        FakeFrame frame;
        auto first = static_cast<uint8_t>(bytes[offset]);
        frame.fin = (first & 0x80) != 0;
        frame.opcode = first & 0x0F;
        frame.payload = bytes.substr(offset + kFrameHeader, length);
        frames.push_back(std::move(frame));
        offset += kFrameHeader + length;
    }
}

}  // namespace

std::optional<std::string> FakeResponse::header(std::string_view name) const {
    for (const auto& [field, value] : headers) {
        if (equalsIgnoringCase(field, name)) {
            return value;
        }
    }
    return std::nullopt;
}

struct FakeRouter::State {
    struct Exchange {
        FakeRequest request;
        transport::StreamId request_stream;
        transport::StreamId response_stream;
        transport::RequestDescriptor descriptor{};
        std::optional<transport::StreamWriter> body_writer;
        std::optional<transport::StreamReader> reader;
        std::string outgoing;  // body or frames still to write
        size_t outgoing_offset = 0;
        uint64_t generated_sent = 0;
        bool body_finished = false;
        bool head_parsed = false;
        std::string raw;  // response bytes before the head is whole
        size_t frame_offset = 0;
        FakeResponse response;
        std::atomic<uint64_t> released{0};
        bool ended = false;
        bool streams_closed = false;
    };

    FakeRouterOptions options;
    transport::SegmentGeometry segments;
    std::unique_ptr<transport::Channel> channel;
    std::unique_ptr<transport::SegmentPool> pool;
    transport::SegmentTable app_segments;
    FileDescriptor router_socket;
    FileDescriptor app_socket;
    bool port_open = true;
    size_t announced = 0;
    std::map<uint32_t, FileDescriptor> app_files;
    mutable std::mutex exchanges_mutex;  // the map only; exchanges are the pumping thread's
    std::map<RequestId, std::unique_ptr<Exchange>> exchanges;
    RequestId next_id = 1;
    uint32_t ready = 0;

    void drainSocket() {
        if (!port_open) {
            return;
        }
        for (;;) {
            auto message = app::receivePortMessage(router_socket.get());
            if (!message) {
                return;
            }
            switch (message->type) {
                case app::PortMessageType::AppSegment:
                    must(app_segments.attach(message->id, std::move(message->fd), segments),
                         "attach an app segment");
                    break;
                case app::PortMessageType::AppFile:
                    app_files[message->id] = std::move(message->fd);
                    break;
                case app::PortMessageType::Ready:
                    ++ready;
                    break;
                default:
                    break;
            }
        }
    }

    void announce() {
        while (announced < pool->segmentsCreated()) {
            auto id = static_cast<uint32_t>(announced);
            must(app::sendPortMessage(router_socket.get(), app::PortMessageType::RouterSegment, id,
                                      pool->table().find(id)->fd()),
                 "announce a router segment");
            ++announced;
        }
    }

    bool moreBody(const Exchange& exchange) const {
        return exchange.outgoing_offset < exchange.outgoing.size() ||
               exchange.generated_sent < exchange.request.generated_body_size;
    }

    void pumpBody(Exchange& exchange) {
        if (!exchange.body_writer || exchange.body_finished) {
            return;
        }
        auto& writer = *exchange.body_writer;
        while (moreBody(exchange)) {
            auto credit = writer.credit();
            if (!credit || *credit == 0) {
                return;
            }
            auto chunk = pool->allocate();
            if (!chunk) {
                return;
            }
            announce();
            auto room = pool->table().find(chunk->segment)->chunk(chunk->index);
            size_t length = 0;
            if (exchange.outgoing_offset < exchange.outgoing.size()) {
                length = std::min(room.size(), exchange.outgoing.size() - exchange.outgoing_offset);
                std::memcpy(room.data(), exchange.outgoing.data() + exchange.outgoing_offset,
                            length);
                exchange.outgoing_offset += length;
                if (exchange.outgoing_offset == exchange.outgoing.size()) {
                    exchange.outgoing.clear();
                    exchange.outgoing_offset = 0;
                }
            } else {
                length = static_cast<size_t>(std::min<uint64_t>(
                    room.size(), exchange.request.generated_body_size - exchange.generated_sent));
                for (size_t index = 0; index < length; ++index) {
                    room[index] = static_cast<std::byte>(bodyByte(exchange.generated_sent + index));
                }
                exchange.generated_sent += length;
            }
            chunk->length = static_cast<uint32_t>(length);
            if (!writer.writeChunk(*chunk)) {
                pool->table().release(*chunk);
                return;
            }
        }
        if (!exchange.request.websocket) {
            (void)writer.finish();
            exchange.body_finished = true;
        }
    }

    void pumpResponse(Exchange& exchange) {
        auto& reader = *exchange.reader;
        while (!exchange.ended) {
            auto entry = reader.next();
            if (entry.code() == Errc::Corrupt) {
                drainSocket();  // a chunk of a segment announced just now
                entry = reader.next();
            }
            if (entry.code() == Errc::WouldBlock) {
                return;
            }
            if (entry.code() == Errc::Closed) {
                exchange.response.complete = true;
                exchange.ended = true;
                return;
            }
            if (!entry) {
                exchange.response.aborted = true;
                exchange.ended = true;
                return;
            }
            std::string bytes;
            if (entry->kind == transport::EntryKind::Chunk) {
                auto data = reader.data(*entry);
                bytes.assign(reinterpret_cast<const char*>(data.data()), data.size());
                ++exchange.response.chunk_entries;
            } else {
                auto found = app_files.find(entry->file_token);
                if (found == app_files.end()) {
                    drainSocket();
                    found = app_files.find(entry->file_token);
                }
                if (found == app_files.end()) {
                    throw std::runtime_error("file entry without its descriptor");
                }
                bytes.resize(entry->file_length);
                ssize_t got = ::pread(found->second.get(), bytes.data(), bytes.size(),
                                      static_cast<off_t>(entry->file_offset));
                bytes.resize(got < 0 ? 0 : static_cast<size_t>(got));
                app_files.erase(found);
                ++exchange.response.file_entries;
            }
            if (exchange.head_parsed) {
                exchange.response.body += bytes;
            } else {
                exchange.raw += bytes;
                size_t consumed = 0;
                if (parseHead(exchange.raw, exchange.response, consumed)) {
                    exchange.head_parsed = true;
                    exchange.response.body = exchange.raw.substr(consumed);
                    exchange.raw.clear();
                }
            }
            if (options.client_delay.count() > 0) {
                std::this_thread::sleep_for(options.client_delay);  // the slow client
            }
            (void)reader.release();
            exchange.released.fetch_add(1);
        }
    }

    void pumpAll() {
        drainSocket();
        std::lock_guard lock(exchanges_mutex);
        for (auto& [id, exchange] : exchanges) {
            pumpBody(*exchange);
            pumpResponse(*exchange);
        }
    }

    void closeStreams(Exchange& exchange) {
        if (exchange.streams_closed) {
            return;
        }
        exchange.streams_closed = true;
        if (exchange.reader) {
            exchange.reader->abort();
        }
        if (exchange.body_writer) {
            exchange.body_writer->reclaimUnread();
            channel->closeStream(exchange.request_stream);
        }
        channel->closeStream(exchange.response_stream);
    }

    // Waits (poll on the doorbell and the socket) until done() or timeout.
    template <typename Done>
    bool pumpUntil(Done&& done) {
        auto deadline =
            std::chrono::steady_clock::now() + std::chrono::milliseconds(options.timeout_ms);
        transport::Doorbell bell = channel->doorbell(transport::kRouterParty);
        for (;;) {
            bell.collect([](uint32_t) {});
            pumpAll();
            if (done()) {
                return true;
            }
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                            deadline - std::chrono::steady_clock::now())
                            .count();
            if (left <= 0) {
                return false;
            }
            pollfd fds[2] = {{bell.fd(), POLLIN, 0}, {router_socket.get(), POLLIN, 0}};
            ::poll(fds, port_open ? 2 : 1, static_cast<int>(left));
        }
    }

    Exchange& find(RequestId id) {
        std::lock_guard lock(exchanges_mutex);
        auto found = exchanges.find(id);
        if (found == exchanges.end()) {
            throw std::invalid_argument("unknown fake request id");
        }
        return *found->second;
    }
};

FakeRouter::FakeRouter(FakeRouterOptions options) : state_(std::make_unique<State>()) {
    State& state = *state_;
    state.options = options;
    state.segments = {options.chunk_size, options.chunk_count};
    transport::ChannelGeometry geometry;
    geometry.queue_capacity = 64;
    geometry.stream_slots = 256;
    geometry.max_consumers = std::max<uint32_t>(options.contexts, 1);
    geometry.stream_credit = options.stream_credit;
    state.channel = must(transport::Channel::create(geometry), "create the channel");
    for (uint32_t consumer = 0; consumer < geometry.max_consumers; ++consumer) {
        must(state.channel->consumerEventFd(consumer), "create a consumer eventfd");
    }
    state.pool = std::make_unique<transport::SegmentPool>(
        state.segments, transport::holderOf(transport::kRouterParty));
    must(state.pool->reserve(1), "reserve a router segment");
    int sockets[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sockets) != 0) {
        throw std::runtime_error("socketpair failed");
    }
    state.router_socket.reset(sockets[0]);
    state.app_socket.reset(sockets[1]);
    ::fcntl(state.router_socket.get(), F_SETFL, O_NONBLOCK);
    ::fcntl(state.app_socket.get(), F_SETFL, O_NONBLOCK);
    state.announce();
}

FakeRouter::~FakeRouter() {
    State& state = *state_;
    for (auto& [id, exchange] : state.exchanges) {
        state.closeStreams(*exchange);
    }
}

std::string FakeRouter::attachment() {
    State& state = *state_;
    app::Attachment attachment;
    // Leaked on purpose into the app, which owns them after canopy_app_init.
    attachment.socket_fd = duplicate(state.app_socket.get()).release();
    attachment.channel_fd = duplicate(state.channel->memoryFd()).release();
    attachment.queue_fd = duplicate(state.channel->queueEventFd()).release();
    attachment.router_fd = duplicate(state.channel->routerEventFd()).release();
    for (uint32_t consumer = 0; consumer < state.channel->geometry().max_consumers; ++consumer) {
        int event = must(state.channel->consumerEventFd(consumer), "consumer eventfd");
        attachment.consumers.push_back({consumer, duplicate(event).release()});
    }
    attachment.channel = state.channel->geometry();
    attachment.segments = state.segments;
    attachment.shm_budget = state.options.app_shm_budget;
    attachment.request_limit = state.options.request_limit;
    return app::formatAttachment(attachment);
}

FakeRouter::RequestId FakeRouter::submit(const FakeRequest& request) {
    State& state = *state_;
    auto exchange = std::make_unique<State::Exchange>();
    exchange->request = request;
    FakeRequest& stored = exchange->request;
    size_t question = stored.target.find('?');
    if (stored.path.empty()) {
        stored.path = stored.target.substr(0, question);
    }
    if (stored.query.empty() && question != std::string::npos) {
        stored.query = stored.target.substr(question + 1);
    }
    transport::RequestHead head;
    head.method = stored.method;
    head.target = stored.target;
    head.path = stored.path;
    head.query = stored.query;
    head.version = stored.version;
    head.remote = stored.remote;
    head.local_address = stored.local_address;
    head.server_name = stored.server_name;
    head.app_target = stored.app_target;
    head.local_port = stored.local_port;
    head.tls = stored.tls;
    uint64_t body_size =
        stored.generated_body_size != 0 ? stored.generated_body_size : stored.body.size();
    head.content_length = stored.websocket ? transport::kUnknownLength : body_size;
    for (const auto& [name, value] : stored.headers) {
        head.fields.push_back({name, value});
    }
    // What rides with the head: at most half a chunk, so head plus preread
    // stay within the descriptor's chunks.
    std::string preread;
    if (stored.preread) {
        size_t room = state.segments.chunk_size / 2;
        if (stored.generated_body_size != 0) {
            preread.resize(static_cast<size_t>(std::min<uint64_t>(room, body_size)));
            for (size_t index = 0; index < preread.size(); ++index) {
                preread[index] = static_cast<char>(bodyByte(index));
            }
            exchange->generated_sent = preread.size();
        } else {
            preread = stored.body.substr(0, room);
        }
    }
    if (stored.generated_body_size == 0) {
        exchange->outgoing = stored.body.substr(preread.size());
    }
    stored.body.clear();
    auto& channel = *state.channel;
    bool needs_stream = stored.websocket || preread.size() < body_size;
    if (needs_stream) {
        exchange->request_stream =
            must(channel.openStream(transport::kRouterParty, transport::kNoParty), "open a stream");
    }
    exchange->response_stream =
        must(channel.openStream(transport::kNoParty, transport::kRouterParty), "open a stream");
    RequestId id = state.next_id++;
    auto& descriptor = exchange->descriptor;
    descriptor.request_id = id;
    descriptor.request_stream = needs_stream ? exchange->request_stream.slot : transport::kNoStream;
    descriptor.request_stream_generation = exchange->request_stream.generation;
    descriptor.response_stream = exchange->response_stream.slot;
    descriptor.response_stream_generation = exchange->response_stream.generation;
    must(transport::storeHead(*state.pool, head,
                              std::as_bytes(std::span(preread.data(), preread.size())), descriptor),
         "store the request head");
    state.announce();
    if (needs_stream) {
        exchange->body_writer.emplace(channel, exchange->request_stream, transport::kRouterParty,
                                      state.pool->table());
    }
    exchange->reader.emplace(channel, exchange->response_stream, transport::kRouterParty,
                             state.app_segments);
    must(channel.queue().push(descriptor), "queue the request");
    std::lock_guard lock(state.exchanges_mutex);
    state.exchanges.emplace(id, std::move(exchange));
    return id;
}

FakeResponse FakeRouter::wait(RequestId id) {
    State& state = *state_;
    State::Exchange& exchange = state.find(id);
    bool finished = state.pumpUntil([&] { return exchange.ended; });
    FakeResponse response = std::move(exchange.response);
    if (!finished) {
        response.timed_out = true;
    }
    if (response.upgraded) {
        size_t offset = exchange.frame_offset;
        parseFrames(response.body, offset, response.frames);
    }
    state.closeStreams(exchange);
    std::lock_guard lock(state.exchanges_mutex);
    state.exchanges.erase(id);
    return response;
}

std::vector<FakeFrame> FakeRouter::waitFrames(RequestId id, size_t count) {
    State& state = *state_;
    State::Exchange& exchange = state.find(id);
    state.pumpUntil([&] {
        parseFrames(exchange.response.body, exchange.frame_offset, exchange.response.frames);
        return exchange.response.frames.size() >= count || exchange.ended;
    });
    return exchange.response.frames;
}

void FakeRouter::sendFrame(RequestId id, uint8_t opcode, bool fin, std::string_view payload) {
    State& state = *state_;
    State::Exchange& exchange = state.find(id);
    char header[kFrameHeader] = {};
    header[0] = static_cast<char>((fin ? 0x80 : 0) | (opcode & 0x0F));
    auto length = static_cast<uint32_t>(payload.size());
    std::memcpy(header + 4, &length, 4);
    exchange.outgoing.append(header, kFrameHeader);
    exchange.outgoing.append(payload);
    state.pumpBody(exchange);
}

void FakeRouter::finishRequestBody(RequestId id) {
    State& state = *state_;
    State::Exchange& exchange = state.find(id);
    exchange.request.websocket = false;
    state.pumpBody(exchange);
}

void FakeRouter::abortRequest(RequestId id) {
    State& state = *state_;
    state.closeStreams(state.find(id));
}

uint64_t FakeRouter::releasedEntries(RequestId id) const {
    std::lock_guard lock(state_->exchanges_mutex);
    auto found = state_->exchanges.find(id);
    return found == state_->exchanges.end() ? 0 : found->second->released.load();
}

void FakeRouter::quit() {
    must(app::sendPortMessage(state_->router_socket.get(), app::PortMessageType::Quit, 0, -1),
         "send quit");
}

void FakeRouter::closePort() {
    state_->router_socket.reset();
    state_->port_open = false;
}

uint32_t FakeRouter::readyMessages() {
    state_->drainSocket();
    return state_->ready;
}

size_t FakeRouter::routerChunksInUse() const {
    return state_->pool->table().usedChunks();
}

size_t FakeRouter::appChunksInUse() const {
    return state_->app_segments.usedChunks();
}

}  // namespace v1
}  // namespace canopy::testing
