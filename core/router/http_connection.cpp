#include "core/router/http_connection.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/sendfile.h>
#include <sys/socket.h>

#include <algorithm>
#include <boost/asio/write.hpp>

#include "core/base/log.h"
#include "core/http/response.h"
#include "core/router/router_engine.h"
#include "core/routing/request_target.h"
#include "core/routing/request_view.h"

namespace canopy {
namespace {

// A request head usually fits the first buffer; it doubles when it does not
// (the parser's limits bound it).
constexpr size_t kFirstBufferSize = 4096;
constexpr size_t kMinReadRoom = 1024;
// Internal passes from route to route stop here, as in Unit.
constexpr int kMaxPassHops = 255;

routing::Address endpointAddress(const HttpConnection::Socket::endpoint_type& endpoint) {
    auto address =
        routing::Address::fromSockaddr(endpoint.data(), static_cast<socklen_t>(endpoint.size()));
    return address.value_or(routing::Address::unixSocket());
}

// Per worker thread: buffers and parsers of connections gone idle, reused by
// the next request instead of freed and allocated again. Bounded, so idle
// connections still hold nothing and a burst leaves little behind.
constexpr size_t kPoolLimit = 256;
thread_local std::vector<std::vector<char>> spare_buffers;
thread_local std::vector<std::unique_ptr<http::RequestParser>> spare_parsers;

std::vector<char> takeBuffer() {
    if (spare_buffers.empty()) {
        return std::vector<char>(kFirstBufferSize);
    }
    std::vector<char> buffer = std::move(spare_buffers.back());
    spare_buffers.pop_back();
    return buffer;
}

void giveBuffer(std::vector<char>& buffer) {
    if (buffer.capacity() == kFirstBufferSize && spare_buffers.size() < kPoolLimit) {
        spare_buffers.push_back(std::move(buffer));
    }
    std::vector<char>().swap(buffer);
}

std::unique_ptr<http::RequestParser> takeParser(const http::RequestParserOptions& options) {
    while (!spare_parsers.empty()) {
        std::unique_ptr<http::RequestParser> parser = std::move(spare_parsers.back());
        spare_parsers.pop_back();
        const auto& kept = parser->options();
        if (kept.max_line_size == options.max_line_size &&
            kept.max_head_size == options.max_head_size &&
            kept.max_field_count == options.max_field_count &&
            kept.discard_unsafe_fields == options.discard_unsafe_fields &&
            kept.accept_bare_lf == options.accept_bare_lf) {
            parser->reset();
            return parser;
        }
    }
    return std::make_unique<http::RequestParser>(options);
}

void giveParser(std::unique_ptr<http::RequestParser>& parser) {
    if (parser && spare_parsers.size() < kPoolLimit) {
        spare_parsers.push_back(std::move(parser));
    }
    parser.reset();
}

}  // namespace

HttpConnection::HttpConnection(Socket socket, std::string listener, RouterEngine& engine)
    : socket_(std::move(socket)),
      timer_(socket_.get_executor()),
      listener_(std::move(listener)),
      engine_(engine) {
    boost::system::error_code ec;
    socket_.non_blocking(true, ec);
    remote_ = endpointAddress(socket_.remote_endpoint(ec));
    local_ = endpointAddress(socket_.local_endpoint(ec));
    if (local_.isIp()) {
        // An application's answer can leave in two writes (its head, then
        // its body): with Nagle the second would wait for the client's
        // delayed ACK, 40 ms.
        int enabled = 1;
        ::setsockopt(socket_.native_handle(), IPPROTO_TCP, TCP_NODELAY, &enabled, sizeof enabled);
    }
    engine_.counters().accepted.fetch_add(1, std::memory_order_relaxed);
}

HttpConnection::~HttpConnection() {
    giveBuffer(buffer_);
    giveParser(parser_);
    setIdle(false);
    engine_.counters().closed.fetch_add(1, std::memory_order_relaxed);
}

void HttpConnection::start() {
    waitForRequest();
}

void HttpConnection::setIdle(bool idle) {
    if (idle == idle_counted_) {
        return;
    }
    idle_counted_ = idle;
    if (idle) {
        engine_.counters().idle.fetch_add(1, std::memory_order_relaxed);
    } else {
        engine_.counters().idle.fetch_sub(1, std::memory_order_relaxed);
    }
}

void HttpConnection::armTimer(std::chrono::seconds timeout) {
    // Moving a deadline must not cost a cancelled wait per request: one wait
    // stays outstanding and, when it fires early, waits again for the
    // current deadline. Only a deadline earlier than the pending wake-up
    // restarts the wait.
    deadline_ = std::chrono::steady_clock::now() + timeout;
    if (timer_waiting_ && timer_.expiry() <= deadline_) {
        return;
    }
    waitForDeadline();
}

void HttpConnection::waitForDeadline() {
    timer_waiting_ = true;
    timer_.expires_at(deadline_);
    timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
        auto self = weak.lock();
        if (!self || ec == boost::asio::error::operation_aborted) {
            return;
        }
        self->timer_waiting_ = false;
        if (self->phase_ == Phase::Closed) {
            return;
        }
        if (std::chrono::steady_clock::now() < self->deadline_) {
            self->waitForDeadline();
            return;
        }
        if (self->phase_ == Phase::App && self->app_) {
            AppRequest& app = *self->app_;
            if (!app.body_done && !app.body_waiting && !app.head_sent) {
                // The client stopped sending the body the app is waiting for.
                app.call->cancel();
                auto finished = std::move(self->app_);
                self->fail(408, "request body timed out");
            } else if (app.writing) {
                self->close();  // the client stopped reading the answer
            }
            return;
        }
        if (self->phase_ == Phase::Head || self->phase_ == Phase::Body) {
            // A client that stops half-way through a request: 408, then close.
            self->fail(408, "request timed out");
        } else {
            self->close();
        }
    });
}

