#include "core/router/http_connection.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

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
// One TLS record's worth of plaintext: small pieces are gathered up to it,
// and a static file is read in slices of it.
constexpr size_t kTlsRecordSize = 16 * 1024;

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
    // The listener's TLS contexts as the connection found them: a later
    // reconfiguration does not change this connection's TLS.
    if (auto snapshot = engine_.snapshot(); snapshot != nullptr) {
        auto listener = snapshot->listeners.find(listener_);
        if (listener != snapshot->listeners.end() && listener->second.tls) {
            tls_context_ = listener->second.tls;
            snapshot_ = std::move(snapshot);
            startHandshake();
            return;
        }
    }
    waitForRequest();
}

// ---- client I/O ----

void HttpConnection::startHandshake() {
    tls_ = tls_context_->accept(socket_.native_handle());
    if (!tls_) {
        log::error("cannot start a TLS session for {}: out of memory", remote_.text());
        close();
        return;
    }
    phase_ = Phase::Handshake;
    // A client that connects and says nothing is held no longer than one
    // that sends half a request head.
    armTimer(snapshot_->http.header_read_timeout);
    continueHandshake();
}

void HttpConnection::continueHandshake() {
    tls::IoResult result = tls_->handshake();
    if (result.status == tls::IoStatus::Done) {
        // The client's first request may have come with its last flight.
        waitForRequest(/*data_may_be_waiting=*/true);
        return;
    }
    if (result.status == tls::IoStatus::WantRead || result.status == tls::IoStatus::WantWrite) {
        socket_.async_wait(
            result.status == tls::IoStatus::WantRead ? Socket::wait_read : Socket::wait_write,
            [self = shared_from_this()](const boost::system::error_code& ec) {
                if (ec || self->phase_ != Phase::Handshake) {
                    self->close();
                    return;
                }
                self->continueHandshake();
            });
        return;
    }
    // A bad client costs its own connection only, and a line saying why.
    log::info("TLS handshake with {} failed: {}", remote_.text(), tls_->error());
    close();
}

size_t HttpConnection::readSome(char* data, size_t size, boost::system::error_code& ec) {
    if (!tls_) {
        return socket_.read_some(boost::asio::buffer(data, size), ec);
    }
    size_t got = tlsReadOutcome(tls_->read(data, size), ec);
    if (ec == boost::asio::error::connection_aborted) {
        log::info("TLS error reading from {}: {}", remote_.text(), tls_->error());
    }
    return got;
}

size_t HttpConnection::tlsReadOutcome(const tls::IoResult& result, boost::system::error_code& ec) {
    tls_read_wants_write_ = false;
    switch (result.status) {
        case tls::IoStatus::Done:
            ec = {};
            return result.bytes;
        case tls::IoStatus::WantWrite:
            tls_read_wants_write_ = true;
            ec = boost::asio::error::would_block;
            return 0;
        case tls::IoStatus::WantRead:
            ec = boost::asio::error::would_block;
            return 0;
        case tls::IoStatus::Closed:
            ec = boost::asio::error::eof;
            return 0;
        case tls::IoStatus::Failed:
            break;
    }
    ec = boost::asio::error::connection_aborted;
    return 0;
}

size_t HttpConnection::peekSome(char* data, size_t size, boost::system::error_code& ec) {
    if (!tls_) {
        while (true) {
            ssize_t peeked = ::recv(socket_.native_handle(), data, size, MSG_PEEK | MSG_DONTWAIT);
            if (peeked > 0) {
                ec = {};
                return static_cast<size_t>(peeked);
            }
            if (peeked == 0) {
                ec = boost::asio::error::eof;
                return 0;
            }
            if (errno == EINTR) {
                continue;
            }
            ec = errno == EAGAIN || errno == EWOULDBLOCK
                     ? boost::system::error_code(boost::asio::error::would_block)
                     : boost::system::error_code(errno, boost::system::system_category());
            return 0;
        }
    }
    return tlsReadOutcome(tls_->peek(data, size), ec);
}

size_t HttpConnection::writeTls(const char* data, size_t size, boost::system::error_code& ec) {
    tls_write_wants_read_ = false;
    auto offer = [this, &ec](const char* bytes, size_t length) -> size_t {
        tls::IoResult result = tls_->write(bytes, length);
        switch (result.status) {
            case tls::IoStatus::Done:
                ec = {};
                return result.bytes;
            case tls::IoStatus::WantRead:
                tls_write_wants_read_ = true;
                ec = boost::asio::error::would_block;
                return 0;
            case tls::IoStatus::WantWrite:
                ec = boost::asio::error::would_block;
                return 0;
            case tls::IoStatus::Closed:
            case tls::IoStatus::Failed:
                break;
        }
        log::debug("TLS error writing to {}: {}", remote_.text(), tls_->error());
        ec = boost::asio::error::broken_pipe;
        return 0;
    };
    while (!tls_backlog_.empty()) {
        size_t taken = offer(tls_backlog_.data(), tls_backlog_.size());
        if (ec) {
            return 0;
        }
        tls_backlog_.erase(0, taken);
    }
    return offer(data, size);
}

