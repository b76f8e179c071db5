#include "core/process/child_context.h"

#include <fmt/format.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/post.hpp>
#include <csignal>
#include <cstring>

#include "core/base/log.h"

namespace canopy {
namespace {

constexpr std::array<int, 6> kWatchedSignals = {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2};

}  // namespace

ChildContext::ChildContext(const ProcessKind& kind, const RuntimeSettings& settings, Port main_port,
                           std::string data, std::vector<int> inherited_fds)
    : kind_(kind),
      settings_(settings),
      data_(std::move(data)),
      inherited_fds_(std::move(inherited_fds)),
      main_watch_(std::make_unique<Watched>(Watched{"main", std::move(main_port), nullptr})) {}

ChildContext::~ChildContext() = default;

Port* ChildContext::peer(std::string_view kind_name) {
    auto found = peers_.find(kind_name);
    return found == peers_.end() ? nullptr : &found->second->port;
}

Port* ChildContext::port(std::string_view name) {
    return name == "main" ? &main_watch_->port : peer(name);
}

void ChildContext::request(std::string_view to, MessageType type, std::string_view payload,
                           std::chrono::milliseconds timeout, ReplyHandler done,
                           std::span<const int> fds) {
    Port* target = port(to);
    if (target == nullptr) {
        boost::asio::post(io_, [done = std::move(done), to = std::string(to)] {
            done(Error{fmt::format("the {} process is not running", to), ENOTCONN});
        });
        return;
    }
    uint32_t stream = next_stream_++;
    if (next_stream_ == 0) {
        next_stream_ = 1;
    }
    if (auto sent = target->send(type, payload, fds, stream); !sent) {
        boost::asio::post(io_, [done = std::move(done), error = sent.error()] { done(error); });
        return;
    }
    auto timer = std::make_unique<boost::asio::steady_timer>(io_, timeout);
    timer->async_wait([this, stream, to = std::string(to)](const boost::system::error_code& ec) {
        if (!ec) {
            completePending(
                stream, Error{fmt::format("the {} process did not answer in time", to), ETIMEDOUT});
        }
    });
    pending_.emplace(stream, Pending{std::string(to), std::move(done), std::move(timer)});
}

void ChildContext::reply(std::string_view to, uint32_t stream, std::string_view payload) {
    Port* target = port(to);
    if (target == nullptr) {
        return;  // the asker is gone; nobody waits for this answer
    }
    if (auto sent = target->send(MessageType::Reply, payload, {}, stream); !sent) {
        log::warn("{} process: cannot answer {}: {}", kind_.name, to, sent.error().message);
    }
}

void ChildContext::completePending(uint32_t stream, Result<Message> outcome) {
    auto found = pending_.find(stream);
    if (found == pending_.end()) {
        return;  // answered after its time-out
    }
    ReplyHandler done = std::move(found->second.done);
    pending_.erase(found);
    done(std::move(outcome));
}

void ChildContext::failPending(const std::string& name, const std::string& reason) {
    std::vector<uint32_t> streams;
    for (const auto& [stream, pending] : pending_) {
        if (pending.to == name) {
            streams.push_back(stream);
        }
    }
    for (uint32_t stream : streams) {
        completePending(stream, Error{reason, EPIPE});
    }
}

std::vector<std::string> ChildContext::peerNames() const {
    std::vector<std::string> names;
    for (const auto& [name, watched] : peers_) {
        names.push_back(name);
    }
    return names;
}

int ChildContext::run() {
    ::signal(SIGPIPE, SIG_IGN);
    watchSignals();
    watch(*main_watch_);
    for (auto& [name, watched] : peers_) {
        watch(*watched);
    }
    io_.restart();
    io_.run();
    return exit_code_;
}

void ChildContext::stop(int exit_code) {
    exit_code_ = exit_code;
    io_.stop();
}

void ChildContext::quit() {
    if (quit_handler_) {
        quit_handler_();
    } else {
        stop(0);
    }
}

void ChildContext::watch(Watched& watched) {
    if (!watched.readiness) {
        watched.readiness =
            std::make_unique<boost::asio::posix::stream_descriptor>(io_, ::dup(watched.port.fd()));
    }
    watched.readiness->async_wait(boost::asio::posix::stream_descriptor::wait_read,
                                  [this, name = watched.name](const boost::system::error_code& ec) {
                                      if (ec) {
                                          return;
                                      }
                                      Watched* target =
                                          name == "main" ? main_watch_.get() : nullptr;
                                      if (target == nullptr) {
                                          auto found = peers_.find(name);
                                          if (found == peers_.end()) {
                                              return;
                                          }
                                          target = found->second.get();
                                      }
                                      drain(*target);
                                  });
}

void ChildContext::drain(Watched& watched) {
    std::string name = watched.name;  // `watched` may be forgotten while dispatching
    for (;;) {
        auto received = watched.port.receive();
        if (!received) {
            if (name == "main") {
                // Main is gone: nobody will restart or stop this process any more.
                log::notice("{} process: main process port closed ({}), exiting", kind_.name,
                            received.error().message);
                stop(0);
            } else {
                log::info("{} process: peer {} port closed", kind_.name, name);
                forget(name);
                if (peer_lost_handler_) {
                    peer_lost_handler_(name);
                }
            }
            return;
        }
        if (!received->has_value()) {
            break;
        }
        dispatch(watched, **received);
        if (name != "main" && !peers_.contains(name)) {
            return;
        }
    }
    watch(watched);
}

void ChildContext::dispatch(Watched& from, Message& message) {
    switch (message.type) {
        case MessageType::Reply:
            completePending(message.stream, std::move(message));
            return;
        case MessageType::Ping:
            if (auto sent = from.port.send(MessageType::Pong, message.payload, {}, message.stream);
                !sent) {
                log::warn("{} process: cannot answer ping from {}: {}", kind_.name, from.name,
                          sent.error().message);
            }
            return;
        case MessageType::Quit:
            if (from.name == "main") {
                quit();
                return;
            }
            break;
        case MessageType::NewPort:
            if (from.name == "main" && message.fds.size() == 1) {
                std::string peer_name = message.payload.substr(0, message.payload.find(' '));
                forget(peer_name);
                auto watched = std::make_unique<Watched>(
                    Watched{peer_name, Port(std::move(message.fds[0])), nullptr});
                Watched& added = *watched;
                peers_.emplace(peer_name, std::move(watched));
                log::debug("{} process: connected to {}", kind_.name, message.payload);
                watch(added);
                if (peer_connected_handler_) {
                    peer_connected_handler_(peer_name);
                }
                return;
            }
            break;
        case MessageType::LogFile:
            if (from.name == "main" && message.fds.size() == 1) {
                ::dup2(message.fds[0].get(), STDERR_FILENO);
                return;
            }
            break;
        default:
            break;
    }
    auto handler = std::find_if(kind_.handlers.begin(), kind_.handlers.end(),
                                [&](const auto& entry) { return entry.type == message.type; });
    if (handler != kind_.handlers.end()) {
        handler->handle(*this, from.name, message);
        return;
    }
    if (message.type == MessageType::ReopenFiles) {
        return;  // a kind that writes no files of its own has nothing to reopen
    }
    log::warn("{} process: unexpected message {} from {}", kind_.name,
              messageTypeName(message.type), from.name);
}

void ChildContext::forget(const std::string& name) {
    if (peers_.erase(name) > 0) {
        failPending(name, fmt::format("the {} process exited", name));
    }
}

void ChildContext::watchSignals() {
    sigset_t watched;
    sigemptyset(&watched);
    for (int signal_number : kWatchedSignals) {
        sigaddset(&watched, signal_number);
    }
    for (const auto& action : kind_.signals) {
        sigaddset(&watched, action.signal_number);
    }
    ::sigprocmask(SIG_BLOCK, &watched, nullptr);
    int fd = ::signalfd(-1, &watched, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) {
        log::alert("{} process: signalfd() failed: {}", kind_.name, std::strerror(errno));
        return;
    }
    signal_watch_ = std::make_unique<boost::asio::posix::stream_descriptor>(io_, fd);
    waitForSignal();
}

void ChildContext::waitForSignal() {
    signal_watch_->async_wait(
        boost::asio::posix::stream_descriptor::wait_read,
        [this](const boost::system::error_code& ec) {
            if (ec) {
                return;
            }
            signalfd_siginfo info{};
            while (::read(signal_watch_->native_handle(), &info, sizeof(info)) ==
                   static_cast<ssize_t>(sizeof(info))) {
                handleSignal(static_cast<int>(info.ssi_signo));
            }
            waitForSignal();
        });
}

void ChildContext::handleSignal(int signal_number) {
    auto action = std::find_if(kind_.signals.begin(), kind_.signals.end(), [&](const auto& entry) {
        return entry.signal_number == signal_number;
    });
    if (action != kind_.signals.end()) {
        action->handle(*this);
    } else if (signal_number == SIGTERM || signal_number == SIGINT) {
        stop(0);
    } else if (signal_number == SIGQUIT) {
        quit();
    }
}

}  // namespace canopy
