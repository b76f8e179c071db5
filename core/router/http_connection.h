#pragma once

// One client connection on a worker thread: reads requests (pipelined and
// kept alive), routes each through the snapshot current at its arrival,
// answers, and enforces the timeouts and limits of settings.http.

#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <deque>
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
#include "core/routing/address.h"
#include "core/routing/request_view.h"

namespace canopy {

class RouterEngine;

class HttpConnection : public std::enable_shared_from_this<HttpConnection> {
  public:
    using Socket = boost::asio::generic::stream_protocol::socket;

    HttpConnection(Socket socket, std::string listener, RouterEngine& engine);
    ~HttpConnection();
    void start();

  private:
    enum class Phase { Idle, Head, Body, Sending, App, Closed };

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
        std::vector<char> body_buffer;
        bool head_sent = false;
        bool chunked_response = false;
        bool send_body = true;
        bool writing = false;
        bool ended = false;
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
    void answerAppError(int status);
    void readFrames();
    void waitFrames();
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
    // A static file's bytes, sent after response_ (null when none), and how
    // far: the part, the bytes of its text, the bytes of its file slice.
    std::unique_ptr<FileBody> file_body_;
    size_t file_part_ = 0;
    size_t file_text_done_ = 0;
    uint64_t file_done_ = 0;
};

}  // namespace canopy
