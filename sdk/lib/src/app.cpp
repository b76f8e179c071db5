// The C entry points of libcanopy. Each catches every exception once and
// turns it into a return code: nothing thrown ever crosses the C ABI.

#include "canopy/app.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>

#include "port_message.h"
#include "runtime.h"

namespace {

using canopy::app::logLine;

template <typename Body>
int guard(Body&& body) noexcept {
    try {
        return body();
    } catch (const std::bad_alloc&) {
        return CANOPY_NO_MEMORY;
    } catch (...) {
        return CANOPY_ERROR;
    }
}

canopy_str_t str(std::string_view text) {
    return canopy_str_t{text.empty() ? "" : text.data(), text.size()};
}

void closeAttachment(const canopy::app::Attachment& attachment) {
    for (int fd :
         {attachment.socket_fd, attachment.channel_fd, attachment.queue_fd, attachment.router_fd}) {
        if (fd >= 0) {
            ::close(fd);
        }
    }
    for (const auto& slot : attachment.consumers) {
        if (slot.event_fd >= 0) {
            ::close(slot.event_fd);
        }
    }
}

int initApp(const canopy_app_init_t* init, canopy_app_t** out) {
    if (init == nullptr || out == nullptr ||
        init->size < offsetof(canopy_app_init_t, request_handler) + sizeof(void*)) {
        return CANOPY_INVALID;
    }
    if (init->abi_major != CANOPY_APP_ABI_MAJOR) {
        return CANOPY_UNSUPPORTED;
    }
    if (init->request_handler == nullptr) {
        return CANOPY_INVALID;
    }
    auto app = std::make_unique<canopy_app>();
    std::memcpy(&app->init, init, std::min(init->size, sizeof(canopy_app_init_t)));
    app->init.size = sizeof(canopy_app_init_t);
    std::string text;
    if (app->init.attachment != nullptr) {
        text = app->init.attachment;
    } else if (const char* env = std::getenv(CANOPY_APP_INIT_ENV); env != nullptr) {
        text = env;
        // Programs the app starts must not believe they are attached too.
        ::unsetenv(CANOPY_APP_INIT_ENV);
    } else {
        logLine(nullptr, 1, "no attachment: CANOPY_APP_INIT is not set");
        return CANOPY_INVALID;
    }
    app->init.attachment = nullptr;  // the caller's text may go away
    auto attachment = canopy::app::parseAttachment(text);
    if (!attachment) {
        logLine(nullptr, 1, attachment.error().detail);
        return std::strcmp(attachment.error().detail, "unsupported attachment version") == 0
                   ? CANOPY_UNSUPPORTED
                   : CANOPY_INVALID;
    }
    app->attachment = std::move(*attachment);
    const auto& attached = app->attachment;
    // Ours from now on; not for programs the app may exec.
    for (int fd :
         {attached.socket_fd, attached.channel_fd, attached.queue_fd, attached.router_fd}) {
        ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    for (const auto& slot : attached.consumers) {
        ::fcntl(slot.event_fd, F_SETFD, FD_CLOEXEC);
    }
    if (app->init.max_websocket_frame != 0) {
        app->max_websocket_frame = app->init.max_websocket_frame;
    }
    app->quit_event.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!app->quit_event.valid()) {
        closeAttachment(attached);
        return CANOPY_ERROR;
    }
    app->slot_used.assign(attached.consumers.size(), false);
    app->pool = std::make_unique<canopy::transport::SegmentPool>(
        attached.segments,
        canopy::transport::holderOf(canopy::transport::consumerParty(attached.consumers[0].index)),
        attached.shm_budget);
    canopy_context* main_context = nullptr;
    if (int rc = canopy::app::createContext(app.get(), &main_context); rc != CANOPY_OK) {
        closeAttachment(attached);
        return rc;
    }
    app->main_context = main_context;
    // Attach the segments the router announced before we started, then say
    // we are ready.
    canopy::app::drainPort(app.get());
    (void)canopy::app::sendPortMessage(attached.socket_fd, canopy::app::PortMessageType::Ready,
                                       static_cast<uint32_t>(attached.consumers.size()), -1);
    *out = app.release();
    return CANOPY_OK;
}

int reportStartFailure(const char* attachment_text, const char* reason) {
    if (reason == nullptr) {
        return CANOPY_INVALID;
    }
    const char* text =
        attachment_text != nullptr ? attachment_text : std::getenv(CANOPY_APP_INIT_ENV);
    if (text == nullptr) {
        logLine(nullptr, 1, "no attachment: CANOPY_APP_INIT is not set");
        return CANOPY_INVALID;
    }
    auto attachment = canopy::app::parseAttachment(text);
    if (!attachment) {
        logLine(nullptr, 1, attachment.error().detail);
        return std::strcmp(attachment.error().detail, "unsupported attachment version") == 0
                   ? CANOPY_UNSUPPORTED
                   : CANOPY_INVALID;
    }
    // The text travels as a memfd: port messages are 8 bytes and a descriptor.
    size_t length = std::min(std::strlen(reason), canopy::transport::kStartFailureMax);
    canopy::transport::FileDescriptor memo(::memfd_create("canopy-start-failure", MFD_CLOEXEC));
    if (!memo.valid()) {
        return CANOPY_ERROR;
    }
    for (size_t written = 0; written < length;) {
        ssize_t done = ::write(memo.get(), reason + written, length - written);
        if (done < 0 && errno == EINTR) {
            continue;
        }
        if (done <= 0) {
            return CANOPY_ERROR;
        }
        written += static_cast<size_t>(done);
    }
    auto sent = canopy::app::sendPortMessage(attachment->socket_fd,
                                             canopy::app::PortMessageType::StartFailed,
                                             static_cast<uint32_t>(length), memo.get());
    return sent ? CANOPY_OK : CANOPY_ERROR;
}

}  // namespace

