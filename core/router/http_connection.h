#pragma once

// One client connection on a worker thread: reads requests (pipelined and
// kept alive), routes each through the snapshot current at its arrival,
// answers, and enforces the timeouts and limits of settings.http. On a TLS
// listener the handshake comes first; afterwards every byte to and from the
// client passes through the client I/O helpers below, which are the only
// code that knows whether the connection is TLS.

#include <boost/asio/buffer.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/http/chunked_decoder.h"
#include "core/http/request_parser.h"
#include "core/http/websocket.h"
#include "core/router/app_call.h"
#include "core/router/router_snapshot.h"
#include "core/router/static_files.h"
#include "core/router/upstream_pool.h"
#include "core/router/upstreams.h"
#include "core/routing/address.h"
#include "core/routing/request_view.h"
#include "core/tls/server_context.h"

namespace canopy {

class RouterEngine;
struct ProxyRequest;  // http_connection_proxy.cpp

// Where a proxied request goes: a server of an `upstreams` group, or the
// one address of a `proxy` action.
struct ProxyDestination {
    std::shared_ptr<UpstreamGroup> group;
    SocketAddress address;  // without a group
};

class HttpConnection : public std::enable_shared_from_this<HttpConnection> {
  public:
    using Socket = boost::asio::generic::stream_protocol::socket;

    HttpConnection(Socket socket, std::string listener, RouterEngine& engine);
    ~HttpConnection();
    void start();

  private:
    enum class Phase { Handshake, Idle, Head, Body, Sending, App, Proxy, Closed };
    using WriteHandler = std::function<void(const boost::system::error_code&, size_t)>;

    // A request passed to an application: what the access log and the next
    // request need once its answer is written (the head's bytes stay in
    // buffer_ until then).
    struct AppRequest {
        std::shared_ptr<AppCall> call;
        // Nothing else may hold the connection while the app works: this
        // reference does until the answer ends or the connection closes.
        std::shared_ptr<HttpConnection> self;
        routing::RequestView view;
        std::vector<routing::Header> headers;
        std::string host;
        size_t consumed_end = 0;  // end of this request's bytes in buffer_
        std::string leftover;     // bytes read past a chunked body: the next request
        bool content_length = false;
        uint64_t body_remaining = 0;
        bool body_done = true;      // every body byte was read from the client
        bool body_waiting = false;  // sent to the app, not yet taken
        bool body_refused = false;
        bool head_sent = false;
        bool chunked_response = false;
        bool send_body = true;
        bool writing = false;
        bool ended = false;
        bool broken = false;  // the app broke off: close once the queue is written
        std::deque<AppOutput> queue;
        uint64_t bytes_sent = 0;
        std::vector<std::pair<std::string, std::string>> sent_fields;
        // WebSocket: the client's key until the app accepts, then frames.
        std::string websocket_key;
        bool upgraded = false;
        std::unique_ptr<http::WebSocketDecoder> frames_in;
        std::vector<char> frame_buffer;
        size_t frame_buffered = 0;
        bool frames_waiting = false;  // sent to the app, not yet taken
        std::string frames_out;       // encoded, waiting for the socket
        std::string frames_writing;
        bool closing = false;  // a Close went out: end after the write
        // The client socket is watched for the client leaving (the body is
        // read and nothing follows it yet).
        bool watching_client = false;
        uint64_t serial = 0;  // app_serial_ when this request started
    };

    // ---- client I/O: plain TCP or TLS; nothing else touches socket_'s bytes ----

