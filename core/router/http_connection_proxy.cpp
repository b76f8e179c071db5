// The part of HttpConnection that passes a request to an upstream HTTP/1.1
// server (`proxy`, `pass: "upstreams/NAME"`): the request head rewritten
// (proxy_message.h), the body streamed to the upstream as the client sends
// it, the answer streamed back as the client takes it, one buffer in flight
// each way, and WebSocket bytes pumped both ways after a 101. Upstream
// connections come from and go back to the worker's pool (upstream_pool.h).
//
// Timeouts: connecting and each write to the upstream get
// settings.http.send_timeout, each wait for the upstream's answer
// settings.http.body_read_timeout; expiry before the answer began is 504.
// A refused or broken upstream is 502. Both are logged with the address.

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <cstring>

#include "core/base/log.h"
#include "core/http/chunked_decoder.h"
#include "core/http/response.h"
#include "core/http/response_parser.h"
#include "core/router/http_connection.h"
#include "core/router/proxy_message.h"
#include "core/router/router_engine.h"

namespace canopy {
namespace {

// One buffer each way; an upstream's head must fit in one.
constexpr size_t kProxyBufferSize = 64 * 1024;
constexpr std::chrono::seconds kNoTimeout{86400};

bool equalsIgnoringCase(std::string_view left, std::string_view right) {
    if (left.size() != right.size()) {
        return false;
    }
    for (size_t index = 0; index < left.size(); ++index) {
        char a = left[index];
        char b = right[index];
        a = (a >= 'A' && a <= 'Z') ? static_cast<char>(a - 'A' + 'a') : a;
        b = (b >= 'A' && b <= 'Z') ? static_cast<char>(b - 'A' + 'a') : b;
        if (a != b) {
            return false;
        }
    }
    return true;
}

// Per worker thread: the answer buffers of finished proxied requests, for
// the next ones (allocating and clearing 64 KiB per request shows in the
// figures). Bounded, so a burst leaves little behind.
constexpr size_t kSpareBufferLimit = 64;
thread_local std::vector<std::unique_ptr<char[]>> spare_proxy_buffers;

// A kProxyBufferSize buffer, uninitialized, returned to the thread's spares.
class ProxyBuffer {
  public:
    ProxyBuffer() = default;
    ProxyBuffer(const ProxyBuffer&) = delete;
    ProxyBuffer& operator=(const ProxyBuffer&) = delete;
    ~ProxyBuffer() {
        if (bytes_ && spare_proxy_buffers.size() < kSpareBufferLimit) {
            spare_proxy_buffers.push_back(std::move(bytes_));
        }
    }
    char* data() {
        if (!bytes_) {
            if (spare_proxy_buffers.empty()) {
                bytes_ = std::make_unique_for_overwrite<char[]>(kProxyBufferSize);
            } else {
                bytes_ = std::move(spare_proxy_buffers.back());
                spare_proxy_buffers.pop_back();
            }
        }
        return bytes_.get();
    }
    static constexpr size_t size() { return kProxyBufferSize; }

  private:
    std::unique_ptr<char[]> bytes_;
};

bool idempotentMethod(http::Method method) {
    return method == http::Method::Get || method == http::Method::Head ||
           method == http::Method::Put || method == http::Method::Delete ||
           method == http::Method::Options || method == http::Method::Trace;
}

}  // namespace

// One proxied request. Shared with the handlers of its operations, which
// check that it is still the connection's current one.
struct ProxyRequest {
    explicit ProxyRequest(const boost::asio::any_io_executor& executor) : timer(executor) {}

    ProxyDestination destination;
    const routing::Action* action = nullptr;  // for response_headers; lives in snapshot_
    routing::RequestView view;
    std::vector<routing::Header> headers;
    std::string host;
    bool head_request = false;
    bool websocket = false;

    // The request as the upstream gets it: the head and the body bytes that
    // came with it, kept until the upstream took them (for one retry).
    std::string request_start;
    bool retryable = false;  // idempotent, and request_start is the whole request

    std::vector<size_t> tried;  // servers of the group that failed this request
    std::optional<size_t> server;
    std::string address;  // of the server in use, for the logs
    std::shared_ptr<UpstreamConnection> upstream;
    bool reused = false;   // taken from the pool
    bool retried = false;  // already sent again on a fresh connection
    // The upstream's deadline: one wait stays outstanding and, when it
    // fires early, waits again for the current deadline (moving it costs
    // no cancellation); time_point::max() when the upstream is not the one
    // to act.
    boost::asio::steady_timer timer;
    std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
    bool timer_waiting = false;

    // The client's body.
    bool body_chunked = false;
    uint64_t body_remaining = 0;
    bool body_done = true;
    size_t consumed_end = 0;  // end of this request's bytes in buffer_
    std::string leftover;     // bytes read past a chunked body: the next request
    std::unique_ptr<http::ChunkedDecoder> body_decoder;
    std::vector<char> body_buffer;
    std::string body_out;  // encoded for the upstream, being written
    bool body_writing = false;
    bool body_failed = false;  // the upstream stopped taking the body
    bool expect_continue = false;

