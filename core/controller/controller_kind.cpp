#include "core/controller/controller_kind.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <memory>

#include "core/base/build_info.h"
#include "core/base/log.h"
#include "core/controller/control_socket.h"
#include "core/process/child_context.h"
#include "core/process/credentials.h"
#include "core/process/main_context.h"
#include "core/process/process.h"

namespace canopy {
namespace {

constexpr std::string_view kName = "controller";
constexpr size_t kMaxRequestHead = 16 * 1024;
constexpr auto kRequestTimeout = std::chrono::seconds(10);

// Until the control API lands, every request gets a clear refusal rather than
// a connection that hangs.
std::string unavailableAnswer() {
    std::string body = fmt::format(
        "{{\n\t\"error\": \"The control API is not available in this version.\",\n"
        "\t\"detail\": \"canopyd {} runs its processes but does not accept configuration "
        "yet.\"\n}}\n",
        build::kVersion);
    return fmt::format(
        "HTTP/1.1 503 Service Unavailable\r\nServer: Canopy/{}\r\n"
        "Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        build::kVersion, body.size(), body);
}

class ControlConnection : public std::enable_shared_from_this<ControlConnection> {
  public:
    ControlConnection(boost::asio::io_context& io, int fd) : stream_(io, fd), timer_(io) {}

    void start() {
        timer_.expires_after(kRequestTimeout);
        timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
            if (!ec) {
                self->stream_.close();
            }
        });
        readHead();
    }

  private:
    void readHead() {
        stream_.async_read_some(
            boost::asio::buffer(chunk_),
            [self = shared_from_this()](const boost::system::error_code& ec, size_t length) {
                if (ec) {
                    self->timer_.cancel();
                    return;
                }
                self->head_.append(self->chunk_.data(), length);
                if (self->head_.find("\r\n\r\n") == std::string::npos &&
                    self->head_.size() < kMaxRequestHead) {
                    self->readHead();
                    return;
                }
                self->answer();
            });
    }

    void answer() {
        answer_ = unavailableAnswer();
        boost::asio::async_write(
            stream_, boost::asio::buffer(answer_),
            [self = shared_from_this()](const boost::system::error_code&, size_t) {
                ::shutdown(self->stream_.native_handle(), SHUT_WR);
                self->timer_.cancel();
            });
    }

    boost::asio::posix::stream_descriptor stream_;
    boost::asio::steady_timer timer_;
    std::array<char, 4096> chunk_{};
    std::string head_;
    std::string answer_;
};

class ControlAcceptor {
  public:
    ControlAcceptor(boost::asio::io_context& io, int listen_fd)
        : io_(io), listener_(io, ::dup(listen_fd)) {
        listener_.non_blocking(true);
    }

    void acceptNext() {
        listener_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                             [this](const boost::system::error_code& ec) {
                                 if (ec) {
                                     return;
                                 }
                                 for (;;) {
                                     int fd = ::accept4(listener_.native_handle(), nullptr, nullptr,
                                                        SOCK_NONBLOCK | SOCK_CLOEXEC);
                                     if (fd < 0) {
                                         break;
                                     }
                                     std::make_shared<ControlConnection>(io_, fd)->start();
                                 }
                                 acceptNext();
                             });
    }

  private:
    boost::asio::io_context& io_;
    boost::asio::posix::stream_descriptor listener_;
};

Result<void> controllerInit(MainContext& main) {
    const auto& settings = main.settings();
    auto socket = ControlSocket::listen(settings.control_address, settings.control_mode,
                                        settings.control_owner, settings.control_group);
    if (!socket) {
        return socket.error();
    }
    if (!socket->loopback()) {
        log::warn(
            "the control API listens on {}, which is not a loopback address: anyone who "
            "reaches it can reconfigure the server",
            settings.control_address);
    }
    main.setKindState(kName, std::make_shared<ControlSocket>(std::move(*socket)));
    return {};
}

Result<void> controllerPrefork(MainContext& main, Process& process) {
    auto* socket = main.kindState<ControlSocket>(kName);
    if (socket == nullptr) {
        return Error{"the control socket is not open"};
    }
    int copy = ::fcntl(socket->fd(), F_DUPFD_CLOEXEC, 3);
    if (copy < 0) {
        return systemError("fcntl(F_DUPFD_CLOEXEC)");
    }
    process.inherited_fds.emplace_back(copy);
    return {};
}

Result<ProcessState> controllerSetup(ChildContext& child) {
    if (auto dropped = dropPrivileges(child.settings().unprivileged); !dropped) {
        return dropped.error();
    }
    return ProcessState::Ready;
}

int controllerStart(ChildContext& child) {
    if (child.inheritedFds().empty()) {
        log::alert("controller: no control socket was handed over");
        return 1;
    }
    ControlAcceptor acceptor(child.io(), child.inheritedFds().front());
    acceptor.acceptNext();
    log::info("controller started");
    return child.run();
}

void controllerShutdown(MainContext& main) {
    if (auto* socket = main.kindState<ControlSocket>(kName); socket != nullptr) {
        socket->close();
    }
    main.clearKindState(kName);
}

}  // namespace

const ProcessKind kControllerKind = {
    .name = kName,
    .title = "canopy: controller",
    .boot = BootRole::Service,
    .restart = RestartPolicy::Always,
    .init = controllerInit,
    .prefork = controllerPrefork,
    .setup = controllerSetup,
    .start = controllerStart,
    .shutdown = controllerShutdown,
};

}  // namespace canopy
