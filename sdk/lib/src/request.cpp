// Requests: body reads, the response, WebSocket frames.

#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "port_message.h"
#include "runtime.h"

namespace canopy::app {

using transport::ChunkRef;
using transport::EntryKind;
using transport::Errc;
using State = canopy_request::State;

namespace {

// While the pool is spent, chunks freed for another context's stream ring
// that context's doorbell, not ours: wait with this bound and look again.
// Rare: the budget is far above contexts x credit chunks.
constexpr int kPoolRetryMs = 20;

int codeOf(Errc code) {
    switch (code) {
        case Errc::WouldBlock:
            return CANOPY_AGAIN;
        case Errc::Exhausted:
            return CANOPY_NO_MEMORY;
        case Errc::Aborted:
        case Errc::Closed:
            return CANOPY_CLOSED;
        case Errc::Invalid:
            return CANOPY_INVALID;
        default:
            return CANOPY_ERROR;
    }
}

void putU16(std::vector<std::byte>& out, uint16_t value) {
    std::byte bytes[2];
    std::memcpy(bytes, &value, 2);
    out.insert(out.end(), bytes, bytes + 2);
}

void putU32(std::vector<std::byte>& out, uint32_t value) {
    std::byte bytes[4];
    std::memcpy(bytes, &value, 4);
    out.insert(out.end(), bytes, bytes + 4);
}

void putText(std::vector<std::byte>& out, std::string_view text) {
    auto bytes = std::as_bytes(std::span(text.data(), text.size()));
    out.insert(out.end(), bytes.begin(), bytes.end());
}

bool isTokenChar(unsigned char c) {
    if (c >= '0' && c <= '9') {
        return true;
    }
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') {
        return true;
    }
    return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != 0;
}

bool equalsIgnoringCase(std::string_view left, std::string_view right) {
    return left.size() == right.size() &&
           std::equal(left.begin(), left.end(), right.begin(),
                      [](char a, char b) { return (a | 0x20) == (b | 0x20) || a == b; });
}

bool containsIgnoringCase(std::string_view haystack, std::string_view needle) {
    if (needle.size() > haystack.size()) {
        return false;
    }
    for (size_t start = 0; start + needle.size() <= haystack.size(); ++start) {
        if (equalsIgnoringCase(haystack.substr(start, needle.size()), needle)) {
            return true;
        }
    }
    return false;
}

std::string_view findField(const canopy_request* request, std::string_view name) {
    for (const auto& field : request->head.fields) {
        if (equalsIgnoringCase(field.name, name)) {
            return field.value;
        }
    }
    return {};
}

// The descriptor of a file the router handed over, draining the port when
// the entry arrived before we looked at the socket.
int routerFile(canopy_app* app, uint32_t token) {
    for (int attempt = 0; attempt < 2; ++attempt) {
        {
            std::lock_guard lock(app->port_mutex);
            auto found = app->router_files.find(token);
            if (found != app->router_files.end()) {
                return found->second.get();
            }
        }
        drainPort(app);
    }
    return -1;
}

void forgetRouterFile(canopy_app* app, uint32_t token) {
    std::lock_guard lock(app->port_mutex);
    app->router_files.erase(token);
}

// Copies body bytes that are there now. Returns a CANOPY code; *copied may
// be non-zero with CANOPY_OK only.
int copyAvailable(canopy_request* request, std::byte* out, size_t capacity, size_t* copied) {
    canopy_app* app = request->context->app;
    size_t done = 0;
    size_t preread_left = request->preread.size() - request->preread_offset;
    if (preread_left > 0) {
        size_t take = std::min(preread_left, capacity);
        std::memcpy(out, request->preread.data() + request->preread_offset, take);
        request->preread_offset += take;
        done += take;
        if (request->preread_offset == request->preread.size()) {
            std::vector<std::byte>().swap(request->preread);
            request->preread_offset = 0;
        }
    }
    while (done < capacity) {
        if (!request->entry_held) {
            if (!request->body || request->body_ended) {
                break;
            }
            auto entry = request->body->next();
            if (entry.code() == Errc::Corrupt) {
                // A chunk in a segment announced after we last looked.
                drainPort(app);
                entry = request->body->next();
            }
            if (entry.code() == Errc::WouldBlock) {
                break;
            }
            if (entry.code() == Errc::Closed) {
                request->body_ended = true;
                break;
            }
            if (!entry) {
                if (entry.code() == Errc::Aborted) {
                    request->aborted = true;
                }
                *copied = done;
                return done > 0 ? CANOPY_OK : codeOf(entry.code());
            }
            request->entry = *entry;
            request->entry_held = true;
            request->entry_offset = 0;
        }
        const auto& entry = request->entry;
        uint64_t size = 0;
        size_t take = 0;
        if (entry.kind == EntryKind::Chunk) {
            auto bytes = request->body->data(entry);
            size = bytes.size();
            take = static_cast<size_t>(
                std::min<uint64_t>(capacity - done, size - request->entry_offset));
            std::memcpy(out + done, bytes.data() + request->entry_offset, take);
        } else {
            size = entry.file_length;
            int fd = routerFile(app, entry.file_token);
            take = static_cast<size_t>(
                std::min<uint64_t>(capacity - done, size - request->entry_offset));
            ssize_t got =
                fd < 0 ? -1
                       : ::pread(fd, out + done, take,
                                 static_cast<off_t>(entry.file_offset + request->entry_offset));
            if (got <= 0) {
                logLine(app, 1, "cannot read the body file the router handed over");
                *copied = done;
                return done > 0 ? CANOPY_OK : CANOPY_ERROR;
            }
            take = static_cast<size_t>(got);
        }
        done += take;
        request->entry_offset += take;
        if (request->entry_offset >= size) {
            if (entry.kind == EntryKind::File) {
                forgetRouterFile(app, entry.file_token);
            }
            request->entry_held = false;
            (void)request->body->release();  // returns the credit to the router
        }
    }
    *copied = done;
    return CANOPY_OK;
}

// Sends the descriptors of pool segments the router has not seen yet. Must
// precede publishing any ref into them.
int announceSegments(canopy_app* app) {
    for (;;) {
        int rc = CANOPY_OK;
        {
            std::lock_guard lock(app->port_mutex);
            size_t created = app->pool->segmentsCreated();
            while (app->announced_segments < created) {
                auto id = static_cast<uint32_t>(app->announced_segments);
                auto sent = sendPortMessage(app->attachment.socket_fd, PortMessageType::AppSegment,
                                            id, app->pool->table().find(id)->fd());
                if (!sent) {
                    rc = codeOf(sent.code());
                    break;
                }
                ++app->announced_segments;
            }
        }
        if (rc != CANOPY_AGAIN) {
            return rc;
        }
        // Socket full: wait for room without the lock.
        pollfd writable{app->attachment.socket_fd, POLLOUT, 0};
        ::poll(&writable, 1, -1);
    }
}

int sendFileDescriptor(canopy_app* app, int fd, uint32_t* token) {
    for (;;) {
        transport::Result<void> sent = transport::Error{};
        {
            std::lock_guard lock(app->port_mutex);
            *token = app->next_file_token;
            sent = sendPortMessage(app->attachment.socket_fd, PortMessageType::AppFile, *token, fd);
            if (sent) {
                ++app->next_file_token;
                return CANOPY_OK;
            }
        }
        if (sent.code() != Errc::WouldBlock) {
            return codeOf(sent.code());
        }
        pollfd writable{app->attachment.socket_fd, POLLOUT, 0};
        ::poll(&writable, 1, -1);
    }
}

transport::Result<ChunkRef> allocateChunk(canopy_context* context) {
    canopy_app* app = context->app;
    auto chunk = app->pool->allocate();
    if (!chunk) {
        return chunk;
    }
    // The pool allocates for the main context; a chunk another context sends
    // must be held by that context's party (the router transfers from it).
    transport::Holder own = transport::holderOf(context->party);
    if (app->pool->holder() != own) {
        app->pool->table().transfer(*chunk, app->pool->holder(), own);
    }
    if (int rc = announceSegments(app); rc != CANOPY_OK) {
        app->pool->table().release(*chunk);
        return transport::Error{Errc::System, 0, "cannot announce a segment"};
    }
    return chunk;
}

// Waits for credit on the response stream. CANOPY_OK when there is some.
// Looks before it arms the doorbell: arming drains its eventfd (a system
// call), and the common case, credit at hand, needs no wake-up. Every path
// that returns CANOPY_AGAIN or sleeps has armed before its last look, so a
// ring after that look wakes the sleeper.
int awaitCredit(canopy_request* request, bool blocking) {
    bool armed = false;
    for (;;) {
        auto credit = request->response->credit();
        if (!credit) {
            if (credit.code() == Errc::Aborted) {
                request->aborted = true;
            }
            return codeOf(credit.code());
        }
        if (*credit > 0) {
            return CANOPY_OK;
        }
        if (!armed) {
            request->context->doorbell.collect([](uint32_t) {});
            armed = true;
            continue;
        }
        if (!blocking) {
            request->want_drain = true;
            return CANOPY_AGAIN;
        }
        if (request->context->app->port_closed.load()) {
            return CANOPY_CLOSED;
        }
        if (int rc = waitForWake(request->context, -1); rc != CANOPY_OK) {
            return rc;
        }
        armed = false;
    }
}

int checkOpen(const canopy_request* request) {
    if (request->state == State::Done) {
        return CANOPY_STATE;
    }
    return request->aborted ? CANOPY_CLOSED : CANOPY_OK;
}

}  // namespace

