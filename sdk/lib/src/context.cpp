// Contexts, the port socket and the run loop.

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "port_message.h"
#include "runtime.h"

namespace canopy::app {

using transport::Errc;
using transport::FileDescriptor;

namespace {

const char* levelName(int level) {
    static const char* const kNames[] = {"alert", "error", "warn", "notice", "info", "debug"};
    return level >= 0 && level <= 5 ? kNames[level] : "info";
}

FileDescriptor duplicate(int fd) {
    return FileDescriptor(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
}

// Runs an app callback; a C++ exception escaping it (a C++ app without the
// header-only layer) is logged and the request aborted, never propagated
// into the loop of a C caller.
template <typename Call>
void guarded(canopy_app* app, canopy_request* request, Call&& call) {
    try {
        call();
    } catch (...) {
        logLine(app, 1, "an application callback threw; its request is aborted");
        if (request != nullptr && request->state != canopy_request::State::Done) {
            finishRequest(request, CANOPY_ERROR);
        }
    }
}

void freeDone(canopy_context* context) {
    auto& open = context->open;
    for (size_t index = 0; index < open.size();) {
        if (open[index]->state == canopy_request::State::Done) {
            delete open[index];
            open[index] = open.back();
            open.pop_back();
        } else {
            ++index;
        }
    }
}

// Takes one request from the queue and runs the handler. False when none.
bool takeOne(canopy_context* context) {
    canopy_app* app = context->app;
    // The router announces a segment on the socket before it publishes a ref
    // into it: takeRequest drains the socket when a head names a segment not
    // attached yet. Draining before every take cost a recvmsg(2) per
    // request for a segment announced once; the other messages (files,
    // quit) are drained where they are needed and whenever the socket wakes
    // a wait.
    for (;;) {
        auto taken =
            context->channel->takeRequest(app->router_segments, 0, -1, [app] { drainPort(app); });
        if (taken.code() == Errc::WouldBlock) {
            return false;
        }
        if (taken.code() == Errc::Aborted) {
            continue;  // cancelled while queued: take the next
        }
        if (!taken) {
            logLine(app, 1, taken.error().detail);
            return false;
        }
        auto* request = new canopy_request();
        request->context = context;
        request->descriptor = *taken;
        const auto& descriptor = request->descriptor;
        auto head = transport::loadHead(app->router_segments, descriptor, request->head_storage);
        auto preread =
            head ? transport::loadPreread(app->router_segments, descriptor, request->preread)
                 : transport::Result<void>(head.error());
        request->response.emplace(
            *context->channel,
            transport::StreamId{descriptor.response_stream, descriptor.response_stream_generation},
            context->party, app->pool->table());
        if (!head || !preread) {
            logLine(app, 1, "request head malformed; request aborted");
            request->response->abort();
            transport::releaseHead(app->router_segments, descriptor);
            delete request;
            return true;
        }
        request->head = std::move(*head);
        if (descriptor.request_stream != transport::kNoStream) {
            request->body.emplace(*context->channel,
                                  transport::StreamId{descriptor.request_stream,
                                                      descriptor.request_stream_generation},
                                  context->party, app->router_segments);
        } else {
            request->body_ended = true;
        }
        context->open.push_back(request);
        uint64_t count = app->requests_taken.fetch_add(1) + 1;
        if (app->attachment.request_limit != 0 && count >= app->attachment.request_limit) {
            requestQuit(app);
        }
        guarded(app, request, [&] { app->init.request_handler(request); });
        return true;
    }
}

// Events on requests still open after their handler returned.
bool serviceOpen(canopy_context* context) {
    canopy_app* app = context->app;
    bool did = false;
    // Callbacks only finish requests (freed later), never add any, so
    // indices stay valid while we iterate.
    for (size_t index = 0; index < context->open.size(); ++index) {
        canopy_request* request = context->open[index];
        if (request->state == canopy_request::State::Done) {
            continue;
        }
        if (!request->close_notified &&
            (request->response->readerAborted() ||
             (request->body && !request->body_ended && request->body->writerAborted()))) {
            request->aborted = true;
            request->close_notified = true;
            did = true;
            if (app->init.close_handler != nullptr) {
                guarded(app, request, [&] { app->init.close_handler(request); });
            }
            continue;
        }
        if (request->upgraded && app->init.websocket_handler != nullptr) {
            canopy_websocket_frame_t frame{};
            int rc = CANOPY_OK;
            while (request->state != canopy_request::State::Done &&
                   (rc = websocketFrame(request, &frame, false)) == CANOPY_OK) {
                did = true;
                guarded(app, request, [&] { app->init.websocket_handler(&frame); });
            }
            if (rc != CANOPY_OK && rc != CANOPY_AGAIN && rc != CANOPY_STATE &&
                !request->close_notified) {
                // The router ended the connection: tell the app once.
                request->close_notified = true;
                did = true;
                if (app->init.close_handler != nullptr) {
                    guarded(app, request, [&] { app->init.close_handler(request); });
                }
            }
        }
        if (request->want_data && request->state != canopy_request::State::Done) {
            // Take the next entry (if any) so the data handler finds it.
            bool ready = request->body_ended || request->entry_held ||
                         request->preread_offset < request->preread.size();
            if (!ready && request->body) {
                auto entry = request->body->next();
                if (entry) {
                    request->entry = *entry;
                    request->entry_held = true;
                    request->entry_offset = 0;
                    ready = true;
                } else if (entry.code() != Errc::WouldBlock) {
                    ready = true;  // end, abort or error: the read reports it
                    if (entry.code() == Errc::Closed) {
                        request->body_ended = true;
                    }
                }
            }
            if (ready) {
                request->want_data = false;
                did = true;
                if (app->init.data_handler != nullptr) {
                    guarded(app, request, [&] { app->init.data_handler(request); });
                }
            }
        }
        if (request->want_drain && request->state != canopy_request::State::Done) {
            auto credit = request->response->credit();
            if (!credit || *credit > 0) {
                request->want_drain = false;
                did = true;
                if (app->init.drain_handler != nullptr) {
                    guarded(app, request, [&] { app->init.drain_handler(request); });
                }
            }
        }
    }
    return did;
}

}  // namespace

void logLine(canopy_app* /*app*/, int level, const char* message) {
    // One fprintf: stderr is unbuffered, so the line is one write(2) and
    // lines of several threads do not interleave.
    std::fprintf(stderr, "canopy-app: [%s] %s\n", levelName(level), message);
}

void requestQuit(canopy_app* app) {
    // Async-signal-safe: an atomic store and a write(2).
    if (!app->quitting.exchange(true)) {
        uint64_t one = 1;
        while (::write(app->quit_event.get(), &one, sizeof one) < 0 && errno == EINTR) {
        }
    }
}

void drainPort(canopy_app* app) {
    if (app->port_closed.load(std::memory_order_acquire)) {
        return;
    }
    std::lock_guard lock(app->port_mutex);
    for (;;) {
        auto message = receivePortMessage(app->attachment.socket_fd);
        if (message.code() == Errc::WouldBlock) {
            return;
        }
        if (message.code() == Errc::Closed) {
            // The router is gone or asks us to leave: quit gracefully.
            app->port_closed.store(true, std::memory_order_release);
            requestQuit(app);
            return;
        }
        if (!message) {
            logLine(app, 1, message.error().detail);
            if (message.code() == Errc::Corrupt) {
                continue;
            }
            return;
        }
        switch (message->type) {
            case PortMessageType::RouterSegment:
                if (!message->fd.valid() ||
                    !app->router_segments
                         .attach(message->id, std::move(message->fd), app->attachment.segments)
                         .ok()) {
                    logLine(app, 1, "cannot attach a segment the router announced");
                }
                break;
            case PortMessageType::RouterFile:
                if (message->fd.valid()) {
                    app->router_files[message->id] = std::move(message->fd);
                }
                break;
            case PortMessageType::Quit:
                requestQuit(app);
                break;
            default:
                break;  // unknown or not for us: a newer router may send more
        }
    }
}

int createContext(canopy_app* app, canopy_context** out) {
    size_t slot = 0;
    {
        std::lock_guard lock(app->contexts_mutex);
        while (slot < app->slot_used.size() && app->slot_used[slot]) {
            ++slot;
        }
        if (slot == app->slot_used.size()) {
            return CANOPY_NO_MEMORY;
        }
        app->slot_used[slot] = true;
    }
    const Attachment& attachment = app->attachment;
    const ConsumerSlot& consumer = attachment.consumers[slot];
    auto channel = transport::Channel::attach(
        attachment.channel, duplicate(attachment.channel_fd), duplicate(attachment.queue_fd),
        duplicate(attachment.router_fd), consumer.index, duplicate(consumer.event_fd));
    if (!channel) {
        logLine(app, 1, channel.error().detail);
        std::lock_guard lock(app->contexts_mutex);
        app->slot_used[slot] = false;
        return CANOPY_ERROR;
    }
    auto context = std::make_unique<canopy_context>();
    context->app = app;
    context->slot = slot;
    context->party = transport::consumerParty(consumer.index);
    context->channel = std::move(*channel);
    context->doorbell = context->channel->doorbell(context->party);
    *out = context.release();
    return CANOPY_OK;
}

void destroyContext(canopy_context* context) {
    for (canopy_request* request : context->open) {
        if (request->state != canopy_request::State::Done) {
            finishRequest(request, CANOPY_ERROR);
        }
        delete request;
    }
    context->open.clear();
    canopy_app* app = context->app;
    {
        std::lock_guard lock(app->contexts_mutex);
        app->slot_used[context->slot] = false;
    }
    delete context;
}

int waitForWake(canopy_context* context, int timeout_ms) {
    canopy_app* app = context->app;
    bool port_open = !app->port_closed.load(std::memory_order_acquire);
    pollfd fds[2] = {{context->doorbell.fd(), POLLIN, 0}, {app->attachment.socket_fd, POLLIN, 0}};
    int ready = 0;
    while ((ready = ::poll(fds, port_open ? 2 : 1, timeout_ms)) < 0 && errno == EINTR) {
    }
    if (ready < 0) {
        return CANOPY_ERROR;
    }
    if (port_open && fds[1].revents != 0) {
        drainPort(app);
    }
    return CANOPY_OK;
}

int runOnce(canopy_context* context, int timeout_ms) {
    canopy_app* app = context->app;
    if (timeout_ms == 0) {
        // The caller's own loop polls canopy_context_fds() and calls us when
        // one is readable: it may be the socket, which only a drain quiets.
        drainPort(app);
    }
    for (;;) {
        // Arm before looking, so a ring after the look wakes the poll below.
        context->doorbell.collect([](uint32_t) {});
        freeDone(context);
        bool did = serviceOpen(context);
        bool quitting = app->quitting.load(std::memory_order_acquire);
        if (quitting && !context->quit_notified) {
            context->quit_notified = true;
            if (app->init.quit_handler != nullptr) {
                guarded(app, nullptr, [&] { app->init.quit_handler(context); });
            }
            did = true;
        }
        if (!quitting && takeOne(context)) {
            did = true;
        }
        freeDone(context);
        if (did) {
            return CANOPY_OK;
        }
        if (quitting && context->open.empty()) {
            return CANOPY_QUIT;
        }
        if (timeout_ms == 0) {
            return CANOPY_AGAIN;
        }
        bool port_open = !app->port_closed.load(std::memory_order_acquire);
        pollfd fds[4];
        nfds_t count = 0;
        fds[count++] = {context->doorbell.fd(), POLLIN, 0};
        if (port_open) {
            fds[count++] = {app->attachment.socket_fd, POLLIN, 0};
        }
        if (!quitting) {
            // The queue's eventfd wakes every idle context; only one gets
            // the ticket (see sdk/transport/README.md on the herd).
            fds[count++] = {app->attachment.queue_fd, POLLIN, 0};
            fds[count++] = {app->quit_event.get(), POLLIN, 0};
        }
        int ready = 0;
        while ((ready = ::poll(fds, count, timeout_ms)) < 0 && errno == EINTR) {
        }
        if (ready < 0) {
            logLine(app, 1, "poll failed in the run loop");
            return CANOPY_ERROR;
        }
        if (ready == 0) {
            return CANOPY_AGAIN;
        }
        if (port_open && fds[1].revents != 0) {
            drainPort(app);  // a segment, a file, quit, or the router gone
        }
        timeout_ms = 0;  // one more pass does what woke us
    }
}

}  // namespace canopy::app
