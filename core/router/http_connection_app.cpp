// The part of HttpConnection that serves a request through an application:
// the request body streamed to it as the app takes it, the answer streamed
// back as the client takes it (app_call.h explains the two threads).

#include <sys/socket.h>

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>

#include "core/base/log.h"
#include "core/http/response.h"
#include "core/router/http_connection.h"
#include "core/router/router_engine.h"

namespace canopy {
namespace {

constexpr size_t kBodyReadSize = 64 * 1024;

bool equalsIgnoringCase(std::string_view left, std::string_view right) {
    if (left.size() != right.size()) {
        return false;
    }
    for (size_t index = 0; index < left.size(); ++index) {
        char a = left[index];
        char b = right[index];
        if (a >= 'A' && a <= 'Z') {
            a = static_cast<char>(a - 'A' + 'a');
        }
        if (b >= 'A' && b <= 'Z') {
            b = static_cast<char>(b - 'A' + 'a');
        }
        if (a != b) {
            return false;
        }
    }
    return true;
}

// Fields an application may not set: the router frames the response and
// owns the connection.
bool hopByHop(std::string_view name) {
    return equalsIgnoringCase(name, "Connection") || equalsIgnoringCase(name, "Keep-Alive") ||
           equalsIgnoringCase(name, "Transfer-Encoding") ||
           equalsIgnoringCase(name, "Proxy-Connection") || equalsIgnoringCase(name, "Upgrade") ||
           equalsIgnoringCase(name, "TE") || equalsIgnoringCase(name, "Trailer") ||
           equalsIgnoringCase(name, "Date") || equalsIgnoringCase(name, "Server");
}

std::optional<uint64_t> parseLength(std::string_view text) {
    if (text.empty() || text.size() > 19) {
        return std::nullopt;
    }
    uint64_t value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
        value = value * 10 + static_cast<uint64_t>(c - '0');
    }
    return value;
}

}  // namespace

