#pragma once

// One request handed to an application, seen from both of the router's
// threads that take part: the connection's worker thread, which owns the
// client socket, and the router's main thread, which drives the
// application's channel (core/gateway is single-threaded per channel). The
// two sides never share mutable state: each posts to the other's executor.
//
//   connection thread                       main thread
//   submit(call) ───────────────────────────▶ Applications::submit: Exchange
//   sendBody(bytes) ────────────────────────▶ writeBody as credit allows
//                  ◀──────── AppOutput ────── head, pieces, end, failure,
//                                             body_wanted, frames
//   released(n) ────────────────────────────▶ releasePiece ×n (credit back)
//   cancel() ───────────────────────────────▶ abort (the client left)
//
// Body pieces point into the application's shared memory (or name a file
// the exchange owns) and stay valid until the connection says released():
// the connection writes them to the client without copying.

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/gateway/application_channel.h"
#include "core/gateway/exchange.h"

namespace canopy {

class ApplicationPool;

// What the main thread tells the connection, in order.
struct AppOutput {
    std::optional<gateway::ResponseHead> head;
    std::vector<gateway::BodyPiece> pieces;  // answer with released(pieces.size())
    // Small complete bodies are copied, so the exchange ends at once.
    std::string copied_body;
    bool end = false;           // the response is complete
    int error_status = 0;       // failed before a head: answer this status
    bool broken = false;        // failed after the head: close the connection
    bool body_wanted = false;   // every body byte sent so far was taken
    bool body_refused = false;  // the app stopped reading the body
    std::vector<gateway::WebSocketFrame> frames;
    bool frames_wanted = false;  // every frame sent so far was taken
};

class AppCall : public std::enable_shared_from_this<AppCall> {
  public:
    using Deliver = std::function<void(AppOutput)>;

    // ---- filled on the connection's thread before submission, then fixed ----
    std::string app;
    std::string method;
    std::string target;
    std::string path;
    std::string query;
    std::string version;
    std::string remote;
    std::string local_address;
    uint16_t local_port = 0;
    std::string server_name;
    std::string app_target;  // the application target the route passed to, or empty
    bool tls = false;  // https for the app: a TLS listener, or `forwarded.protocol`
    std::vector<std::pair<std::string, std::string>> headers;
    uint64_t content_length = UINT64_MAX;
    bool body_complete = true;
    bool websocket = false;
    std::string preread;  // the body's first bytes (all of it when body_complete)
    // Runs `output` on the connection's thread (the connection binds it to
    // its executor and a weak reference to itself).
    Deliver deliver;

    // ---- from the connection's thread: post to the main thread ----
    void sendBody(std::string bytes, bool last);
    void released(size_t pieces);
    void sendFrame(uint8_t first, std::string payload);
    void cancel();

    // ---- main thread only ----
    void start(ApplicationPool& pool, std::unique_ptr<gateway::Exchange> exchange);
    void pump();
    // limits.timeout passed before the head: 503, and the worker holding it
    // is replaced.
    void timeOut();
    void failUnavailable(int status);
    bool finished() const { return finished_; }
    bool headRead() const { return head_read_; }
    std::chrono::steady_clock::time_point submitted() const { return submitted_; }
    gateway::Exchange* exchange() { return exchange_.get(); }

    boost::asio::any_io_executor main_executor;

  private:
    void finish();
    void post(std::function<void(AppCall&)> work);

    ApplicationPool* pool_ = nullptr;
    std::unique_ptr<gateway::Exchange> exchange_;
    std::chrono::steady_clock::time_point submitted_ = std::chrono::steady_clock::now();
    std::deque<std::string> body_;
    size_t body_offset_ = 0;
    bool body_last_ = false;
    bool body_finished_ = false;
    bool body_ack_owed_ = false;
    bool head_read_ = false;
    bool upgraded_ = false;
    size_t pieces_out_ = 0;  // delivered, not released
    bool end_seen_ = false;
    bool failed_ = false;
    bool finished_ = false;
    std::deque<std::pair<uint8_t, std::string>> frames_;
    bool frame_ack_owed_ = false;
};

}  // namespace canopy