void HttpConnection::waitForRequest(bool data_may_be_waiting) {
    snapshot_ = engine_.snapshot();
    if (snapshot_ == nullptr || !snapshot_->listeners.contains(listener_)) {
        close();  // the listener was removed: finish, take no new requests
        return;
    }
    // Keep what a pipelining client already sent; drop what was served.
    if (begin_ > 0) {
        std::copy(buffer_.begin() + static_cast<ptrdiff_t>(begin_),
                  buffer_.begin() + static_cast<ptrdiff_t>(end_), buffer_.begin());
        end_ -= begin_;
        begin_ = 0;
    }
    chunked_.reset();
    file_body_.reset();
    response_.clear();
    status_ = 0;
    if (end_ > 0) {
        beginHead();
        parseHead();
        return;
    }
    phase_ = Phase::Idle;
    setIdle(true);
    // Nothing is buffered: give the memory back while the client is idle.
    giveBuffer(buffer_);
    giveParser(parser_);
    armTimer(snapshot_->http.idle_timeout);
    if (data_may_be_waiting) {
        readAvailable();
        return;
    }
    readMore();
}

void HttpConnection::beginHead() {
    // The request is served by the configuration current when it arrives.
    snapshot_ = engine_.snapshot();
    if (snapshot_ == nullptr || !snapshot_->listeners.contains(listener_)) {
        close();
        return;
    }
    const auto& http = snapshot_->http;
    giveParser(parser_);
    parser_ = takeParser(http::RequestParserOptions::fromSettings(
        http.large_header_buffer_size, http.large_header_buffers, http.discard_unsafe_fields));
    phase_ = Phase::Head;
    armTimer(http.header_read_timeout);
}

void HttpConnection::readMore() {
    // Wait for readability before taking a buffer: an idle connection then
    // costs its socket and this object, not a read buffer.
    socket_.async_wait(Socket::wait_read,
                       [self = shared_from_this()](const boost::system::error_code& ec) {
                           if (ec) {
                               self->close();
                               return;
                           }
                           self->readAvailable();
                       });
}