void HttpConnection::startApplication(routing::RequestView& request,
                                      std::vector<routing::Header>& headers,
                                      const std::string& host, const std::string& application,
                                      const std::string& app_target) {
    const auto& head = parser_->head();
    app_ = std::make_unique<AppRequest>();
    AppRequest& app = *app_;
    app.serial = ++app_serial_;
    app.self = shared_from_this();
    app.host = host;
    app.headers = std::move(headers);
    request.host = app.host;
    request.headers = app.headers;
    app.view = std::move(request);
    phase_ = Phase::App;

    auto call = std::make_shared<AppCall>();
    call->app = application;
    call->app_target = app_target;
    call->method = std::string(head.method_text);
    call->target = std::string(head.target);
    call->path = std::string(app.view.path());
    call->query = std::string(head.query);
    call->version = head.http10() ? "HTTP/1.0" : "HTTP/1.1";
    call->remote = app.view.remote.text();
    call->local_address = local_.text();
    call->local_port = local_.port();
    call->server_name = app.host;
    call->tls = app.view.scheme == routing::Scheme::Https;
    call->headers.reserve(head.fields.size());
    for (const auto& field : head.fields) {
        call->headers.emplace_back(std::string(field.name), std::string(field.value));
    }
    call->main_executor = engine_.applicationsExecutor();
    if (head.websocket) {
        auto handshake = http::checkWebSocketHandshake(head);
        if (handshake.status == http::WebSocketHandshakeStatus::Refused) {
            log::info("invalid WebSocket handshake from {}: {}", remote_.text(), handshake.reason);
            auto finished = std::move(app_);
            status_ = handshake.error_status;
            keep_alive_ = false;
            response_.clear();
            http::appendWebSocketRefusal(response_, handshake.error_status, snapshot_->server,
                                         head_request_);
            send(true);
            return;
        }
        if (handshake.status == http::WebSocketHandshakeStatus::Valid) {
            call->websocket = true;
            app.websocket_key = std::string(handshake.key);
        }
    }

    // The body bytes that came with the head.
    size_t body_begin = begin_ + head_size_;
    std::string_view available(buffer_.data() + body_begin, end_ - body_begin);
    app.consumed_end = body_begin;
    if (head.hasBody() && head.framing == http::BodyFraming::ContentLength) {
        app.content_length = true;
        call->content_length = head.content_length;
        size_t take =
            static_cast<size_t>(std::min<uint64_t>(head.content_length, available.size()));
        call->preread.assign(available.substr(0, take));
        app.consumed_end += take;
        app.body_remaining = head.content_length - take;
        app.body_done = app.body_remaining == 0;
    } else if (head.hasBody()) {
        http::ChunkedDecoderOptions options;
        options.max_body_size = snapshot_->http.max_body_size;
        chunked_ = std::make_unique<http::ChunkedDecoder>(options);
        app.body_done = false;
        while (true) {
            auto event = chunked_->decode(available);
            available.remove_prefix(event.consumed);
            app.consumed_end += event.consumed;
            if (event.status == http::BodyStatus::Error) {
                auto finished = std::move(app_);
                fail(event.error_status, event.reason);
                return;
            }
            if (event.status == http::BodyStatus::Data) {
                call->preread.append(event.data);
                continue;
            }
            app.body_done = event.status == http::BodyStatus::Done;
            break;
        }
    } else {
        call->content_length = 0;
    }
    call->body_complete = app.body_done;
    if (!app.body_done && head.expect_continue) {
        writeInterim(http::kContinueResponse);
    }
    call->deliver = [weak = weak_from_this(), executor = socket_.get_executor()](AppOutput output) {
        boost::asio::post(executor, [weak, output = std::move(output)]() mutable {
            if (auto self = weak.lock()) {
                self->onAppOutput(std::move(output));
            }
        });
    };
    app.call = call;
    // While the app works no client timeout applies but the body's; the
    // application's limits.timeout is watched by the main thread.
    armTimer(app.body_done ? std::chrono::seconds(86400) : snapshot_->http.body_read_timeout);
    engine_.submitApplication(std::move(call));
    if (!app.body_done) {
        app.body_waiting = false;
        readAppBody();
    } else {
        watchClientLeaving();
    }
}

// While an application works on a request whose body is all read, nothing
// reads the client's socket: a client that left would go unnoticed until
// the answer is written to it, and an application waiting for events (a
// long poll, ASGI's http.disconnect) would wait for nothing. So the socket
// is watched: end of stream or an error means the client left, as nginx
// takes it (the call is cancelled and the application is told); bytes are
// the next pipelined request, read after this answer, and end the watch.
void HttpConnection::watchClientLeaving() {
    if (!app_) {
        return;
    }
    AppRequest& app = *app_;
    // A WebSocket's frames have their own reader; bytes already read past
    // this request are the next one's.
    if (!app.body_done || app.watching_client || app.ended || !app.websocket_key.empty() ||
        end_ > app.consumed_end || !app.leftover.empty()) {
        return;
    }
    app.watching_client = true;
    waitReadable(
        [self = shared_from_this(), serial = app.serial](const boost::system::error_code& ec) {
            if (!self->app_ || self->app_->serial != serial) {
                return;  // that request is over; the connection went on
            }
            self->app_->watching_client = false;
            if (!ec) {
                self->checkClientLeft();
            }
        });
}

void HttpConnection::checkClientLeft() {
    AppRequest& app = *app_;
    if (app.ended) {
        return;
    }
    // Peeked through TLS too: a close_notify is the client leaving, not
    // the bytes of a next request.
    char byte = 0;
    boost::system::error_code ec;
    if (peekSome(&byte, 1, ec) > 0) {
        return;
    }
    if (ec == boost::asio::error::would_block) {
        watchClientLeaving();
        return;
    }
    log::info("client {} left before application \"{}\" finished its answer", remote_.text(),
              app.call->app);
    close();
}