size_t HttpConnection::writeSome(const char* data, size_t size, boost::system::error_code& ec,
                                 bool more) {
    if (tls_) {
        return writeTls(data, size, ec);
    }
    while (true) {
        ssize_t written =
            ::send(socket_.native_handle(), data, size, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
        if (written >= 0) {
            ec = {};
            return static_cast<size_t>(written);
        }
        if (errno == EINTR) {
            continue;
        }
        ec = errno == EAGAIN || errno == EWOULDBLOCK
                 ? boost::system::error_code(boost::asio::error::would_block)
                 : boost::system::error_code(errno, boost::system::system_category());
        return 0;
    }
}

void HttpConnection::writeInterim(std::string_view text) {
    boost::system::error_code ec;
    size_t written = writeSome(text.data(), text.size(), ec);
    if (tls_ && written < text.size() && (!ec || ec == boost::asio::error::would_block)) {
        tls_backlog_.append(text.substr(written));
    }
}

size_t HttpConnection::sendFile(int file, uint64_t offset, uint64_t count,
                                boost::system::error_code& ec) {
    if (!tls_) {
        while (true) {
            auto position = static_cast<off_t>(offset);
            ssize_t written = ::sendfile(socket_.native_handle(), file, &position,
                                         static_cast<size_t>(std::min<uint64_t>(count, 1 << 30)));
            if (written > 0) {
                ec = {};
                return static_cast<size_t>(written);
            }
            if (written == 0) {
                ec = boost::asio::error::eof;  // the file ended before `count`
                return 0;
            }
            if (errno == EINTR) {
                continue;
            }
            ec = errno == EAGAIN || errno == EWOULDBLOCK
                     ? boost::system::error_code(boost::asio::error::would_block)
                     : boost::system::error_code(errno, boost::system::system_category());
            return 0;
        }
    }
    // TLS encrypts in user space: the file goes through a bounded buffer,
    // one record at a time. Bytes SSL_write did not take stay buffered for
    // the retry, which asks for the same offset.
    if (tls_file_buffer_.empty() || tls_file_ != file || tls_file_offset_ != offset) {
        tls_file_buffer_.resize(static_cast<size_t>(std::min<uint64_t>(count, kTlsRecordSize)));
        ssize_t got;
        do {
            got = ::pread(file, tls_file_buffer_.data(), tls_file_buffer_.size(),
                          static_cast<off_t>(offset));
        } while (got < 0 && errno == EINTR);
        if (got <= 0) {
            ec = got == 0 ? boost::system::error_code(boost::asio::error::eof)
                          : boost::system::error_code(errno, boost::system::system_category());
            tls_file_buffer_.clear();
            return 0;
        }
        tls_file_buffer_.resize(static_cast<size_t>(got));
        tls_file_ = file;
        tls_file_offset_ = offset;
    }
    size_t offered = static_cast<size_t>(std::min<uint64_t>(count, tls_file_buffer_.size()));
    size_t written = writeTls(tls_file_buffer_.data(), offered, ec);
    if (ec) {
        return 0;
    }
    tls_file_buffer_.erase(0, written);
    tls_file_offset_ += written;
    return written;
}

void HttpConnection::writeAllTls(std::shared_ptr<std::vector<boost::asio::const_buffer>> buffers,
                                 size_t index, size_t offset, size_t total, WriteHandler handler) {
    // Small pieces (a head, chunk headers) are gathered into one record;
    // a large one is offered as it is. After a stall the same bytes are
    // gathered again from the same position, as OpenSSL requires.
    thread_local std::string gathered;
    while (true) {
        while (index < buffers->size() && offset == (*buffers)[index].size()) {
            ++index;
            offset = 0;
        }
        if (index == buffers->size()) {
            boost::asio::post(socket_.get_executor(),
                              [handler = std::move(handler), total] { handler({}, total); });
            return;
        }
        const auto& current = (*buffers)[index];
        const char* data = static_cast<const char*>(current.data()) + offset;
        size_t size = current.size() - offset;
        if (size < kTlsRecordSize && index + 1 < buffers->size()) {
            gathered.clear();
            size_t gather_index = index;
            size_t gather_offset = offset;
            while (gather_index < buffers->size() && gathered.size() < kTlsRecordSize) {
                const auto& piece = (*buffers)[gather_index];
                size_t take =
                    std::min(piece.size() - gather_offset, kTlsRecordSize - gathered.size());
                gathered.append(static_cast<const char*>(piece.data()) + gather_offset, take);
                gather_offset += take;
                if (gather_offset == piece.size()) {
                    ++gather_index;
                    gather_offset = 0;
                }
            }
            data = gathered.data();
            size = gathered.size();
        }
        boost::system::error_code ec;
        size_t written = writeTls(data, size, ec);
        if (ec == boost::asio::error::would_block) {
            waitWritable(
                [self = shared_from_this(), buffers = std::move(buffers), index, offset, total,
                 handler = std::move(handler)](const boost::system::error_code& error) mutable {
                    if (error) {
                        handler(error, total);
                        return;
                    }
                    self->writeAllTls(std::move(buffers), index, offset, total, std::move(handler));
                });
            return;
        }
        if (ec) {
            boost::asio::post(socket_.get_executor(),
                              [handler = std::move(handler), ec, total] { handler(ec, total); });
            return;
        }
        total += written;
        while (written > 0) {
            size_t take = std::min(written, (*buffers)[index].size() - offset);
            written -= take;
            offset += take;
            if (offset == (*buffers)[index].size()) {
                ++index;
                offset = 0;
            }
        }
    }
}

void HttpConnection::shutdownSend() {
    if (tls_) {
        tls_->shutdown();
    }
    boost::system::error_code ignored;
    socket_.shutdown(Socket::shutdown_send, ignored);
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
        if (self->phase_ == Phase::Handshake) {
            log::info("TLS handshake with {} timed out", self->remote_.text());
            self->close();
            return;
        }
        if (self->phase_ == Phase::Proxy && self->proxy_) {
            self->proxyClientTimedOut();
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
    waitReadable([self = shared_from_this()](const boost::system::error_code& ec) {
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
    size_t length = readSome(buffer_.data() + end_, buffer_.size() - end_, ec);
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
    if (phase_ == Phase::Closed || app_ || proxy_) {
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
    request.scheme = tls_ ? routing::Scheme::Https : routing::Scheme::Http;
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
    bool rewritten = false;                   // a `rewrite` changed $uri: the proxy sends it
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
            case routing::PassTarget::Kind::Upstream: {
                auto upstream = snapshot_->upstreams.find(target.name);
                if (upstream == snapshot_->upstreams.end()) {
                    status = 404;  // the validator knows no such upstream either
                    continue;
                }
                startProxy(request, headers, host, ProxyDestination{upstream->second, {}}, nullptr,
                           rewritten);
                return;
            }
            case routing::PassTarget::Kind::Invalid:
                status = 404;
                continue;
        }
        action = snapshot_->routes.match(target.name, request);
        if (action == nullptr) {
            status = 404;
            break;
        }
        if (auto applied = routing::applyRewrite(*action, request); !applied) {
            log::error("rewrite failed: {}", applied.error().message);
            status = 500;
            break;
        }
        rewritten = rewritten || action->rewrite.has_value();
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
            const auto& proxy = std::get<routing::ProxyAction>(action->handler);
            auto address = parseSocketAddress(proxy.address);
            if (!address) {
                log::error("proxy address \"{}\": {}", proxy.address, address.error().message);
                status = 502;
                action = nullptr;
                break;
            }
            startProxy(request, headers, host, ProxyDestination{nullptr, std::move(*address)},
                       action, rewritten);
            return;
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
    writeAll(boost::asio::buffer(response_),
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
    // Text from memory, the file's slices with sendFile(): on plain TCP the
    // file is never read into memory. The socket is non-blocking; when it
    // is full, wait until it is writable and go on from where this stopped.
    FileBody& body = *file_body_;
    auto waitUntilWritable = [this, close_after] {
        armTimer(snapshot_->http.send_timeout);
        waitWritable([self = shared_from_this(), close_after](const boost::system::error_code& ec) {
            if (ec || !self->file_body_) {
                self->close();
                return;
            }
            self->sendFileBody(close_after);
        });
    };
    boost::system::error_code ec;
    while (true) {
        std::string_view text =
            file_part_ < body.parts.size() ? body.parts[file_part_].before : body.after;
        while (file_text_done_ < text.size()) {
            // MSG_MORE when a slice of the file follows: the text and the
            // file's first bytes leave in one segment (sendfile pushes).
            bool more = file_part_ < body.parts.size() && body.parts[file_part_].length > 0;
            size_t written =
                writeSome(text.data() + file_text_done_, text.size() - file_text_done_, ec, more);
            if (ec == boost::asio::error::would_block) {
                waitUntilWritable();
                return;
            }
            if (ec) {
                close();
                return;
            }
            file_text_done_ += written;
        }
        if (file_part_ == body.parts.size()) {
            break;
        }
        const FileBody::Part& part = body.parts[file_part_];
        while (file_done_ < part.length) {
            size_t written =
                sendFile(body.file.get(), part.offset + file_done_, part.length - file_done_, ec);
            if (ec == boost::asio::error::would_block) {
                waitUntilWritable();
                return;
            }
            if (ec) {
                // The file shrank since it was opened (or the client left):
                // the announced length cannot be kept, so the connection ends.
                if (ec == boost::asio::error::eof) {
                    log::info("a static file became shorter while it was sent");
                }
                close();
                return;
            }
            file_done_ += written;
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
        shutdownSend();
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
    abortProxy();
    setIdle(false);
    timer_.cancel();
    boost::system::error_code ignored;
    socket_.close(ignored);
}

}  // namespace canopy