void HttpConnection::readAvailable() {
    if (buffer_.empty()) {
        buffer_ = takeBuffer();
    } else if (buffer_.size() - end_ < kMinReadRoom) {
        buffer_.resize(buffer_.size() * 2);
    }
    boost::system::error_code ec;
    size_t length =
        socket_.read_some(boost::asio::buffer(buffer_.data() + end_, buffer_.size() - end_), ec);
    if (ec == boost::asio::error::would_block || ec == boost::asio::error::try_again) {
        if (phase_ == Phase::Idle && end_ == 0) {
            giveBuffer(buffer_);  // an idle connection holds no buffer
        }
        readMore();
        return;
    }
    if (ec) {
        if (phase_ == Phase::Head) {
            log::debug("client closed a connection in the middle of a request head");
        }
        close();
        return;
    }
    onData(length);
}

void HttpConnection::onData(size_t length) {
    end_ += length;
    if (phase_ == Phase::Idle) {
        setIdle(false);
        beginHead();
        if (phase_ == Phase::Closed) {
            return;
        }
    }
    if (phase_ == Phase::Head) {
        parseHead();
    } else if (phase_ == Phase::Body) {
        armTimer(snapshot_->http.body_read_timeout);
        consumeBody();
    }
}

void HttpConnection::parseHead() {
    auto result = parser_->parse(std::string_view(buffer_.data() + begin_, end_ - begin_));
    switch (result.status) {
        case http::ParseStatus::NeedMore:
            readMore();
            return;
        case http::ParseStatus::Error:
            engine_.counters().requests.fetch_add(1, std::memory_order_relaxed);
            log::info("invalid request from {}: {}", remote_.text(), result.reason);
            fail(result.error_status, result.reason);
            return;
        case http::ParseStatus::Done:
            head_size_ = result.consumed;
            startRequest();
            return;
    }
}

void HttpConnection::startRequest() {
    engine_.counters().requests.fetch_add(1, std::memory_order_relaxed);
    const auto& head = parser_->head();
    head_request_ = head.method == http::Method::Head;
    keep_alive_ = head.keep_alive;
    body_remaining_ = 0;

    if (head.hasBody()) {
        if (head.expect_continue) {
            // Nothing here reads bodies yet: answer before the client sends
            // one, and close since the framing after it is unknown.
            keep_alive_ = false;
        } else if (head.framing == http::BodyFraming::ContentLength) {
            if (head.content_length > snapshot_->http.max_body_size) {
                fail(413, "request body too large");
                return;
            }
            body_remaining_ = head.content_length;
        } else {
            http::ChunkedDecoderOptions options;
            options.max_body_size = snapshot_->http.max_body_size;
            chunked_ = std::make_unique<http::ChunkedDecoder>(options);
        }
    }
    respond();
    if (phase_ == Phase::Closed || app_) {
        return;
    }
    if (keep_alive_ && (body_remaining_ > 0 || chunked_)) {
        // The answer goes out once the body was read past, so the next
        // request on this connection starts at the right byte.
        phase_ = Phase::Body;
        armTimer(snapshot_->http.body_read_timeout);
        consumeBody();
        return;
    }
    send(!keep_alive_);
}

void HttpConnection::consumeBody() {
    size_t available_begin = begin_ + head_size_;
    while (true) {
        std::string_view available(buffer_.data() + available_begin, end_ - available_begin);
        if (chunked_) {
            auto event = chunked_->decode(available);
            head_size_ += event.consumed;
            available_begin += event.consumed;
            if (event.status == http::BodyStatus::Error) {
                fail(event.error_status, event.reason);
                return;
            }
            if (event.status == http::BodyStatus::Done) {
                chunked_.reset();
                break;
            }
            if (event.status == http::BodyStatus::NeedMore) {
                dropConsumed();
                readMore();
                return;
            }
            continue;  // Data: discarded
        }
        uint64_t take = std::min<uint64_t>(body_remaining_, available.size());
        body_remaining_ -= take;
        head_size_ += take;
        available_begin += take;
        if (body_remaining_ == 0) {
            break;
        }
        dropConsumed();
        readMore();
        return;
    }
    send(!keep_alive_);
}