extern "C" {

int canopy_app_start_failed(const char* attachment, const char* reason) {
    return guard([&] { return reportStartFailure(attachment, reason); });
}

const char* canopy_strerror(int code) {
    switch (code) {
        case CANOPY_OK:
            return "ok";
        case CANOPY_ERROR:
            return "error";
        case CANOPY_AGAIN:
            return "again";
        case CANOPY_STATE:
            return "out of order";
        case CANOPY_INVALID:
            return "invalid argument";
        case CANOPY_CLOSED:
            return "closed";
        case CANOPY_NO_MEMORY:
            return "no memory";
        case CANOPY_NOT_FOUND:
            return "not found";
        case CANOPY_UNSUPPORTED:
            return "unsupported version";
        case CANOPY_QUIT:
            return "quitting";
        default:
            return "unknown";
    }
}

int canopy_app_init(const canopy_app_init_t* init, canopy_app_t** app) {
    return guard([&] { return initApp(init, app); });
}

canopy_context_t* canopy_app_main_context(canopy_app_t* app) {
    return app == nullptr ? nullptr : app->main_context;
}

void* canopy_app_user_data(const canopy_app_t* app) {
    return app == nullptr ? nullptr : app->init.user_data;
}

void canopy_app_quit(canopy_app_t* app) {
    if (app != nullptr) {
        canopy::app::requestQuit(app);
    }
}

int canopy_app_quitting(const canopy_app_t* app) {
    return app != nullptr && app->quitting.load() ? 1 : 0;
}

void canopy_app_free(canopy_app_t* app) {
    if (app == nullptr) {
        return;
    }
    guard([&] {
        if (app->main_context != nullptr) {
            canopy::app::destroyContext(app->main_context);
        }
        closeAttachment(app->attachment);
        delete app;
        return CANOPY_OK;
    });
}

void canopy_app_log(canopy_app_t* app, int level, const char* message) {
    if (message != nullptr) {
        logLine(app, level, message);
    }
}

int canopy_context_create(canopy_app_t* app, canopy_context_t** context) {
    if (app == nullptr || context == nullptr) {
        return CANOPY_INVALID;
    }
    return guard([&] { return canopy::app::createContext(app, context); });
}

void canopy_context_free(canopy_context_t* context) {
    if (context == nullptr || context == context->app->main_context) {
        return;
    }
    guard([&] {
        canopy::app::destroyContext(context);
        return CANOPY_OK;
    });
}

canopy_app_t* canopy_context_app(const canopy_context_t* context) {
    return context == nullptr ? nullptr : context->app;
}

void canopy_context_set_user_data(canopy_context_t* context, void* data) {
    if (context != nullptr) {
        context->user_data = data;
    }
}

void* canopy_context_user_data(const canopy_context_t* context) {
    return context == nullptr ? nullptr : context->user_data;
}

int canopy_run(canopy_context_t* context) {
    if (context == nullptr) {
        return CANOPY_INVALID;
    }
    if (context->running) {
        return CANOPY_STATE;
    }
    return guard([&] {
        context->running = true;
        int rc = CANOPY_OK;
        while ((rc = canopy::app::runOnce(context, -1)) == CANOPY_OK || rc == CANOPY_AGAIN) {
        }
        context->running = false;
        return rc == CANOPY_QUIT ? CANOPY_OK : rc;
    });
}

int canopy_run_once(canopy_context_t* context, int timeout_ms) {
    if (context == nullptr) {
        return CANOPY_INVALID;
    }
    if (context->running) {
        return CANOPY_STATE;
    }
    return guard([&] {
        context->running = true;
        int rc = canopy::app::runOnce(context, timeout_ms);
        context->running = false;
        return rc;
    });
}

int canopy_context_fds(const canopy_context_t* context, int* fds, size_t* count) {
    if (context == nullptr || count == nullptr || (fds == nullptr && *count != 0)) {
        return CANOPY_INVALID;
    }
    const canopy_app* app = context->app;
    int all[] = {context->doorbell.fd(), app->attachment.socket_fd, app->attachment.queue_fd,
                 app->quit_event.get()};
    size_t room = *count;
    for (size_t index = 0; index < 4 && index < room; ++index) {
        fds[index] = all[index];
    }
    *count = 4;
    return CANOPY_OK;
}

#define CANOPY_REQUEST_FIELD(name, expression)                               \
    canopy_str_t canopy_request_##name(const canopy_request_t* request) {    \
        return request == nullptr ? str({}) : str(request->head.expression); \
    }
