#pragma once

// Everything a process's own side may use: its kind, what main handed it,
// its port to main, the ports of its peers and an event loop that serves
// them. Lives in the child only.

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/port/port.h"
#include "core/process/process_kind.h"
#include "core/process/runtime_settings.h"

namespace canopy {

class ChildContext {
  public:
    ChildContext(const ProcessKind& kind, const RuntimeSettings& settings, Port main_port,
                 std::string data, std::vector<int> inherited_fds);
    ~ChildContext();
    ChildContext(const ChildContext&) = delete;
    ChildContext& operator=(const ChildContext&) = delete;

    const ProcessKind& kind() const { return kind_; }
    const RuntimeSettings& settings() const { return settings_; }
    const std::string& data() const { return data_; }
    const std::vector<int>& inheritedFds() const { return inherited_fds_; }
    boost::asio::io_context& io() { return io_; }
    Port& mainPort() { return main_watch_->port; }

    // The port of a peer kind main announced, or nullptr.
    Port* peer(std::string_view kind_name);
    // The port named "main" or a peer's kind, or nullptr.
    Port* port(std::string_view name);

    // Sends a request to "main" or a peer and calls `done` once with its
    // Reply (same stream), or with an error when the port closes or
    // `timeout` passes first. `done` runs on the event loop. Errors of the
    // exchange itself carry an errno (ENOTCONN, EPIPE, ETIMEDOUT), so a
    // caller can tell "the peer went away" from what the peer answered.
    // `fds` travel with the request (duplicated; the caller keeps its own).
    using ReplyHandler = std::function<void(Result<Message>)>;
    void request(std::string_view to, MessageType type, std::string_view payload,
                 std::chrono::milliseconds timeout, ReplyHandler done,
                 std::span<const int> fds = {});
    // Answers a request received from `to` on its stream.
    void reply(std::string_view to, uint32_t stream, std::string_view payload);
    std::vector<std::string> peerNames() const;

    // Serves the main port, the peer ports and signals until stop(); returns
    // the exit code given to stop().
    int run();
    void stop(int exit_code);

    // A graceful stop was asked for (QUIT from main, SIGQUIT). Calls the
    // handler set here, or stop(0) when there is none.
    void setQuitHandler(std::function<void()> handler) { quit_handler_ = std::move(handler); }
    void quit();

    // Called when main connected a peer (at start, or after the peer was
    // restarted).
    void setPeerConnectedHandler(std::function<void(std::string_view kind_name)> handler) {
        peer_connected_handler_ = std::move(handler);
    }

    // Called when a peer's port closes (the peer exited).
    void setPeerLostHandler(std::function<void(std::string_view kind_name)> handler) {
        peer_lost_handler_ = std::move(handler);
    }

  private:
    struct Watched {
        std::string name;  // "main" or the peer's kind
        Port port;
        std::unique_ptr<boost::asio::posix::stream_descriptor> readiness;
    };

    void watch(Watched& watched);
    void drain(Watched& watched);
    void dispatch(Watched& from, Message& message);
    void forget(const std::string& name);
    void failPending(const std::string& name, const std::string& reason);
    void completePending(uint32_t stream, Result<Message> outcome);

    void watchSignals();
    void waitForSignal();
    void handleSignal(int signal_number);

    const ProcessKind& kind_;
    const RuntimeSettings& settings_;
    boost::asio::io_context io_;
    std::string data_;
    std::vector<int> inherited_fds_;
    std::map<std::string, std::unique_ptr<Watched>, std::less<>> peers_;
    std::unique_ptr<Watched> main_watch_;
    std::unique_ptr<boost::asio::posix::stream_descriptor> signal_watch_;
    std::function<void()> quit_handler_;
    std::function<void(std::string_view)> peer_lost_handler_;
    std::function<void(std::string_view)> peer_connected_handler_;
    int exit_code_ = 0;
    // After io_: the timers must go before the event loop they belong to.
    struct Pending {
        std::string to;
        ReplyHandler done;
        std::unique_ptr<boost::asio::steady_timer> timer;
    };
    std::map<uint32_t, Pending> pending_;
    uint32_t next_stream_ = 1;
};

}  // namespace canopy