void HttpConnection::dropConsumed() {
    // Everything read was consumed and the answer is already built: a body
    // of any size passes through a buffer of a fixed size.
    end_ = begin_;
    head_size_ = 0;
}

void HttpConnection::respond() {
    const auto& head = parser_->head();
    routing::RequestView request;
    request.method = head.method_text;
    request.target = head.target;
    request.query = head.query;
    std::string host = routing::normalizeHost(head.host).value_or(std::string());
    request.host = host;
    request.request_line = head.request_line;
    std::vector<routing::Header> headers;
    headers.reserve(head.fields.size());
    for (const auto& field : head.fields) {
        headers.push_back({field.name, field.value});
    }
    request.headers = headers;
    request.remote = remote_;
    request.local = local_;
    request.start_time = std::chrono::steady_clock::now();

    auto path = routing::normalizePath(head.path);
    if (auto* error = std::get_if<routing::PathError>(&path)) {
        keep_alive_ = false;
        status_ = 400;
        http::appendErrorResponse(response_, 400, snapshot_->server, false, head.http10(),
                                  head_request_);
        log::info("invalid request target from {}: {}", remote_.text(),
                  routing::pathErrorText(*error));
        return;
    }
    request.setPath(std::get<std::string>(std::move(path)));

    auto listener = snapshot_->listeners.find(listener_);
    if (listener->second.forwarded) {
        listener->second.forwarded->apply(request);
    }
    routing::PassTarget target =
        snapshot_->routes.resolvePass(listener->second.pass->evaluate(request));
    const routing::Action* action = nullptr;
    int status = 0;
    std::vector<routing::HeaderField> fields;
    std::optional<StaticAnswer> file_answer;  // a static file found and planned
    for (int hop = 0; status == 0; ++hop) {
        if (hop > kMaxPassHops) {
            log::error("request from {} passed between routes more than {} times", remote_.text(),
                       kMaxPassHops);
            status = 500;
            break;
        }
        switch (target.kind) {
            case routing::PassTarget::Kind::Route:
                break;
            case routing::PassTarget::Kind::Application: {
                auto application = snapshot_->applications.find(target.name);
                if (application == snapshot_->applications.end()) {
                    status = 404;  // the validator knows no such application either
                    continue;
                }
                // A target named by a variable is only known now; one the
                // application lacks, or one passed to an application without
                // targets, is not found.
                const auto& targets = application->second->targets;
                std::string app_target = target.target;
                if (app_target.empty() && !targets.empty()) {
                    app_target = targets.front();
                } else if (!app_target.empty() &&
                           std::find(targets.begin(), targets.end(), app_target) == targets.end()) {
                    status = 404;
                    continue;
                }
                startApplication(request, headers, host, target.name, app_target);
                return;
            }
            case routing::PassTarget::Kind::Upstream:
                status = 503;  // refused at apply until they exist; kept safe here
                continue;
            case routing::PassTarget::Kind::Invalid:
                status = 404;
                continue;
        }
        action = snapshot_->routes.match(target.name, request);
        if (action == nullptr) {
            status = 404;
            break;
        }
        if (auto rewritten = routing::applyRewrite(*action, request); !rewritten) {
            log::error("rewrite failed: {}", rewritten.error().message);
            status = 500;
            break;
        }
        // The action, then the fallbacks of `share` actions that found
        // nothing (each may pass, return or share again).
        while (status == 0) {
            if (const auto* pass = std::get_if<routing::PassAction>(&action->handler)) {
                target = snapshot_->routes.resolvePass(*pass, request);
                action = nullptr;
                break;
            }
            if (const auto* answer = std::get_if<routing::ReturnAction>(&action->handler)) {
                status = answer->status;
                break;
            }
            if (const auto* share = std::get_if<routing::ShareAction>(&action->handler)) {
                if (head.method != http::Method::Get && !head_request_) {
                    if (share->fallback) {
                        action = share->fallback.get();
                        continue;
                    }
                    status = 405;
                    fields.push_back({"Allow", "GET, HEAD"});
                    break;
                }
                StaticLookup found = findStaticFile(*share, request, snapshot_->mime_types);
                if ((found.status == 403 || found.status == 404) && share->fallback) {
                    action = share->fallback.get();
                    continue;
                }
                status = found.status;
                if (status == 301) {
                    fields.push_back({"Location", std::move(found.location)});
                } else if (status == 200) {
                    file_answer = planStaticAnswer(std::move(found), request);
                    status = file_answer->status;
                    fields = std::move(file_answer->fields);
                }
                break;
            }
            status = 500;  // proxy is refused at apply time
            action = nullptr;
        }
    }

    status_ = status;
    std::string body;
    if (action != nullptr) {
        if (const auto* answer = std::get_if<routing::ReturnAction>(&action->handler);
            answer != nullptr && answer->location) {
            fields.push_back(
                {"Location", routing::encodeLocation(answer->location->evaluate(request))});
        }
        routing::applyResponseHeaders(*action, request, status, fields);
    }
    bool error_page = status >= 400 && status <= 599;
    if (error_page) {
        body = http::errorPage(status);
        fields.push_back({"Content-Type", "text/html"});
    }
    std::vector<http::HeaderField> views;
    views.reserve(fields.size());
    for (const auto& field : fields) {
        views.push_back({field.name, field.value});
    }
    http::ResponseHead response;
    response.status = status;
    bool bodyless_status = status < 200 || status == 204 || status == 304;
    response.framing =
        bodyless_status ? http::ResponseFraming::NoBody : http::ResponseFraming::ContentLength;
    response.content_length = body.size();
    bool file_sent = file_answer && !file_answer->error_page && !bodyless_status;
    if (file_sent) {
        response.content_length = file_answer->content_length;
    }
    response.keep_alive = keep_alive_;
    response.http10_client = head.http10();
    response.server = snapshot_->server;
    response.fields = views;
    keep_alive_ = http::appendResponseHead(response_, response) && keep_alive_;
    bool sends_body = !head_request_ && !bodyless_status;
    if (sends_body && file_sent) {
        if (!file_answer->body.parts.empty()) {
            file_body_ = std::make_unique<FileBody>(std::move(file_answer->body));
            file_part_ = 0;
            file_text_done_ = 0;
            file_done_ = 0;
        }
    } else if (sends_body) {
        response_ += body;
    }
    if (snapshot_->access_log) {
        // Recorded now: the request's bytes may be reused while its body is
        // read past.
        std::vector<routing::Header> sent;
        for (const auto& field : fields) {
            sent.push_back({field.name, field.value});
        }
        request.response.status = status;
        request.response.body_bytes_sent = sends_body ? response.content_length : 0;
        request.response.headers = sent;
        request.end_time = std::chrono::steady_clock::now();
        snapshot_->access_log->record(request);
    }
}