int readBody(canopy_request* request, void* buffer, size_t capacity, size_t* got, bool blocking) {
    *got = 0;
    if (request->state == State::Done) {
        return CANOPY_STATE;
    }
    if (capacity == 0) {
        return CANOPY_OK;
    }
    auto* out = static_cast<std::byte*>(buffer);
    // As awaitCredit(): look first, arm only before the look that decides
    // to give up or sleep, so that a write after that look wakes us.
    bool armed = false;
    for (;;) {
        size_t copied = 0;
        int rc = copyAvailable(request, out, capacity, &copied);
        if (rc != CANOPY_OK) {
            return rc;
        }
        if (copied > 0 || request->body_ended) {
            *got = copied;
            return CANOPY_OK;
        }
        if (!armed) {
            request->context->doorbell.collect([](uint32_t) {});
            armed = true;
            continue;
        }
        if (!blocking) {
            request->want_data = true;
            return CANOPY_AGAIN;
        }
        if (request->context->app->port_closed.load()) {
            return CANOPY_CLOSED;
        }
        if (int wait = waitForWake(request->context, -1); wait != CANOPY_OK) {
            return wait;
        }
        armed = false;
    }
}

int responseInit(canopy_request* request, uint16_t status, uint32_t hint) {
    if (int rc = checkOpen(request); rc != CANOPY_OK) {
        return rc;
    }
    if (request->state == State::HeadersSent) {
        return CANOPY_STATE;
    }
    if (status < 100 || status > 999) {
        return CANOPY_INVALID;
    }
    request->status = status;
    request->fields.clear();
    request->fields.reserve(std::min<uint32_t>(hint, 256));
    request->state = State::Initialized;
    return CANOPY_OK;
}