// Reads at once rather than waiting: bytes that arrived while the app was
// busy gave their readiness edge to nobody (Asio's async_wait never tries
// first), so only a read finds them.
void HttpConnection::readAppBody() {
    if (!app_ || app_->body_done || app_->body_refused || app_->body_waiting) {
        return;
    }
    armTimer(snapshot_->http.body_read_timeout);
    readAppBodyAvailable();
}

void HttpConnection::waitAppBody() {
    waitReadable([self = shared_from_this()](const boost::system::error_code& ec) {
        if (ec) {
            self->close();
            return;
        }
        self->readAppBodyAvailable();
    });
}

void HttpConnection::readAppBodyAvailable() {
    if (!app_) {
        return;
    }
    AppRequest& app = *app_;
    // One buffer per thread: the bytes leave it at once (copied into the
    // chunk below), and a buffer per request cost an allocation, 64 KiB
    // of zeroing and fresh pages on every request with a body.
    thread_local const std::unique_ptr<char[]> body_buffer =
        std::make_unique_for_overwrite<char[]>(kBodyReadSize);
    size_t want = kBodyReadSize;
    if (app.content_length) {
        want = static_cast<size_t>(std::min<uint64_t>(want, app.body_remaining));
    }
    boost::system::error_code ec;
    size_t length = readSome(body_buffer.get(), want, ec);
    if (ec == boost::asio::error::would_block || ec == boost::asio::error::try_again) {
        waitAppBody();
        return;
    }
    if (ec) {
        log::info("client {} closed the connection while sending a request body", remote_.text());
        close();
        return;
    }
    std::string chunk;
    if (app.content_length) {
        chunk.assign(body_buffer.get(), length);
        app.body_remaining -= length;
        app.body_done = app.body_remaining == 0;
    } else {
        std::string_view input(body_buffer.get(), length);
        while (true) {
            auto event = chunked_->decode(input);
            input.remove_prefix(event.consumed);
            if (event.status == http::BodyStatus::Error) {
                app.call->cancel();
                auto finished = std::move(app_);
                fail(event.error_status, event.reason);
                return;
            }
            if (event.status == http::BodyStatus::Data) {
                chunk.append(event.data);
                continue;
            }
            if (event.status == http::BodyStatus::Done) {
                app.body_done = true;
                app.leftover.assign(input);
            }
            break;
        }
    }
    app.body_waiting = true;
    app.call->sendBody(std::move(chunk), app.body_done);
    if (app.body_done && !app.writing) {
        armTimer(std::chrono::seconds(86400));
    }
    watchClientLeaving();
}

void HttpConnection::answerAppError(int status) {
    AppRequest& app = *app_;
    status_ = status;
    response_.clear();
    bool http10 = parser_ && parser_->head().http10();
    bool keep = keep_alive_ && app.body_done;
    keep_alive_ = http::appendErrorResponse(response_, status, snapshot_->server, keep, http10,
                                            head_request_);
    app.head_sent = true;
    app.ended = true;
    app.chunked_response = false;
    app.bytes_sent = head_request_ ? 0 : http::errorPage(status).size();
    app.sent_fields.emplace_back("Content-Type", "text/html");
    app.writing = true;
    armTimer(snapshot_->http.send_timeout);
    writeAll(boost::asio::buffer(response_),
             [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
                 if (ec || !self->app_) {
                     self->close();
                     return;
                 }
                 self->app_->writing = false;
                 self->finishApplication();
             });
}