void HttpConnection::send(bool close_after) {
    phase_ = Phase::Sending;
    armTimer(snapshot_->http.send_timeout);
    if (file_body_ && !file_body_->parts.empty()) {
        // The head is the text before the file's first slice: written with
        // MSG_MORE right before sendfile(), it leaves with the file's first
        // bytes in one segment, so a client wakes once per small file.
        file_body_->parts.front().before.insert(0, response_);
        response_.clear();
        // Posted, not called: a pipelining client's next request must not
        // be served from inside this call.
        boost::asio::post(socket_.get_executor(), [self = shared_from_this(), close_after] {
            if (self->file_body_) {
                self->sendFileBody(close_after);
            }
        });
        return;
    }
    boost::asio::async_write(
        socket_, boost::asio::buffer(response_),
        [self = shared_from_this(), close_after](const boost::system::error_code& ec, size_t) {
            if (ec) {
                self->close();
                return;
            }
            if (self->file_body_) {
                self->sendFileBody(close_after);
                return;
            }
            self->sent(close_after);
        });
}

void HttpConnection::sendFileBody(bool close_after) {
    // Text from memory with send(), the file's slices with sendfile(): the
    // file is never read into memory. The socket is non-blocking; when it is
    // full, wait until it is writable and go on from where this stopped.
    FileBody& body = *file_body_;
    int fd = socket_.native_handle();
    auto waitWritable = [this, close_after] {
        armTimer(snapshot_->http.send_timeout);
        socket_.async_wait(Socket::wait_write, [self = shared_from_this(),
                                                close_after](const boost::system::error_code& ec) {
            if (ec || !self->file_body_) {
                self->close();
                return;
            }
            self->sendFileBody(close_after);
        });
    };
    while (true) {
        std::string_view text =
            file_part_ < body.parts.size() ? body.parts[file_part_].before : body.after;
        while (file_text_done_ < text.size()) {
            // MSG_MORE when a slice of the file follows: the text and the
            // file's first bytes leave in one segment (sendfile pushes).
            int more =
                file_part_ < body.parts.size() && body.parts[file_part_].length > 0 ? MSG_MORE : 0;
            ssize_t written = ::send(fd, text.data() + file_text_done_,
                                     text.size() - file_text_done_, MSG_NOSIGNAL | more);
            if (written > 0) {
                file_text_done_ += static_cast<size_t>(written);
                continue;
            }
            if (written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                waitWritable();
                return;
            }
            if (written < 0 && errno == EINTR) {
                continue;
            }
            close();
            return;
        }
        if (file_part_ == body.parts.size()) {
            break;
        }
        const FileBody::Part& part = body.parts[file_part_];
        while (file_done_ < part.length) {
            auto offset = static_cast<off_t>(part.offset + file_done_);
            auto count = static_cast<size_t>(std::min<uint64_t>(part.length - file_done_, 1 << 30));
            ssize_t written = ::sendfile(fd, body.file.get(), &offset, count);
            if (written > 0) {
                file_done_ += static_cast<uint64_t>(written);
                continue;
            }
            if (written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                waitWritable();
                return;
            }
            if (written < 0 && errno == EINTR) {
                continue;
            }
            // The file shrank since it was opened (or the client left): the
            // announced length cannot be kept, so the connection ends.
            if (written == 0) {
                log::info("a static file became shorter while it was sent");
            }
            close();
            return;
        }
        ++file_part_;
        file_text_done_ = 0;
        file_done_ = 0;
    }
    file_body_.reset();
    sent(close_after);
}

void HttpConnection::sent(bool close_after) {
    if (close_after) {
        boost::system::error_code ignored;
        socket_.shutdown(Socket::shutdown_send, ignored);
        close();
        return;
    }
    finishRequest();
}

void HttpConnection::finishRequest() {
    begin_ += head_size_;
    head_size_ = 0;
    waitForRequest();
}

void HttpConnection::fail(int status, const char* reason) {
    (void)reason;
    status_ = status;
    keep_alive_ = false;
    response_.clear();
    file_body_.reset();
    bool http10 = parser_ && parser_->head().http10();
    http::appendErrorResponse(response_, status, snapshot_->server, false, http10, false);
    send(true);
}

void HttpConnection::close() {
    if (phase_ == Phase::Closed) {
        return;
    }
    phase_ = Phase::Closed;
    // The request's reference may be the last one: it must outlive this call.
    std::unique_ptr<AppRequest> app = std::move(app_);
    if (app) {
        app->call->cancel();
    }
    setIdle(false);
    timer_.cancel();
    boost::system::error_code ignored;
    socket_.close(ignored);
}

}  // namespace canopy