int addHeader(canopy_request* request, std::string_view name, std::string_view value) {
    if (int rc = checkOpen(request); rc != CANOPY_OK) {
        return rc;
    }
    if (request->state != State::Initialized) {
        return CANOPY_STATE;
    }
    if (name.empty() || name.size() > 255 || !std::all_of(name.begin(), name.end(), [](char c) {
            return isTokenChar(static_cast<unsigned char>(c));
        })) {
        return CANOPY_INVALID;
    }
    if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos ||
        value.size() > transport::kMaxHeadBytes) {
        return CANOPY_INVALID;
    }
    request->fields.emplace_back(std::string(name), std::string(value));
    return CANOPY_OK;
}

int sendHeaders(canopy_request* request, uint16_t flags) {
    if (int rc = checkOpen(request); rc != CANOPY_OK) {
        return rc;
    }
    if (request->state != State::Initialized) {
        return CANOPY_STATE;
    }
    // The response head record; see docs/sdk.md, "Wire formats".
    std::vector<std::byte> record;
    putU32(record, kResponseMagic);
    putU32(record, 0);  // total length, patched below
    putU16(record, request->status);
    putU16(record, flags);
    putU32(record, static_cast<uint32_t>(request->fields.size()));
    for (const auto& [name, value] : request->fields) {
        putU16(record, static_cast<uint16_t>(name.size()));
        putU32(record, static_cast<uint32_t>(value.size()));
        putText(record, name);
        putText(record, value);
    }
    if (record.size() > transport::kMaxHeadBytes) {
        return CANOPY_INVALID;
    }
    auto total = static_cast<uint32_t>(record.size());
    std::memcpy(record.data() + 4, &total, 4);
    std::span<const std::byte> parts[] = {record};
    size_t written = 0;
    int rc = writeBody(request, parts, true, &written);
    if (rc == CANOPY_OK) {
        request->state = State::HeadersSent;
        request->fields.clear();
        request->fields.shrink_to_fit();
    }
    return rc;
}