void HttpConnection::onAppOutput(AppOutput output) {
    if (!app_ || phase_ == Phase::Closed) {
        return;
    }
    AppRequest& app = *app_;
    if (output.body_refused) {
        app.body_refused = true;
        app.body_waiting = false;
    }
    if (output.body_wanted) {
        app.body_waiting = false;
        readAppBody();
    }
    if (app.ended) {
        return;
    }
    if (output.error_status != 0 && !app.head_sent) {
        log::error("application \"{}\" failed a request from {} with {}", app.call->app,
                   remote_.text(), output.error_status);
        app.queue.clear();
        if (app.writing) {
            close();
            return;
        }
        answerAppError(output.error_status);
        return;
    }
    if (output.broken) {
        log::error("application \"{}\" broke off a response to {}", app.call->app, remote_.text());
        bool has_bytes = output.head || !output.pieces.empty() || !output.copied_body.empty();
        if (app.upgraded || (!has_bytes && !app.writing)) {
            close();
            return;
        }
        // What the app sent before it broke off goes out first (the client
        // sees the body end there, not at a random earlier point); the
        // connection is cut once it is written.
        app.broken = true;
        if (has_bytes) {
            app.queue.push_back(std::move(output));
        }
        if (!app.writing) {
            writeAppOutput();
        }
        return;
    }
    if (app.upgraded) {
        if (output.frames_wanted) {
            app.frames_waiting = false;
            readFrames();
        }
        std::string encoded;
        for (const auto& frame : output.frames) {
            // No extension was negotiated: RSV bits from the app are dropped.
            uint8_t first = frame.first & static_cast<uint8_t>(~http::kWebSocketRsvMask);
            http::appendWebSocketFrame(encoded, first, frame.payload);
            if ((first & http::kWebSocketOpcodeMask) == http::kWebSocketClose) {
                app.closing = true;
            }
        }
        if (output.end && !app.closing) {
            http::appendWebSocketClose(encoded, http::kWebSocketCloseNormal);
            app.closing = true;
        }
        queueFrames(encoded);
        return;
    }
    if (!output.head && output.pieces.empty() && output.copied_body.empty() && !output.end) {
        return;
    }
    app.queue.push_back(std::move(output));
    if (!app.writing) {
        writeAppOutput();
    }
}

