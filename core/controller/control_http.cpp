#include "core/controller/control_http.h"

#include <fmt/format.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <ctime>

#include "core/base/build_info.h"
#include "core/base/log.h"

namespace canopy {
namespace {

namespace http = boost::beast::http;

std::string_view reasonPhrase(int status) {
    switch (status) {
        case 200:
            return "OK";
        case 400:
            return "Bad Request";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 412:
            return "Precondition Failed";
        case 413:
            return "Payload Too Large";
        case 500:
            return "Internal Server Error";
        case 503:
            return "Service Unavailable";
        default:
            return "Unknown";
    }
}

std::string httpDate() {
    std::time_t now = std::time(nullptr);
    std::tm utc{};
    gmtime_r(&now, &utc);
    char text[64];
    size_t length = std::strftime(text, sizeof(text), "%a, %d %b %Y %H:%M:%S GMT", &utc);
    return std::string(text, length);
}

std::string renderResponse(const ControlResponse& response) {
    std::string head = fmt::format(
        "HTTP/1.1 {} {}\r\nServer: Canopy/{}\r\nDate: {}\r\nContent-Type: application/json\r\n"
        "Content-Length: {}\r\nConnection: close\r\n",
        response.status, reasonPhrase(response.status), build::kVersion, httpDate(),
        response.body.size());
    for (const auto& [name, value] : response.headers) {
        head += fmt::format("{}: {}\r\n", name, value);
    }
    head += "\r\n";
    return head + response.body;
}

std::string errorBody(std::string_view error, std::string_view detail) {
    // Built by hand: this layer answers before any JSON library is involved.
    auto quote = [](std::string_view text) {
        std::string quoted = "\"";
        for (char character : text) {
            if (character == '"' || character == '\\') {
                quoted += '\\';
            }
            quoted += static_cast<unsigned char>(character) < 0x20 ? ' ' : character;
        }
        return quoted + "\"";
    };
    return fmt::format("{{\r\n\t\"error\": {},\r\n\t\"detail\": {}\r\n}}\r\n", quote(error),
                       quote(detail));
}

class ControlConnection : public std::enable_shared_from_this<ControlConnection> {
  public:
    ControlConnection(boost::asio::io_context& io, int fd, std::shared_ptr<ControlHandler> handler,
                      const ControlHttpLimits& limits)
        : stream_(io, fd), timer_(io), handler_(std::move(handler)), limits_(limits) {
        parser_.header_limit(static_cast<uint32_t>(limits.max_head));
        parser_.body_limit(limits.max_body);
    }

    void start() {
        armTimer(limits_.head_timeout);
        http::async_read_header(stream_, buffer_, parser_,
                                [self = shared_from_this()](const boost::system::error_code& ec,
                                                            size_t) { self->onHead(ec); });
    }

  private:
    void armTimer(std::chrono::seconds timeout) {
        timer_.expires_after(timeout);
        timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
            if (auto self = weak.lock(); self && !ec) {
                log::info("control connection timed out");
                self->close();
            }
        });
    }

    void onHead(const boost::system::error_code& ec) {
        if (ec) {
            refuse(ec);
            return;
        }
        if (parser_.chunked()) {
            fail(400, "Invalid request.",
                 "The control API takes bodies with Content-Length, not chunked.");
            return;
        }
        armTimer(limits_.idle_timeout);
        http::async_read(stream_, buffer_, parser_,
                         [self = shared_from_this()](const boost::system::error_code& read_error,
                                                     size_t) { self->onBody(read_error); });
    }

    void onBody(const boost::system::error_code& ec) {
        if (ec) {
            refuse(ec);
            return;
        }
        auto& message = parser_.get();
        ControlRequest request;
        request.method = std::string(message.method_string());
        request.target = std::string(message.target());
        request.if_match = std::string(message[http::field::if_match]);
        request.body = std::move(message.body());
        (*handler_)(std::move(request), [self = shared_from_this()](ControlResponse response) {
            self->send(std::move(response));
        });
    }

    // A request that cannot be read: answer when the peer can still listen.
    void refuse(const boost::system::error_code& ec) {
        if (ec == http::error::end_of_stream || ec == boost::asio::error::eof ||
            ec == boost::asio::error::operation_aborted ||
            ec == boost::asio::error::bad_descriptor) {
            close();
            return;
        }
        log::info("control connection: invalid request: {}", ec.message());
        if (ec == http::error::header_limit) {
            fail(400, "Invalid request.", "The request head is too large.");
        } else if (ec == http::error::body_limit) {
            fail(400, "Invalid request.", "The request body is too large.");
        } else {
            fail(400, "Invalid request.", ec.message());
        }
    }

    void fail(int status, std::string_view error, std::string_view detail) {
        send({status, errorBody(error, detail), {}});
    }

    void send(ControlResponse response) {
        if (!stream_.is_open()) {
            return;  // timed out while the answer was prepared
        }
        armTimer(limits_.idle_timeout);
        wire_ = renderResponse(response);
        boost::asio::async_write(
            stream_, boost::asio::buffer(wire_),
            [self = shared_from_this()](const boost::system::error_code&, size_t) {
                ::shutdown(self->stream_.native_handle(), SHUT_WR);
                self->close();
            });
    }

    void close() {
        timer_.cancel();
        boost::system::error_code ignored;
        stream_.close(ignored);
    }

    boost::asio::posix::stream_descriptor stream_;
    boost::asio::steady_timer timer_;
    std::shared_ptr<ControlHandler> handler_;
    ControlHttpLimits limits_;
    boost::beast::flat_buffer buffer_;
    http::request_parser<http::string_body> parser_;
    std::string wire_;
};

}  // namespace

ControlHttpServer::ControlHttpServer(boost::asio::io_context& io, int listen_fd,
                                     ControlHandler handler, ControlHttpLimits limits)
    : io_(io),
      listener_(io, ::dup(listen_fd)),
      handler_(std::make_shared<ControlHandler>(std::move(handler))),
      limits_(limits) {
    listener_.non_blocking(true);
}

void ControlHttpServer::start() {
    acceptNext();
}

void ControlHttpServer::acceptNext() {
    listener_.async_wait(
        boost::asio::posix::stream_descriptor::wait_read,
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
                std::make_shared<ControlConnection>(io_, fd, handler_, limits_)->start();
            }
            acceptNext();
        });
}

}  // namespace canopy