int writeBody(canopy_request* request, std::span<const std::span<const std::byte>> parts,
              bool blocking, size_t* written) {
    *written = 0;
    if (int rc = checkOpen(request); rc != CANOPY_OK) {
        return rc;
    }
    canopy_context* context = request->context;
    canopy_app* app = context->app;
    const uint32_t chunk_size = app->attachment.segments.chunk_size;
    size_t part = 0;
    size_t offset = 0;
    auto skipEmpty = [&] {
        while (part < parts.size() && offset == parts[part].size()) {
            ++part;
            offset = 0;
        }
    };
    skipEmpty();
    while (part < parts.size()) {
        if (int rc = awaitCredit(request, blocking); rc != CANOPY_OK) {
            return rc == CANOPY_AGAIN && *written > 0 ? CANOPY_OK : rc;
        }
        auto chunk = allocateChunk(context);
        if (!chunk) {
            if (chunk.code() != Errc::WouldBlock) {
                return codeOf(chunk.code());
            }
            if (!blocking) {
                request->want_drain = true;
                return *written > 0 ? CANOPY_OK : CANOPY_AGAIN;
            }
            if (int rc = waitForWake(context, kPoolRetryMs); rc != CANOPY_OK) {
                return rc;
            }
            continue;
        }
        auto room = app->pool->table().find(chunk->segment)->chunk(chunk->index);
        uint32_t filled = 0;
        while (part < parts.size() && filled < chunk_size) {
            size_t take = std::min<size_t>(chunk_size - filled, parts[part].size() - offset);
            std::memcpy(room.data() + filled, parts[part].data() + offset, take);
            filled += static_cast<uint32_t>(take);
            offset += take;
            skipEmpty();
        }
        chunk->length = filled;
        auto sent = request->response->writeChunk(*chunk);
        if (!sent) {
            app->pool->table().release(*chunk);
            if (sent.code() == Errc::Aborted) {
                request->aborted = true;
            }
            return codeOf(sent.code());
        }
        *written += filled;
    }
    return CANOPY_OK;
}

int sendFile(canopy_request* request, int fd, uint64_t offset, uint64_t length) {
    if (int rc = checkOpen(request); rc != CANOPY_OK) {
        return rc;
    }
    if (fd < 0) {
        return CANOPY_INVALID;
    }
    struct stat status {};
    if (::fstat(fd, &status) != 0) {
        return CANOPY_INVALID;
    }
    if (S_ISREG(status.st_mode) && (offset > static_cast<uint64_t>(status.st_size) ||
                                    length > static_cast<uint64_t>(status.st_size) - offset)) {
        return CANOPY_INVALID;
    }
    if (request->state == State::Fresh || request->upgraded) {
        return CANOPY_STATE;
    }
    if (request->state == State::Initialized) {
        if (int rc = sendHeaders(request, 0); rc != CANOPY_OK) {
            return rc;
        }
    }
    if (length == 0) {
        return CANOPY_OK;
    }
    if (int rc = awaitCredit(request, true); rc != CANOPY_OK) {
        return rc;
    }
    canopy_app* app = request->context->app;
    uint32_t token = 0;
    // The descriptor goes first so the router has it when it sees the entry.
    if (int rc = sendFileDescriptor(app, fd, &token); rc != CANOPY_OK) {
        return rc;
    }
    auto sent = request->response->writeFile(token, offset, length);
    if (!sent) {
        if (sent.code() == Errc::Aborted) {
            request->aborted = true;
        }
        return codeOf(sent.code());
    }
    return CANOPY_OK;
}

int finishRequest(canopy_request* request, int rc) {
    if (request->state == State::Done) {
        return CANOPY_STATE;
    }
    canopy_app* app = request->context->app;
    int result = CANOPY_OK;
    if (rc == CANOPY_OK && !request->aborted) {
        if (request->state == State::Fresh) {
            // Unit's answer to a request completed without a response.
            responseInit(request, 200, 1);
            addHeader(request, "Content-Type", "text/plain");
        }
        if (request->state == State::Initialized) {
            result = sendHeaders(request, 0);
        }
        if (result == CANOPY_OK) {
            auto finished = request->response->finish();
            result = finished ? CANOPY_OK : codeOf(finished.code());
        }
    }
    bool cut_short = false;
    if (rc != CANOPY_OK && !request->aborted && request->state == State::HeadersSent &&
        !request->upgraded) {
        // The app gives up after its head went out: what it wrote is part
        // of the answer the client is already receiving, so the router gets
        // all of it and then cuts the connection. An abort would retract
        // the entries the router has not taken yet: the body would end
        // anywhere before that point, or the client would get a 503 after
        // the app had sent its head.
        cut_short = static_cast<bool>(request->response->finish(/*complete=*/false));
    }
    if (!cut_short && (rc != CANOPY_OK || request->aborted || result != CANOPY_OK)) {
        request->response->abort();
        request->response->reclaimUnread();
    }
    if (request->body && !request->body_ended) {
        // Unread body: release what we hold and tell the router to stop.
        request->entry_held = false;
        request->body->abort();
    }
    transport::releaseHead(app->router_segments, request->descriptor);
    request->state = State::Done;
    return rc == CANOPY_OK && request->aborted ? CANOPY_CLOSED : result;
}