void HttpConnection::writeAppOutput() {
    AppRequest& app = *app_;
    if (app.queue.empty()) {
        return;
    }
    AppOutput output = std::move(app.queue.front());
    app.queue.pop_front();
    response_.clear();
    if (output.head && output.head->upgrade && !app.websocket_key.empty()) {
        const gateway::ResponseHead& answer = *output.head;
        status_ = 101;
        std::vector<http::HeaderField> fields;
        for (const auto& [name, value] : answer.fields) {
            fields.push_back({name, value});
            app.sent_fields.emplace_back(name, value);
        }
        http::appendWebSocketAccept(response_, http::webSocketAcceptValue(app.websocket_key),
                                    snapshot_->server, fields);
        app.head_sent = true;
        app.upgraded = true;
        keep_alive_ = false;
        http::WebSocketDecoderOptions options;
        options.max_frame_payload = 16 * 1024 * 1024;
        app.frames_in = std::make_unique<http::WebSocketDecoder>(options);
        std::string encoded;
        for (const auto& frame : output.frames) {
            http::appendWebSocketFrame(encoded,
                                       frame.first & static_cast<uint8_t>(~http::kWebSocketRsvMask),
                                       frame.payload);
        }
        queueFrames(response_ + encoded);
        response_.clear();
        // Bytes the client sent after its handshake are its first frames.
        size_t extra = end_ - app.consumed_end;
        if (extra > 0) {
            app.frame_buffer.assign(buffer_.begin() + static_cast<ptrdiff_t>(app.consumed_end),
                                    buffer_.begin() + static_cast<ptrdiff_t>(end_));
            app.frame_buffered = extra;
            end_ = app.consumed_end;
        }
        readFramesAvailable();
        return;
    }
    if (output.head) {
        const auto& head = parser_->head();
        const gateway::ResponseHead& answer = *output.head;
        status_ = answer.status;
        std::optional<uint64_t> announced;
        std::vector<http::HeaderField> fields;
        std::string server = snapshot_->server;
        for (const auto& [name, value] : answer.fields) {
            if (equalsIgnoringCase(name, "Content-Length")) {
                announced = parseLength(value);
                continue;
            }
            if (equalsIgnoringCase(name, "Server")) {
                server = value;
                continue;
            }
            if (hopByHop(name)) {
                continue;
            }
            fields.push_back({name, value});
            app.sent_fields.emplace_back(name, value);
        }
        http::ResponseHead response;
        response.status = answer.status;
        bool bodyless = answer.status < 200 || answer.status == 204 || answer.status == 304;
        app.send_body = !bodyless && !head_request_;
        uint64_t copied = output.copied_body.size();
        if (bodyless) {
            response.framing = http::ResponseFraming::NoBody;
        } else if (announced) {
            response.framing = http::ResponseFraming::ContentLength;
            response.content_length = *announced;
        } else if (output.end && output.pieces.empty()) {
            response.framing = http::ResponseFraming::ContentLength;
            response.content_length = copied;
        } else if (head_request_) {
            response.framing = http::ResponseFraming::NoBody;
        } else {
            response.framing = http::ResponseFraming::Chunked;
        }
        response.keep_alive = keep_alive_;
        response.http10_client = head.http10();
        response.server = server;
        response.fields = fields;
        keep_alive_ = http::appendResponseHead(response_, response) && keep_alive_;
        app.chunked_response = response.framing == http::ResponseFraming::Chunked && !head.http10();
        app.head_sent = true;
    }
    if (app.send_body && !output.copied_body.empty()) {
        if (app.chunked_response) {
            http::appendChunk(response_, output.copied_body);
        } else {
            response_ += output.copied_body;
        }
        app.bytes_sent += output.copied_body.size();
    }
    auto pieces = std::make_shared<std::vector<gateway::BodyPiece>>(std::move(output.pieces));
    if (!app.send_body) {
        size_t count = pieces->size();
        pieces->clear();
        if (count > 0) {
            app.call->released(count);
        }
    }
    app.writing = true;
    armTimer(snapshot_->http.send_timeout);
    writeAppPieces(std::move(pieces), 0, output.end);
}

void HttpConnection::writeAppPieces(std::shared_ptr<std::vector<gateway::BodyPiece>> pieces,
                                    size_t index, bool end) {
    AppRequest& app = *app_;
    // Gather the head (in response_) and the data pieces up to the next file.
    auto chunk_headers = std::make_shared<std::vector<http::ChunkHeader>>();
    std::vector<boost::asio::const_buffer> buffers;
    if (!response_.empty()) {
        buffers.emplace_back(boost::asio::buffer(response_));
    }
    size_t next = index;
    // One more: the header of a file piece's chunk, written with the pieces
    // before it. (Reserved: the buffers point into the headers.)
    chunk_headers->reserve(pieces->size() - index + 1);
    for (; next < pieces->size() && !(*pieces)[next].isFile(); ++next) {
        const auto& piece = (*pieces)[next];
        if (piece.data.empty()) {
            continue;
        }
        if (app.chunked_response) {
            chunk_headers->push_back(http::chunkHeader(piece.data.size()));
            buffers.emplace_back(boost::asio::buffer(chunk_headers->back().view()));
        }
        buffers.emplace_back(boost::asio::buffer(piece.data.data(), piece.data.size()));
        if (app.chunked_response) {
            buffers.emplace_back(boost::asio::buffer("\r\n", 2));
        }
        app.bytes_sent += piece.data.size();
    }
    bool at_end = next == pieces->size();
    if (!at_end && app.chunked_response && (*pieces)[next].file_length > 0) {
        chunk_headers->push_back(
            http::chunkHeader(static_cast<size_t>((*pieces)[next].file_length)));
        buffers.emplace_back(boost::asio::buffer(chunk_headers->back().view()));
    }
    if (at_end && end && app.chunked_response) {
        buffers.emplace_back(boost::asio::buffer(http::kLastChunk));
    }
    auto after = [self = shared_from_this(), pieces, next, end, at_end, chunk_headers](
                     const boost::system::error_code& ec, size_t) {
        if (ec || !self->app_) {
            self->close();
            return;
        }
        self->response_.clear();
        if (!at_end) {
            self->sendAppFile(pieces, next, 0, end);
            return;
        }
        self->appWritten(pieces->size(), end);
    };
    if (buffers.empty()) {
        after({}, 0);
        return;
    }
    writeAll(buffers, std::move(after));
}