    // Reads what is available now: would_block when nothing is, eof at the
    // end of the client's stream, another error when the connection broke.
    size_t readSome(char* data, size_t size, boost::system::error_code& ec);
    // Like readSome(), but the bytes stay to be read (decrypted ones with
    // TLS: a close_notify counts as the end, not as bytes).
    size_t peekSome(char* data, size_t size, boost::system::error_code& ec);
    // A TLS read's or peek's result in readSome()'s terms (connection_aborted
    // for a failure).
    size_t tlsReadOutcome(const tls::IoResult& result, boost::system::error_code& ec);
    // Writes what fits now (would_block when nothing does). `more`: more
    // bytes follow at once (MSG_MORE on plain TCP).
    size_t writeSome(const char* data, size_t size, boost::system::error_code& ec,
                     bool more = false);
    // Writes up to `count` bytes of `file` from `offset` without reading it
    // into memory when plain (sendfile); through a bounded buffer when TLS.
    // would_block when nothing fits now, eof when the file ended early.
    size_t sendFile(int file, uint64_t offset, uint64_t count, boost::system::error_code& ec);
    // Run `handler` when readSome() / writeSome() can make progress (with
    // TLS that may need the other direction, or nothing: decrypted bytes
    // already buffered).
    template <typename Handler>
    void waitReadable(Handler&& handler);
    template <typename Handler>
    void waitWritable(Handler&& handler);
    // Writes all of `buffers` (which stay valid until `handler` runs), then
    // calls handler(error, bytes) on this connection's thread, never inline.
    template <typename Buffers, typename Handler>
    void writeAll(const Buffers& buffers, Handler&& handler);
    // Ends the sending direction (close_notify first with TLS).
    void shutdownSend();
    // A short interim answer (100 Continue) written now, without waiting:
    // what does not fit is dropped on plain TCP, and with TLS goes out
    // before the next write (OpenSSL must be offered stalled bytes again).
    void writeInterim(std::string_view text);

    void startHandshake();
    void continueHandshake();
    void writeAllTls(std::shared_ptr<std::vector<boost::asio::const_buffer>> buffers, size_t index,
                     size_t offset, size_t total, WriteHandler handler);
    size_t writeTls(const char* data, size_t size, boost::system::error_code& ec);

    void waitForRequest(bool data_may_be_waiting = false);
    void readMore();
    void readAvailable();
    void beginHead();
    void onData(size_t length);
    void parseHead();
    void startRequest();
    void consumeBody();
    void dropConsumed();
    void respond();
    void send(bool close_after);
    void sendFileBody(bool close_after);
    void sent(bool close_after);
    void finishRequest();
    void fail(int status, const char* reason);
    void close();
    void armTimer(std::chrono::seconds timeout);
    void waitForDeadline();
    void setIdle(bool idle);

    void startApplication(routing::RequestView& request, std::vector<routing::Header>& headers,
                          const std::string& host, const std::string& application,
                          const std::string& app_target);
    void readAppBody();
    void waitAppBody();
    void watchClientLeaving();
    void checkClientLeft();
    void readAppBodyAvailable();
    void onAppOutput(AppOutput output);
    void writeAppOutput();
    void writeAppPieces(std::shared_ptr<std::vector<gateway::BodyPiece>> pieces, size_t index,
                        bool end);
    void sendAppFile(std::shared_ptr<std::vector<gateway::BodyPiece>> pieces, size_t index,
                     uint64_t done, bool end);
    void appWritten(size_t pieces, bool end);
    void finishApplication();
    // The access-log line of an answer that went out with `fields` (an app's
    // or an upstream's), when the configuration logs; `view` is the request.
    void recordAnswer(routing::RequestView& view, int status, uint64_t body_bytes,
                      const std::vector<std::pair<std::string, std::string>>& fields);
    void answerAppError(int status);
    void readFrames();
    void waitFrames();

    // The proxy path (http_connection_proxy.cpp).
    void startProxy(routing::RequestView& request, std::vector<routing::Header>& headers,
                    const std::string& host, ProxyDestination destination,
                    const routing::Action* action, bool rewritten);
    void proxyConnect();
    void proxyConnected(std::shared_ptr<ProxyRequest> proxy,
                        std::shared_ptr<UpstreamConnection> upstream);
    void proxyConnectFailed(std::shared_ptr<ProxyRequest> proxy, const std::string& reason,
                            bool timed_out);
    bool proxyRetry(ProxyRequest& proxy);
    void proxyReadClientBody();
    void proxyWriteUpstreamBody();
    void proxyReadUpstream();
    void proxyUpstreamData();
    void proxyUpstreamClosed(const boost::system::error_code& ec);
    void proxyStartResponse(size_t head_size);
    void proxyForwardBody();
    void proxyFinish();
    void proxyFail(int status);
    void proxyArmUpstreamTimer();
    void proxyWaitUpstreamDeadline();
    void proxyUpstreamTimedOut();
    void proxyClientTimedOut();
    void proxyStartTunnel(size_t head_size);
    void proxyTunnelFromClient();
    void proxyTunnelFromUpstream();
    void abortProxy();