bool isWebSocketHandshake(const canopy_request* request) {
    return request->head.method == "GET" &&
           containsIgnoringCase(findField(request, "Upgrade"), "websocket") &&
           containsIgnoringCase(findField(request, "Connection"), "upgrade") &&
           !findField(request, "Sec-WebSocket-Key").empty();
}

int websocketAccept(canopy_request* request) {
    if (int rc = checkOpen(request); rc != CANOPY_OK) {
        return rc;
    }
    if (!isWebSocketHandshake(request) || request->state == State::HeadersSent) {
        return CANOPY_STATE;
    }
    if (request->state == State::Fresh) {
        responseInit(request, 101, 0);
    }
    request->status = 101;
    int rc = sendHeaders(request, kResponseUpgrade);
    if (rc == CANOPY_OK) {
        request->upgraded = true;
    }
    return rc;
}

int websocketSend(canopy_request* request, uint8_t opcode, bool fin, const void* payload,
                  size_t length) {
    if (int rc = checkOpen(request); rc != CANOPY_OK) {
        return rc;
    }
    if (!request->upgraded) {
        return CANOPY_STATE;
    }
    if (opcode > 0xF || length > UINT32_MAX || (payload == nullptr && length != 0)) {
        return CANOPY_INVALID;
    }
    std::byte header[kFrameHeader] = {};
    header[0] = static_cast<std::byte>((fin ? 0x80 : 0) | opcode);
    auto length32 = static_cast<uint32_t>(length);
    std::memcpy(header + 4, &length32, 4);
    std::span<const std::byte> parts[] = {
        std::span<const std::byte>(header),
        std::span<const std::byte>(static_cast<const std::byte*>(payload), length)};
    size_t written = 0;
    return writeBody(request, parts, true, &written);
}

int websocketFrame(canopy_request* request, canopy_websocket_frame_t* frame, bool blocking) {
    if (int rc = checkOpen(request); rc != CANOPY_OK) {
        return rc;
    }
    if (!request->upgraded) {
        return CANOPY_STATE;
    }
    auto& buffer = request->frame_buffer;
    if (request->frame_delivered) {
        buffer.clear();
        request->frame_delivered = false;
    }
    const size_t limit = request->context->app->max_websocket_frame;
    for (;;) {
        request->context->doorbell.collect([](uint32_t) {});
        bool whole = false;
        for (;;) {
            size_t need = kFrameHeader;
            if (buffer.size() >= kFrameHeader) {
                uint32_t payload = 0;
                std::memcpy(&payload, buffer.data() + 4, 4);
                if (payload > limit) {
                    logLine(request->context->app, 1, "WebSocket frame over the limit");
                    request->aborted = true;
                    return CANOPY_ERROR;
                }
                need += payload;
            }
            if (buffer.size() >= need) {
                whole = true;
                break;
            }
            size_t have = buffer.size();
            buffer.resize(need);
            size_t copied = 0;
            int rc = copyAvailable(request, reinterpret_cast<std::byte*>(buffer.data() + have),
                                   need - have, &copied);
            buffer.resize(have + copied);
            if (rc != CANOPY_OK) {
                return rc;
            }
            if (copied == 0) {
                if (request->body_ended) {
                    return CANOPY_CLOSED;
                }
                break;  // nothing more now
            }
        }
        if (whole) {
            frame->size = sizeof *frame;
            frame->request = request;
            frame->fin = (buffer[0] & 0x80) != 0 ? 1 : 0;
            frame->rsv = buffer[0] & 0x70;
            frame->opcode = buffer[0] & 0x0F;
            frame->payload = buffer.data() + kFrameHeader;
            frame->payload_length = buffer.size() - kFrameHeader;
            request->frame_delivered = true;
            return CANOPY_OK;
        }
        if (!blocking) {
            return CANOPY_AGAIN;
        }
        if (request->context->app->port_closed.load()) {
            return CANOPY_CLOSED;
        }
        if (int rc = waitForWake(request->context, -1); rc != CANOPY_OK) {
            return rc;
        }
    }
}

}  // namespace canopy::app