void HttpConnection::sendAppFile(std::shared_ptr<std::vector<gateway::BodyPiece>> pieces,
                                 size_t index, uint64_t done, bool end) {
    AppRequest& app = *app_;
    const auto& piece = (*pieces)[index];
    while (done < piece.file_length) {
        boost::system::error_code ec;
        size_t sent =
            sendFile(piece.file_fd, piece.file_offset + done, piece.file_length - done, ec);
        if (ec == boost::asio::error::would_block) {
            waitWritable([self = shared_from_this(), pieces, index, done,
                          end](const boost::system::error_code& error) {
                if (error || !self->app_) {
                    self->close();
                    return;
                }
                self->sendAppFile(pieces, index, done, end);
            });
            return;
        }
        if (ec) {
            // The file is shorter than the app announced, or unreadable.
            log::error("application \"{}\": a file it sent could not be read to the end",
                       app.call->app);
            close();
            return;
        }
        done += sent;
        app.bytes_sent += sent;
    }
    if (app.chunked_response && piece.file_length > 0) {
        response_ = "\r\n";
    }
    writeAppPieces(std::move(pieces), index + 1, end);
}

void HttpConnection::appWritten(size_t pieces, bool end) {
    AppRequest& app = *app_;
    app.writing = false;
    if (pieces > 0) {
        app.call->released(pieces);
    }
    if (end) {
        app.ended = true;
        finishApplication();
        return;
    }
    if (!app.queue.empty()) {
        writeAppOutput();
        return;
    }
    if (app.broken) {
        close();
        return;
    }
    armTimer(app.body_done ? std::chrono::seconds(86400) : snapshot_->http.body_read_timeout);
}

void HttpConnection::recordAnswer(routing::RequestView& view, int status, uint64_t body_bytes,
                                  const std::vector<std::pair<std::string, std::string>>& fields) {
    if (!snapshot_->access_log) {
        return;
    }
    std::vector<routing::Header> sent;
    sent.reserve(fields.size());
    for (const auto& [name, value] : fields) {
        sent.push_back({name, value});
    }
    view.response.status = status;
    view.response.body_bytes_sent = body_bytes;
    view.response.headers = sent;
    view.end_time = std::chrono::steady_clock::now();
    snapshot_->access_log->record(view);
    view.response.headers = {};  // they point into `sent`
}

void HttpConnection::finishApplication() {
    std::unique_ptr<AppRequest> app = std::move(app_);
    recordAnswer(app->view, status_, app->bytes_sent, app->sent_fields);
    if (!keep_alive_ || !app->body_done) {
        // Unread body bytes would be taken for the next request.
        shutdownSend();
        close();
        return;
    }
    chunked_.reset();
    // Drop this request's bytes; keep what a pipelining client sent after it.
    begin_ = app->consumed_end;
    head_size_ = 0;
    if (!app->leftover.empty()) {
        if (buffer_.size() - end_ < app->leftover.size()) {
            buffer_.resize(end_ + app->leftover.size());
        }
        std::copy(app->leftover.begin(), app->leftover.end(),
                  buffer_.begin() + static_cast<ptrdiff_t>(end_));
        end_ += app->leftover.size();
    }
    // The client may have sent its next request while the answer's end was
    // on its way here: read, do not only wait (see readAppBody()).
    waitForRequest(/*data_may_be_waiting=*/true);
}