    void readFramesAvailable();
    void queueFrames(std::string_view encoded);
    void writeFrames();

    Socket socket_;
    boost::asio::steady_timer timer_;
    std::string listener_;
    RouterEngine& engine_;
    std::shared_ptr<const RouterSnapshot> snapshot_;
    routing::Address remote_;
    routing::Address local_;

    std::vector<char> buffer_;
    size_t begin_ = 0;  // first byte of the current request
    size_t end_ = 0;    // end of the data read
    size_t head_size_ = 0;
    // Allocated while a request is read; an idle connection holds neither.
    std::unique_ptr<http::RequestParser> parser_;
    Phase phase_ = Phase::Idle;
    // Counts the requests handed to applications on this connection, so a
    // wait armed for one never acts on the next.
    uint64_t app_serial_ = 0;
    bool idle_counted_ = false;

    uint64_t body_remaining_ = 0;
    std::unique_ptr<http::ChunkedDecoder> chunked_;
    bool head_request_ = false;
    bool keep_alive_ = true;
    int status_ = 0;
    std::string response_;
    std::chrono::steady_clock::time_point deadline_;
    bool timer_waiting_ = false;
    std::unique_ptr<AppRequest> app_;
    std::shared_ptr<ProxyRequest> proxy_;
    // A static file's bytes, sent after response_ (null when none), and how
    // far: the part, the bytes of its text, the bytes of its file slice.
    std::unique_ptr<FileBody> file_body_;
    size_t file_part_ = 0;
    size_t file_text_done_ = 0;
    uint64_t file_done_ = 0;

    // TLS (null on a plain listener). The context stays alive as long as
    // the session: a reconfiguration does not end a connection's TLS.
    std::shared_ptr<const tls::ServerContext> tls_context_;
    std::unique_ptr<tls::Session> tls_;
    // The direction the session waits for when reading / writing stalled:
    // TLS may need to write to go on reading, and the other way round.
    bool tls_read_wants_write_ = false;
    bool tls_write_wants_read_ = false;
    // An interim answer not yet taken by SSL_write: written before anything else.
    std::string tls_backlog_;
    // A file's bytes (static, or an app's file piece) read for SSL_write and
    // not yet taken by it (after a stall OpenSSL wants the same bytes
    // again): which file, from which offset.
    std::string tls_file_buffer_;
    int tls_file_ = -1;
    uint64_t tls_file_offset_ = 0;
};

template <typename Handler>
void HttpConnection::waitReadable(Handler&& handler) {
    if (tls_ && tls_->hasBufferedInput()) {
        boost::asio::post(socket_.get_executor(),
                          [handler = std::forward<Handler>(handler)]() mutable {
                              handler(boost::system::error_code());
                          });
        return;
    }
    socket_.async_wait(tls_ && tls_read_wants_write_ ? Socket::wait_write : Socket::wait_read,
                       std::forward<Handler>(handler));
}

template <typename Handler>
void HttpConnection::waitWritable(Handler&& handler) {
    socket_.async_wait(tls_ && tls_write_wants_read_ ? Socket::wait_read : Socket::wait_write,
                       std::forward<Handler>(handler));
}

template <typename Buffers, typename Handler>
void HttpConnection::writeAll(const Buffers& buffers, Handler&& handler) {
    if (!tls_) {
        boost::asio::async_write(socket_, buffers, std::forward<Handler>(handler));
        return;
    }
    auto list = std::make_shared<std::vector<boost::asio::const_buffer>>(
        boost::asio::buffer_sequence_begin(buffers), boost::asio::buffer_sequence_end(buffers));
    writeAllTls(std::move(list), 0, 0, 0, WriteHandler(std::forward<Handler>(handler)));
}

}  // namespace canopy