CANOPY_REQUEST_FIELD(method, method)
CANOPY_REQUEST_FIELD(target, target)
CANOPY_REQUEST_FIELD(path, path)
CANOPY_REQUEST_FIELD(query, query)
CANOPY_REQUEST_FIELD(version, version)
CANOPY_REQUEST_FIELD(remote, remote)
CANOPY_REQUEST_FIELD(local_address, local_address)
CANOPY_REQUEST_FIELD(server_name, server_name)
CANOPY_REQUEST_FIELD(app_target, app_target)
#undef CANOPY_REQUEST_FIELD

canopy_context_t* canopy_request_context(const canopy_request_t* request) {
    return request == nullptr ? nullptr : request->context;
}

uint16_t canopy_request_local_port(const canopy_request_t* request) {
    return request == nullptr ? 0 : request->head.local_port;
}

int canopy_request_tls(const canopy_request_t* request) {
    return request != nullptr && request->head.tls ? 1 : 0;
}

int64_t canopy_request_content_length(const canopy_request_t* request) {
    if (request == nullptr || request->head.content_length == canopy::transport::kUnknownLength) {
        return -1;
    }
    return static_cast<int64_t>(request->head.content_length);
}

int canopy_request_is_websocket_handshake(const canopy_request_t* request) {
    return request != nullptr && canopy::app::isWebSocketHandshake(request) ? 1 : 0;
}

size_t canopy_request_header_count(const canopy_request_t* request) {
    return request == nullptr ? 0 : request->head.fields.size();
}

int canopy_request_header(const canopy_request_t* request, size_t index, canopy_str_t* name,
                          canopy_str_t* value) {
    if (request == nullptr || index >= request->head.fields.size()) {
        return CANOPY_INVALID;
    }
    const auto& field = request->head.fields[index];
    if (name != nullptr) {
        *name = str(field.name);
    }
    if (value != nullptr) {
        *value = str(field.value);
    }
    return CANOPY_OK;
}

int canopy_request_find_header(const canopy_request_t* request, const char* name,
                               size_t name_length, canopy_str_t* value) {
    if (request == nullptr || (name == nullptr && name_length != 0)) {
        return CANOPY_INVALID;
    }
    std::string_view wanted(name == nullptr ? "" : name, name_length);
    for (const auto& field : request->head.fields) {
        if (field.name.size() == wanted.size() &&
            strncasecmp(field.name.data(), wanted.data(), wanted.size()) == 0) {
            if (value != nullptr) {
                *value = str(field.value);
            }
            return CANOPY_OK;
        }
    }
    return CANOPY_NOT_FOUND;
}

void canopy_request_set_user_data(canopy_request_t* request, void* data) {
    if (request != nullptr) {
        request->user_data = data;
    }
}