    // The upstream's answer.
    ProxyBuffer in;
    size_t in_begin = 0;
    size_t in_end = 0;
    bool answered = false;  // a byte came from the upstream
    http::ResponseParser parser;
    bool head_sent = false;  // a head (or an error) went to the client
    http::ResponseBodyFraming framing = http::ResponseBodyFraming::None;
    uint64_t remaining = 0;
    http::ChunkedDecoder chunks;
    bool chunked_to_client = false;
    bool send_body = true;
    bool response_done = false;
    bool reusable = true;  // the upstream connection may carry another request
    std::string out_head;
    std::vector<http::ChunkHeader> chunk_headers;
    uint64_t bytes_sent = 0;
    std::vector<std::pair<std::string, std::string>> sent_fields;

    // WebSocket tunnel.
    bool tunnel = false;
    std::vector<char> tunnel_buffer;  // client → upstream
};

void HttpConnection::startProxy(routing::RequestView& request,
                                std::vector<routing::Header>& headers, const std::string& host,
                                ProxyDestination destination, const routing::Action* action,
                                bool rewritten) {
    const auto& head = parser_->head();
    auto proxy = std::make_shared<ProxyRequest>(socket_.get_executor());
    proxy_ = proxy;
    phase_ = Phase::Proxy;
    proxy->destination = std::move(destination);
    proxy->action = action;
    proxy->host = host;
    proxy->headers = std::move(headers);
    request.host = proxy->host;
    request.headers = proxy->headers;
    proxy->view = std::move(request);
    proxy->head_request = head_request_;
    proxy->websocket = head.websocket;

    // The body bytes that came with the head.
    size_t body_begin = begin_ + head_size_;
    std::string_view available(buffer_.data() + body_begin, end_ - body_begin);
    proxy->consumed_end = body_begin;
    std::string body_start;
    UpstreamBodyFraming framing = UpstreamBodyFraming::None;
    if (head.hasBody() && head.framing == http::BodyFraming::ContentLength) {
        framing = UpstreamBodyFraming::ContentLength;
        size_t take =
            static_cast<size_t>(std::min<uint64_t>(head.content_length, available.size()));
        body_start.assign(available.substr(0, take));
        proxy->consumed_end += take;
        proxy->body_remaining = head.content_length - take;
        proxy->body_done = proxy->body_remaining == 0;
    } else if (head.hasBody()) {
        // Decoded here (the router checks the framing, so no smuggling
        // passes) and encoded again for the upstream.
        framing = UpstreamBodyFraming::Chunked;
        proxy->body_chunked = true;
        http::ChunkedDecoderOptions options;
        options.max_body_size = snapshot_->http.max_body_size;
        proxy->body_decoder = std::make_unique<http::ChunkedDecoder>(options);
        proxy->body_done = false;
        while (true) {
            auto event = proxy->body_decoder->decode(available);
            available.remove_prefix(event.consumed);
            proxy->consumed_end += event.consumed;
            if (event.status == http::BodyStatus::Error) {
                proxy_.reset();
                fail(event.error_status, event.reason);
                return;
            }
            if (event.status == http::BodyStatus::Data) {
                http::appendChunk(body_start, event.data);
                continue;
            }
            if (event.status == http::BodyStatus::Done) {
                body_start += http::kLastChunk;
                proxy->body_done = true;
            }
            break;
        }
    }
    proxy->expect_continue = !proxy->body_done && head.expect_continue;

    std::vector<routing::Address> forwarded_for;
    auto listener = snapshot_->listeners.find(listener_);
    if (listener != snapshot_->listeners.end() && listener->second.forwarded) {
        forwarded_for = listener->second.forwarded->vouchedChain(proxy->headers, remote_);
    }
    forwarded_for.push_back(remote_);
    std::string target = rewritten ? rewrittenTarget(proxy->view.path(), head.query, head.has_query)
                                   : std::string(head.target);
    UpstreamRequest upstream_request;
    upstream_request.method = head.method_text;
    upstream_request.target = target;
    upstream_request.fields = head.fields;
    // Only an HTTP/1.0 client may leave Host out; HTTP/1.1 needs one.
    std::string host_fallback = "localhost";
    if (!proxy->destination.group && !proxy->destination.address.isUnix()) {
        host_fallback = proxy->destination.address.text;
    }
    upstream_request.host_fallback = host_fallback;
    upstream_request.forwarded_for = forwarded_for;
    upstream_request.framing = framing;
    upstream_request.content_length = head.content_length;
    upstream_request.websocket = head.websocket;
    appendUpstreamRequestHead(proxy->request_start, upstream_request);
    proxy->request_start += body_start;
    proxy->retryable = idempotentMethod(head.method) && proxy->body_done && !head.websocket;

    // The client waits for the upstream now; its own timeouts apply again
    // when the router reads its body or writes to it.
    armTimer(kNoTimeout);
    proxyConnect();
}

void HttpConnection::proxyConnect() {
    ProxyRequest& proxy = *proxy_;
    const SocketAddress* address = &proxy.destination.address;
    if (proxy.destination.group) {
        proxy.server = proxy.destination.group->pick(proxy.tried, UpstreamGroup::Clock::now());
        if (!proxy.server) {
            log::error("upstream \"{}\": no server is available for a request from {}",
                       proxy.destination.group->name(), remote_.text());
            proxyFail(502);
            return;
        }
        address = &proxy.destination.group->address(*proxy.server);
    }
    proxy.address = address->text;
    if (!proxy.retried) {
        if (auto pooled = UpstreamPool::forThisThread().take(proxy.address)) {
            proxy.reused = true;
            proxyConnected(proxy_, std::move(pooled));
            return;
        }
    }
    proxy.reused = false;
    connectUpstream(
        socket_.get_executor(), *address, snapshot_->http.send_timeout,
        [self = shared_from_this(), request = proxy_](std::shared_ptr<UpstreamConnection> upstream,
                                                      std::string error, bool timed_out) {
            if (self->proxy_ != request) {
                if (upstream) {
                    boost::system::error_code ignored;
                    upstream->socket.close(ignored);
                }
                return;
            }
            if (!upstream) {
                self->proxyConnectFailed(request, error, timed_out);
                return;
            }
            self->proxyConnected(request, std::move(upstream));
        });
}

void HttpConnection::proxyConnectFailed(std::shared_ptr<ProxyRequest> request,
                                        const std::string& reason, bool timed_out) {
    ProxyRequest& proxy = *request;
    log::error("proxy: connecting to upstream {} failed: {}", proxy.address, reason);
    if (proxy.destination.group && proxy.server) {
        // Another server may take it: nothing was sent yet.
        proxy.destination.group->failed(*proxy.server, UpstreamGroup::Clock::now());
        proxy.tried.push_back(*proxy.server);
        if (proxy.tried.size() < proxy.destination.group->size()) {
            proxyConnect();
            return;
        }
    }
    proxyFail(timed_out ? 504 : 502);
}

void HttpConnection::proxyConnected(std::shared_ptr<ProxyRequest> request,
                                    std::shared_ptr<UpstreamConnection> upstream) {
    ProxyRequest& proxy = *request;
    proxy.upstream = std::move(upstream);
    proxy.body_writing = true;
    proxyArmUpstreamTimer();
    boost::asio::async_write(
        proxy.upstream->socket, boost::asio::buffer(proxy.request_start),
        [self = shared_from_this(), request, upstream = proxy.upstream](
            const boost::system::error_code& ec, size_t) {
            if (self->proxy_ != request || request->upstream != upstream) {
                return;
            }
            ProxyRequest& current = *request;
            current.body_writing = false;
            if (ec) {
                // A pooled connection the server closed meanwhile: the read
                // below sees it too and decides (retry or 502).
                current.body_failed = true;
                current.reusable = false;
                return;
            }
            if (current.body_done) {
                self->proxyArmUpstreamTimer();
                return;
            }
            if (current.expect_continue && !current.head_sent) {  // not inside an answer
                current.expect_continue = false;
                self->writeInterim(http::kContinueResponse);
            }
            self->proxyReadClientBody();
        });
    proxyReadUpstream();
}

bool HttpConnection::proxyRetry(ProxyRequest& proxy) {
    // A pooled connection the server had closed before this request reached
    // it: send again once on a fresh connection when that is safe.
    if (!proxy.reused || proxy.retried || proxy.answered || !proxy.retryable) {
        return false;
    }
    log::debug("proxy: a kept-alive connection to {} was closed; trying a new one", proxy.address);
    boost::system::error_code ignored;
    proxy.upstream->socket.close(ignored);
    proxy.upstream.reset();
    proxy.retried = true;
    proxy.reusable = true;
    proxy.body_failed = false;
    proxy.in_begin = proxy.in_end = 0;
    proxy.parser.reset();
    proxy.deadline = std::chrono::steady_clock::time_point::max();
    // Reconnect to the same address (no new pick: the request already has a
    // server and must not count twice in the round-robin).
    const SocketAddress& address = proxy.destination.group
                                       ? proxy.destination.group->address(*proxy.server)
                                       : proxy.destination.address;
    connectUpstream(
        socket_.get_executor(), address, snapshot_->http.send_timeout,
        [self = shared_from_this(), request = proxy_](std::shared_ptr<UpstreamConnection> upstream,
                                                      std::string error, bool timed_out) {
            if (self->proxy_ != request) {
                return;
            }
            if (!upstream) {
                self->proxyConnectFailed(request, error, timed_out);
                return;
            }
            self->proxyConnected(request, std::move(upstream));
        });
    return true;
}

void HttpConnection::proxyArmUpstreamTimer() {
    ProxyRequest& proxy = *proxy_;
    // Only while the upstream is the one to act: writing to it, or waiting
    // for its answer once the whole request is there. While the client is
    // slow the client's timeouts apply.
    std::optional<std::chrono::seconds> timeout;
    if (proxy.response_done || proxy.tunnel) {
        timeout = std::nullopt;
    } else if (proxy.body_writing) {
        timeout = snapshot_->http.send_timeout;
    } else if (proxy.body_done || proxy.body_failed || proxy.head_sent) {
        timeout = snapshot_->http.body_read_timeout;
    }
    if (!timeout) {
        proxy.deadline = std::chrono::steady_clock::time_point::max();
        return;
    }
    proxy.deadline = std::chrono::steady_clock::now() + *timeout;
    if (proxy.timer_waiting && proxy.timer.expiry() <= proxy.deadline) {
        return;
    }
    proxyWaitUpstreamDeadline();
}

void HttpConnection::proxyWaitUpstreamDeadline() {
    ProxyRequest& proxy = *proxy_;
    proxy.timer_waiting = true;
    proxy.timer.expires_at(proxy.deadline);
    proxy.timer.async_wait(
        [self = shared_from_this(), request = proxy_](const boost::system::error_code& ec) {
            if (self->proxy_ != request) {
                return;
            }
            request->timer_waiting = false;
            if (ec || request->deadline == std::chrono::steady_clock::time_point::max()) {
                return;
            }
            if (std::chrono::steady_clock::now() < request->deadline) {
                self->proxyWaitUpstreamDeadline();  // moved meanwhile
                return;
            }
            self->proxyUpstreamTimedOut();
        });
}

void HttpConnection::proxyUpstreamTimedOut() {
    ProxyRequest& proxy = *proxy_;
    log::error("proxy: upstream {} timed out {}", proxy.address,
               proxy.head_sent ? "while sending its answer" : "before answering");
    if (proxy.destination.group && proxy.server) {
        proxy.destination.group->failed(*proxy.server, UpstreamGroup::Clock::now());
    }
    proxyFail(504);
}

void HttpConnection::proxyReadClientBody() {
    ProxyRequest& proxy = *proxy_;
    if (proxy.body_done || proxy.body_writing || proxy.body_failed || proxy.response_done) {
        return;
    }
    if (proxy.body_buffer.empty()) {
        proxy.body_buffer.resize(kProxyBufferSize);
    }
    size_t want = proxy.body_buffer.size();
    if (!proxy.body_chunked) {
        want = static_cast<size_t>(std::min<uint64_t>(want, proxy.body_remaining));
    }
    boost::system::error_code ec;
    size_t length = readSome(proxy.body_buffer.data(), want, ec);
    if (ec == boost::asio::error::would_block || ec == boost::asio::error::try_again) {
        armTimer(snapshot_->http.body_read_timeout);
        waitReadable(
            [self = shared_from_this(), request = proxy_](const boost::system::error_code& error) {
                if (self->proxy_ != request) {
                    return;
                }
                if (error) {
                    self->close();
                    return;
                }
                self->proxyReadClientBody();
            });
        return;
    }
    if (ec) {
        log::info("client {} closed the connection while sending a body to {}", remote_.text(),
                  proxy.address);
        close();
        return;
    }
    proxy.body_out.clear();
    if (!proxy.body_chunked) {
        proxy.body_out.assign(proxy.body_buffer.data(), length);
        proxy.body_remaining -= length;
        proxy.body_done = proxy.body_remaining == 0;
    } else {
        std::string_view input(proxy.body_buffer.data(), length);
        while (true) {
            auto event = proxy.body_decoder->decode(input);
            input.remove_prefix(event.consumed);
            if (event.status == http::BodyStatus::Error) {
                log::info("invalid chunked body from {}: {}", remote_.text(), event.reason);
                abortProxy();
                fail(event.error_status, event.reason);
                return;
            }
            if (event.status == http::BodyStatus::Data) {
                http::appendChunk(proxy.body_out, event.data);
                continue;
            }
            if (event.status == http::BodyStatus::Done) {
                proxy.body_out += http::kLastChunk;
                proxy.body_done = true;
                proxy.leftover.assign(input);
            }
            break;
        }
    }
    if (proxy.body_out.empty()) {
        proxyReadClientBody();
        return;
    }
    proxyWriteUpstreamBody();
}

void HttpConnection::proxyWriteUpstreamBody() {
    ProxyRequest& proxy = *proxy_;
    proxy.body_writing = true;
    armTimer(kNoTimeout);
    proxyArmUpstreamTimer();
    boost::asio::async_write(
        proxy.upstream->socket, boost::asio::buffer(proxy.body_out),
        [self = shared_from_this(), request = proxy_, upstream = proxy.upstream](
            const boost::system::error_code& ec, size_t) {
            if (self->proxy_ != request || request->upstream != upstream) {
                return;
            }
            ProxyRequest& current = *request;
            current.body_writing = false;
            if (ec) {
                // The upstream stopped reading (it may have answered
                // already): the answer, or its absence, decides.
                current.body_failed = true;
                current.reusable = false;
                self->proxyArmUpstreamTimer();
                return;
            }
            self->proxyArmUpstreamTimer();
            if (!current.body_done) {
                self->proxyReadClientBody();
            }
        });
}

void HttpConnection::proxyReadUpstream() {
    ProxyRequest& proxy = *proxy_;
    if (proxy.in_begin == proxy.in_end) {
        proxy.in_begin = proxy.in_end = 0;
    }
    if (proxy.in_end == proxy.in.size()) {
        // Bodies are passed on as they come: only a head fills the buffer.
        log::error("proxy: upstream {} sent a response head larger than {} bytes", proxy.address,
                   kProxyBufferSize);
        proxyFail(502);
        return;
    }
    proxyArmUpstreamTimer();
    proxy.upstream->socket.async_read_some(
        boost::asio::buffer(proxy.in.data() + proxy.in_end, proxy.in.size() - proxy.in_end),
        [self = shared_from_this(), request = proxy_, upstream = proxy.upstream](
            const boost::system::error_code& ec, size_t length) {
            if (self->proxy_ != request || request->upstream != upstream) {
                return;
            }
            if (ec) {
                self->proxyUpstreamClosed(ec);
                return;
            }
            request->in_end += length;
            request->answered = true;
            self->proxyUpstreamData();
        });
}

void HttpConnection::proxyUpstreamClosed(const boost::system::error_code& ec) {
    ProxyRequest& proxy = *proxy_;
    proxy.reusable = false;
    if (!proxy.answered && proxyRetry(proxy)) {
        return;
    }
    bool eof = ec == boost::asio::error::eof;
    if (proxy.head_sent && proxy.framing == http::ResponseBodyFraming::UntilClose && eof) {
        proxy.response_done = true;  // the body ended with the connection
        proxyForwardBody();
        return;
    }
    if (!proxy.head_sent) {
        log::error("proxy: upstream {} {} before a complete response head", proxy.address,
                   eof ? "closed the connection" : ec.message());
        // A kept-alive connection closed before answering says the server
        // ended an idle connection, not that it is down.
        bool stale = proxy.reused && !proxy.answered;
        if (proxy.destination.group && proxy.server && !stale) {
            proxy.destination.group->failed(*proxy.server, UpstreamGroup::Clock::now());
        }
        proxyFail(502);
        return;
    }
    log::error("proxy: upstream {} broke off a response to {}: {}", proxy.address, remote_.text(),
               eof ? "connection closed" : ec.message());
    close();  // the client sees the answer end short
}

void HttpConnection::proxyUpstreamData() {
    ProxyRequest& proxy = *proxy_;
    if (proxy.head_sent) {
        proxyForwardBody();
        return;
    }
    while (true) {
        std::string_view pending(proxy.in.data() + proxy.in_begin, proxy.in_end - proxy.in_begin);
        auto result = proxy.parser.parse(pending, proxy.head_request);
        if (result.status == http::ResponseParseStatus::NeedMore) {
            if (proxy.in_begin > 0) {
                // Keep the head at the start so the buffer grows only for it.
                std::memmove(proxy.in.data(), proxy.in.data() + proxy.in_begin,
                             proxy.in_end - proxy.in_begin);
                proxy.in_end -= proxy.in_begin;
                proxy.in_begin = 0;
            }
            proxyReadUpstream();
            return;
        }
        if (result.status == http::ResponseParseStatus::Error) {
            log::error("proxy: upstream {}: {}", proxy.address, result.reason);
            proxy.reusable = false;
            proxyFail(502);
            return;
        }
        const auto& head = proxy.parser.head();
        if (head.status == 101) {
            if (!proxy.websocket) {
                log::error(
                    "proxy: upstream {} switched protocols for a request that did not "
                    "ask to",
                    proxy.address);
                proxy.reusable = false;
                proxyFail(502);
                return;
            }
            proxyStartTunnel(result.consumed);
            return;
        }
        if (head.interim()) {
            // 100 Continue (the router answered the client's itself), 103:
            // not passed on.
            proxy.in_begin += result.consumed;
            proxy.parser.reset();
            continue;
        }
        proxyStartResponse(result.consumed);
        return;
    }
}

void HttpConnection::proxyStartResponse(size_t head_size) {
    ProxyRequest& proxy = *proxy_;
    const auto& upstream_head = proxy.parser.head();
    const auto& head = parser_->head();
    status_ = upstream_head.status;
    // The upstream's fields as views into the answer buffer (copied into
    // the head below); copied only when response_headers must edit them.
    std::vector<http::HeaderField> views;
    views.reserve(upstream_head.fields.size());
    for (const auto& field : upstream_head.fields) {
        if (!droppedResponseField(field.name, upstream_head.connection_tokens)) {
            views.push_back(field);
        }
    }
    std::vector<routing::HeaderField> edited;
    if (proxy.action != nullptr && !proxy.action->response_headers.empty()) {
        std::vector<routing::Header> visible;
        visible.reserve(views.size());
        edited.reserve(views.size());
        for (const auto& field : views) {
            visible.push_back({field.name, field.value});
            edited.push_back({std::string(field.name), std::string(field.value)});
        }
        proxy.view.response.status = status_;
        proxy.view.response.headers = visible;
        routing::applyResponseHeaders(*proxy.action, proxy.view, status_, edited);
        proxy.view.response.headers = {};
        views.clear();
        for (const auto& field : edited) {
            views.push_back({field.name, field.value});
        }
    }
    if (snapshot_->access_log) {
        for (const auto& field : views) {
            proxy.sent_fields.emplace_back(field.name, field.value);
        }
    }
    proxy.framing = upstream_head.framing;
    proxy.remaining = upstream_head.content_length;
    http::ResponseHead response;
    response.status = upstream_head.status;
    bool bodyless_status =
        response.status < 200 || response.status == 204 || response.status == 304;
    proxy.send_body = !proxy.head_request && !bodyless_status;
    if (bodyless_status) {
        response.framing = http::ResponseFraming::NoBody;
    } else if (proxy.head_request) {
        // The upstream's length describes the body a GET would get.
        const http::HeaderField* length = upstream_head.find("Content-Length");
        response.framing = length != nullptr ? http::ResponseFraming::ContentLength
                                             : http::ResponseFraming::NoBody;
        response.content_length = upstream_head.content_length;
    } else if (proxy.framing == http::ResponseBodyFraming::ContentLength) {
        response.framing = http::ResponseFraming::ContentLength;
        response.content_length = upstream_head.content_length;
    } else {
        response.framing = http::ResponseFraming::Chunked;
    }
    response.keep_alive = keep_alive_;
    response.http10_client = head.http10();
    response.server = snapshot_->server;
    response.fields = views;
    proxy.out_head.clear();
    keep_alive_ = http::appendResponseHead(proxy.out_head, response) && keep_alive_;
    proxy.chunked_to_client = response.framing == http::ResponseFraming::Chunked && !head.http10();
    proxy.head_sent = true;
    proxy.in_begin += head_size;
    proxyForwardBody();
}

void HttpConnection::proxyForwardBody() {
    ProxyRequest& proxy = *proxy_;
    // The body bytes in the buffer, as views (written before the buffer is
    // read into again).
    std::vector<std::string_view> pieces;
    std::string_view pending(proxy.in.data() + proxy.in_begin, proxy.in_end - proxy.in_begin);
    switch (proxy.framing) {
        case http::ResponseBodyFraming::None:
            proxy.response_done = true;
            break;
        case http::ResponseBodyFraming::ContentLength: {
            auto take = static_cast<size_t>(std::min<uint64_t>(proxy.remaining, pending.size()));
            if (take > 0) {
                pieces.push_back(pending.substr(0, take));
            }
            proxy.remaining -= take;
            pending.remove_prefix(take);
            proxy.response_done = proxy.remaining == 0;
            break;
        }
        case http::ResponseBodyFraming::Chunked:
            while (!proxy.response_done) {
                auto event = proxy.chunks.decode(pending);
                pending.remove_prefix(event.consumed);
                if (event.status == http::BodyStatus::Data) {
                    pieces.push_back(event.data);
                    continue;
                }
                if (event.status == http::BodyStatus::Error) {
                    log::error("proxy: upstream {} sent a broken chunked body: {}", proxy.address,
                               event.reason);
                    proxy.reusable = false;
                    close();
                    return;
                }
                proxy.response_done = event.status == http::BodyStatus::Done;
                break;
            }
            break;
        case http::ResponseBodyFraming::UntilClose:
            if (!pending.empty()) {
                pieces.push_back(pending);
            }
            pending = {};
            break;
    }
    if (proxy.response_done && !pending.empty()) {
        proxy.reusable = false;  // bytes after the answer: nobody asked for them
    }
    proxy.in_begin = proxy.in_end;

    std::vector<boost::asio::const_buffer> buffers;
    if (!proxy.out_head.empty()) {
        buffers.emplace_back(boost::asio::buffer(proxy.out_head));
    }
    proxy.chunk_headers.clear();
    proxy.chunk_headers.reserve(pieces.size());
    if (proxy.send_body) {
        for (std::string_view piece : pieces) {
            if (proxy.chunked_to_client) {
                proxy.chunk_headers.push_back(http::chunkHeader(piece.size()));
                buffers.emplace_back(boost::asio::buffer(proxy.chunk_headers.back().view()));
            }
            buffers.emplace_back(boost::asio::buffer(piece.data(), piece.size()));
            if (proxy.chunked_to_client) {
                buffers.emplace_back(boost::asio::buffer("\r\n", 2));
            }
            proxy.bytes_sent += piece.size();
        }
        if (proxy.response_done && proxy.chunked_to_client) {
            buffers.emplace_back(boost::asio::buffer(http::kLastChunk));
        }
    }
    if (buffers.empty()) {
        if (proxy.response_done) {
            proxyFinish();
        } else {
            proxyReadUpstream();
        }
        return;
    }
    proxy.deadline = std::chrono::steady_clock::time_point::max();  // the client's turn
    armTimer(snapshot_->http.send_timeout);
    writeAll(buffers, [self = shared_from_this(), request = proxy_](
                          const boost::system::error_code& ec, size_t) {
        if (self->proxy_ != request) {
            return;
        }
        if (ec) {
            self->close();
            return;
        }
        request->out_head.clear();
        self->armTimer(kNoTimeout);
        if (request->response_done) {
            self->proxyFinish();
            return;
        }
        self->proxyReadUpstream();
    });
}

void HttpConnection::proxyFinish() {
    std::shared_ptr<ProxyRequest> proxy = std::move(proxy_);
    proxy->timer.cancel();
    if (proxy->upstream) {
        bool reuse = proxy->reusable && proxy->parser.head().keep_alive && proxy->body_done &&
                     !proxy->body_writing && !proxy->body_failed &&
                     proxy->framing != http::ResponseBodyFraming::UntilClose && !proxy->tunnel;
        if (reuse) {
            UpstreamPool::forThisThread().give(std::move(proxy->upstream));
        } else {
            boost::system::error_code ignored;
            proxy->upstream->socket.close(ignored);
            proxy->upstream.reset();
        }
    }
    recordAnswer(proxy->view, status_, proxy->bytes_sent, proxy->sent_fields);
    if (!keep_alive_ || !proxy->body_done) {
        // Unread body bytes would be taken for the next request.
        shutdownSend();
        close();
        return;
    }
    // Drop this request's bytes; keep what a pipelining client sent after it.
    begin_ = proxy->consumed_end;
    head_size_ = 0;
    if (!proxy->leftover.empty()) {
        if (buffer_.size() - end_ < proxy->leftover.size()) {
            buffer_.resize(end_ + proxy->leftover.size());
        }
        std::copy(proxy->leftover.begin(), proxy->leftover.end(),
                  buffer_.begin() + static_cast<ptrdiff_t>(end_));
        end_ += proxy->leftover.size();
    }
    waitForRequest(/*data_may_be_waiting=*/true);
}

void HttpConnection::proxyFail(int status) {
    ProxyRequest& proxy = *proxy_;
    proxy.reusable = false;
    if (proxy.head_sent) {
        close();  // part of an answer went out: only closing tells the client
        return;
    }
    if (proxy.upstream) {
        boost::system::error_code ignored;
        proxy.upstream->socket.close(ignored);
        proxy.upstream.reset();
    }
    proxy.deadline = std::chrono::steady_clock::time_point::max();
    status_ = status;
    proxy.out_head.clear();
    bool http10 = parser_->head().http10();
    keep_alive_ =
        http::appendErrorResponse(proxy.out_head, status, snapshot_->server,
                                  keep_alive_ && proxy.body_done, http10, proxy.head_request);
    proxy.head_sent = true;
    proxy.framing = http::ResponseBodyFraming::None;
    proxy.send_body = false;
    proxy.bytes_sent = proxy.head_request ? 0 : http::errorPage(status).size();
    proxy.sent_fields.emplace_back("Content-Type", "text/html");
    proxy.in_begin = proxy.in_end = 0;
    proxyForwardBody();
}

void HttpConnection::proxyClientTimedOut() {
    ProxyRequest& proxy = *proxy_;
    if (!proxy.head_sent && !proxy.body_done) {
        log::info("client {} stopped sending a request body for {}", remote_.text(), proxy.address);
        abortProxy();
        fail(408, "request body timed out");
        return;
    }
    close();  // the client stopped reading the answer (or the tunnel went quiet)
}

void HttpConnection::abortProxy() {
    std::shared_ptr<ProxyRequest> proxy = std::move(proxy_);
    if (!proxy) {
        return;
    }
    proxy->timer.cancel();
    if (proxy->upstream) {
        boost::system::error_code ignored;
        proxy->upstream->socket.close(ignored);
        proxy->upstream.reset();
    }
}

// ---- WebSocket: after the upstream's 101, bytes both ways until one side
// closes; the frames are the two ends' business.

void HttpConnection::proxyStartTunnel(size_t head_size) {
    ProxyRequest& proxy = *proxy_;
    const auto& upstream_head = proxy.parser.head();
    status_ = 101;
    keep_alive_ = false;
    proxy.tunnel = true;
    proxy.timer.cancel();
    std::vector<http::HeaderField> fields;
    std::string upgrade = "websocket";
    for (const auto& field : upstream_head.fields) {
        if (equalsIgnoringCase(field.name, "Upgrade")) {
            upgrade = std::string(field.value);
        } else if (!droppedResponseField(field.name, upstream_head.connection_tokens)) {
            fields.push_back(field);
        }
    }
    fields.push_back({"Connection", "upgrade"});
    fields.push_back({"Upgrade", upgrade});
    for (const auto& field : fields) {
        proxy.sent_fields.emplace_back(field.name, field.value);
    }
    http::ResponseHead response;
    response.status = 101;
    response.framing = http::ResponseFraming::NoBody;
    response.server = snapshot_->server;
    response.fields = fields;
    proxy.out_head.clear();
    http::appendResponseHead(proxy.out_head, response);
    proxy.in_begin += head_size;
    proxy.out_head.append(proxy.in.data() + proxy.in_begin, proxy.in_end - proxy.in_begin);
    proxy.in_begin = proxy.in_end = 0;
    recordAnswer(proxy.view, 101, proxy.view.response.body_bytes_sent, proxy.sent_fields);
    // Bytes the client sent after its handshake go first.
    proxy.tunnel_buffer.assign(buffer_.begin() + static_cast<ptrdiff_t>(proxy.consumed_end),
                               buffer_.begin() + static_cast<ptrdiff_t>(end_));
    end_ = proxy.consumed_end;
    armTimer(snapshot_->http.idle_timeout);
    writeAll(boost::asio::buffer(proxy.out_head), [self = shared_from_this(), request = proxy_](
                                                      const boost::system::error_code& ec, size_t) {
        if (self->proxy_ != request) {
            return;
        }
        if (ec) {
            self->close();
            return;
        }
        request->out_head.clear();
        self->proxyTunnelFromUpstream();
    });
    if (!proxy.tunnel_buffer.empty()) {
        size_t size = proxy.tunnel_buffer.size();
        boost::asio::async_write(proxy.upstream->socket,
                                 boost::asio::buffer(proxy.tunnel_buffer.data(), size),
                                 [self = shared_from_this(), request = proxy_](
                                     const boost::system::error_code& ec, size_t) {
                                     if (self->proxy_ != request) {
                                         return;
                                     }
                                     if (ec) {
                                         self->close();
                                         return;
                                     }
                                     self->proxyTunnelFromClient();
                                 });
        return;
    }
    proxyTunnelFromClient();
}

void HttpConnection::proxyTunnelFromClient() {
    ProxyRequest& proxy = *proxy_;
    proxy.tunnel_buffer.resize(kProxyBufferSize);
    boost::system::error_code ec;
    size_t length = readSome(proxy.tunnel_buffer.data(), proxy.tunnel_buffer.size(), ec);
    if (ec == boost::asio::error::would_block || ec == boost::asio::error::try_again) {
        waitReadable(
            [self = shared_from_this(), request = proxy_](const boost::system::error_code& error) {
                if (self->proxy_ != request) {
                    return;
                }
                if (error) {
                    self->close();
                    return;
                }
                self->proxyTunnelFromClient();
            });
        return;
    }
    if (ec) {
        close();  // the client left: the upstream connection ends with it
        return;
    }
    armTimer(snapshot_->http.idle_timeout);
    boost::asio::async_write(proxy.upstream->socket,
                             boost::asio::buffer(proxy.tunnel_buffer.data(), length),
                             [self = shared_from_this(), request = proxy_](
                                 const boost::system::error_code& error, size_t) {
                                 if (self->proxy_ != request) {
                                     return;
                                 }
                                 if (error) {
                                     self->close();
                                     return;
                                 }
                                 self->proxyTunnelFromClient();
                             });
}

void HttpConnection::proxyTunnelFromUpstream() {
    ProxyRequest& proxy = *proxy_;
    proxy.upstream->socket.async_read_some(
        boost::asio::buffer(proxy.in.data(), proxy.in.size()),
        [self = shared_from_this(), request = proxy_](const boost::system::error_code& ec,
                                                      size_t length) {
            if (self->proxy_ != request) {
                return;
            }
            if (ec) {
                // The upstream closed: what it sent is out; the client's
                // connection ends too.
                self->shutdownSend();
                self->close();
                return;
            }
            self->armTimer(self->snapshot_->http.idle_timeout);
            self->writeAll(boost::asio::buffer(request->in.data(), length),
                           [self, request](const boost::system::error_code& error, size_t) {
                               if (self->proxy_ != request) {
                                   return;
                               }
                               if (error) {
                                   self->close();
                                   return;
                               }
                               self->proxyTunnelFromUpstream();
                           });
        });
}

}  // namespace canopy