void HttpConnection::queueFrames(std::string_view encoded) {
    AppRequest& app = *app_;
    app.frames_out.append(encoded);
    if (!app.writing) {
        writeFrames();
    }
}

void HttpConnection::writeFrames() {
    AppRequest& app = *app_;
    if (app.frames_out.empty()) {
        if (app.closing) {
            app.ended = true;
            finishApplication();
        }
        return;
    }
    app.writing = true;
    app.frames_writing.swap(app.frames_out);
    app.frames_out.clear();
    writeAll(boost::asio::buffer(app.frames_writing),
             [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
                 if (ec || !self->app_) {
                     self->close();
                     return;
                 }
                 self->app_->writing = false;
                 self->app_->frames_writing.clear();
                 self->writeFrames();
             });
}

void HttpConnection::readFrames() {
    readFramesAvailable();  // not a wait: see readAppBody()
}

void HttpConnection::waitFrames() {
    if (!app_ || app_->frames_waiting || app_->closing) {
        return;
    }
    waitReadable([self = shared_from_this()](const boost::system::error_code& ec) {
        if (ec) {
            self->close();
            return;
        }
        self->readFramesAvailable();
    });
}

void HttpConnection::readFramesAvailable() {
    if (!app_ || app_->frames_waiting || app_->closing) {
        return;
    }
    AppRequest& app = *app_;
    constexpr size_t kFrameReadSize = 64 * 1024;
    if (app.frame_buffer.size() < app.frame_buffered + kFrameReadSize) {
        app.frame_buffer.resize(app.frame_buffered + kFrameReadSize);
    }
    boost::system::error_code ec;
    size_t length = readSome(app.frame_buffer.data() + app.frame_buffered, kFrameReadSize, ec);
    if (ec == boost::asio::error::would_block || ec == boost::asio::error::try_again) {
        length = 0;
        if (app.frame_buffered == 0) {
            waitFrames();
            return;
        }
    } else if (ec) {
        close();  // the client went away without a Close
        return;
    }
    size_t available = app.frame_buffered + length;
    size_t used = 0;
    bool forwarded = false;
    std::string pongs;
    while (used < available) {
        auto event = app.frames_in->decode(
            std::span<char>(app.frame_buffer.data() + used, available - used));
        used += event.consumed;
        if (event.status == http::WebSocketStatus::NeedMore) {
            break;
        }
        if (event.status == http::WebSocketStatus::Error) {
            log::info("WebSocket protocol error from {}: {}", remote_.text(), event.reason);
            std::string close_frame;
            http::appendWebSocketClose(close_frame, event.close_code);
            app.closing = true;
            app.call->sendFrame(http::kWebSocketFin | http::kWebSocketClose,
                                std::string(close_frame.data() + 2, close_frame.size() - 2));
            queueFrames(close_frame);
            return;
        }
        uint8_t opcode = event.opcode();
        if (opcode == http::kWebSocketPing) {
            // Answered here: the app never waits on a client's keep-alive.
            http::appendWebSocketFrame(pongs, http::kWebSocketFin | http::kWebSocketPong,
                                       event.payload);
            continue;
        }
        if (opcode == http::kWebSocketPong) {
            continue;
        }
        app.call->sendFrame(event.first, std::string(event.payload));
        forwarded = true;
        if (opcode == http::kWebSocketClose) {
            break;  // the app answers with its Close
        }
    }
    std::copy(app.frame_buffer.begin() + static_cast<ptrdiff_t>(used),
              app.frame_buffer.begin() + static_cast<ptrdiff_t>(available),
              app.frame_buffer.begin());
    app.frame_buffered = available - used;
    if (!pongs.empty()) {
        queueFrames(pongs);
    }
    if (forwarded) {
        app.frames_waiting = true;  // more once the app took these
        return;
    }
    if (length == 0) {
        waitFrames();
        return;
    }
    readFrames();
}

}  // namespace canopy