void* canopy_request_user_data(const canopy_request_t* request) {
    return request == nullptr ? nullptr : request->user_data;
}

int canopy_request_read(canopy_request_t* request, void* buffer, size_t capacity, size_t* got) {
    if (request == nullptr || got == nullptr || (buffer == nullptr && capacity != 0)) {
        return CANOPY_INVALID;
    }
    return guard([&] { return canopy::app::readBody(request, buffer, capacity, got, true); });
}

int canopy_request_read_nb(canopy_request_t* request, void* buffer, size_t capacity, size_t* got) {
    if (request == nullptr || got == nullptr || (buffer == nullptr && capacity != 0)) {
        return CANOPY_INVALID;
    }
    return guard([&] { return canopy::app::readBody(request, buffer, capacity, got, false); });
}

int canopy_response_init(canopy_request_t* request, uint16_t status, uint32_t header_count_hint) {
    if (request == nullptr) {
        return CANOPY_INVALID;
    }
    return guard([&] { return canopy::app::responseInit(request, status, header_count_hint); });
}

int canopy_response_add_header(canopy_request_t* request, const char* name, size_t name_length,
                               const char* value, size_t value_length) {
    if (request == nullptr || name == nullptr || (value == nullptr && value_length != 0)) {
        return CANOPY_INVALID;
    }
    return guard([&] {
        return canopy::app::addHeader(
            request, std::string_view(name, name_length),
            std::string_view(value == nullptr ? "" : value, value_length));
    });
}

int canopy_response_send_headers(canopy_request_t* request) {
    if (request == nullptr) {
        return CANOPY_INVALID;
    }
    return guard([&] { return canopy::app::sendHeaders(request, 0); });
}

namespace {

int writeResponse(canopy_request_t* request, const void* data, size_t length, bool blocking,
                  size_t* written) {
    using State = canopy_request::State;
    if (request->state == State::Done) {
        return CANOPY_STATE;
    }
    if (request->state == State::Fresh || request->upgraded) {
        return CANOPY_STATE;
    }
    if (request->state == State::Initialized) {
        if (int rc = canopy::app::sendHeaders(request, 0); rc != CANOPY_OK) {
            return rc;
        }
    }
    std::span<const std::byte> parts[] = {
        std::span<const std::byte>(static_cast<const std::byte*>(data), length)};
    return canopy::app::writeBody(request, parts, blocking, written);
}

}  // namespace

int canopy_response_write(canopy_request_t* request, const void* data, size_t length) {
    if (request == nullptr || (data == nullptr && length != 0)) {
        return CANOPY_INVALID;
    }
    return guard([&] {
        size_t written = 0;
        return writeResponse(request, data, length, true, &written);
    });
}

int canopy_response_write_nb(canopy_request_t* request, const void* data, size_t length,
                             size_t* written) {
    if (request == nullptr || written == nullptr || (data == nullptr && length != 0)) {
        return CANOPY_INVALID;
    }
    return guard([&] { return writeResponse(request, data, length, false, written); });
}

int canopy_response_send_file(canopy_request_t* request, int fd, uint64_t offset, uint64_t length) {
    if (request == nullptr) {
        return CANOPY_INVALID;
    }
    return guard([&] { return canopy::app::sendFile(request, fd, offset, length); });
}

int canopy_request_done(canopy_request_t* request, int rc) {
    if (request == nullptr) {
        return CANOPY_INVALID;
    }
    return guard([&] { return canopy::app::finishRequest(request, rc); });
}

int canopy_websocket_accept(canopy_request_t* request) {
    if (request == nullptr) {
        return CANOPY_INVALID;
    }
    return guard([&] { return canopy::app::websocketAccept(request); });
}

int canopy_websocket_send(canopy_request_t* request, uint8_t opcode, int fin, const void* payload,
                          size_t length) {
    if (request == nullptr) {
        return CANOPY_INVALID;
    }
    return guard(
        [&] { return canopy::app::websocketSend(request, opcode, fin != 0, payload, length); });
}

int canopy_websocket_receive(canopy_request_t* request, canopy_websocket_frame_t* frame) {
    if (request == nullptr || frame == nullptr) {
        return CANOPY_INVALID;
    }
    return guard([&] { return canopy::app::websocketFrame(request, frame, true); });
}

}  // extern "C"
