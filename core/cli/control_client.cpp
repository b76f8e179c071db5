#include "core/cli/control_client.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/un.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>

#include "core/base/socket_address.h"
#include "core/base/unique_fd.h"

namespace canopy::cli {
namespace {

using Clock = std::chrono::steady_clock;

std::string lowerCase(std::string_view text) {
    std::string lower(text);
    for (char& c : lower) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return lower;
}

std::string_view trim(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
        text.remove_prefix(1);
    }
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r')) {
        text.remove_suffix(1);
    }
    return text;
}

// Waits until `fd` is ready for `events`; false when the deadline passed.
Result<bool> waitFor(int fd, short events, Clock::time_point deadline) {
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) {
            return false;
        }
        pollfd entry{fd, events, 0};
        int ready = ::poll(&entry, 1, static_cast<int>(std::min<int64_t>(left.count(), 1 << 30)));
        if (ready > 0) {
            return true;
        }
        if (ready < 0 && errno != EINTR) {
            return systemError("poll()");
        }
    }
}

struct Head {
    size_t body_offset = 0;
    std::optional<size_t> content_length;
};

// The end of the head and the announced body length, once the head is in;
// std::nullopt while it is not.
std::optional<Head> findHead(std::string_view received) {
    size_t end = received.find("\r\n\r\n");
    if (end == std::string_view::npos) {
        return std::nullopt;
    }
    Head head;
    head.body_offset = end + 4;
    std::string_view lines = received.substr(0, end);
    size_t start = lines.find("\r\n");
    while (start != std::string_view::npos) {
        size_t next = lines.find("\r\n", start + 2);
        std::string_view line = lines.substr(
            start + 2, next == std::string_view::npos ? std::string_view::npos : next - start - 2);
        size_t colon = line.find(':');
        if (colon != std::string_view::npos &&
            lowerCase(trim(line.substr(0, colon))) == "content-length") {
            std::string_view value = trim(line.substr(colon + 1));
            size_t length = 0;
            auto [end_of_number, error] =
                std::from_chars(value.data(), value.data() + value.size(), length);
            if (error == std::errc() && end_of_number == value.data() + value.size()) {
                head.content_length = length;
            }
        }
        start = next;
    }
    return head;
}

std::optional<HttpAnswer> parseAnswer(std::string_view received) {
    auto head = findHead(received);
    if (!head) {
        return std::nullopt;
    }
    std::string_view lines = received.substr(0, head->body_offset - 4);
    size_t line_end = lines.find("\r\n");
    std::string_view status_line = lines.substr(0, line_end);
    // "HTTP/1.1 200 OK"
    if (!status_line.starts_with("HTTP/1.") || status_line.size() < 12 || status_line[8] != ' ') {
        return std::nullopt;
    }
    HttpAnswer answer;
    std::string_view code = status_line.substr(9, 3);
    auto [end, error] = std::from_chars(code.data(), code.data() + code.size(), answer.status);
    if (error != std::errc() || end != code.data() + code.size() || answer.status < 100) {
        return std::nullopt;
    }
    answer.reason = std::string(trim(status_line.substr(12)));
    while (line_end != std::string_view::npos) {
        size_t next = lines.find("\r\n", line_end + 2);
        std::string_view line =
            lines.substr(line_end + 2, next == std::string_view::npos ? std::string_view::npos
                                                                      : next - line_end - 2);
        size_t colon = line.find(':');
        if (colon != std::string_view::npos) {
            answer.headers.emplace_back(lowerCase(trim(line.substr(0, colon))),
                                        std::string(trim(line.substr(colon + 1))));
        }
        line_end = next;
    }
    std::string_view body = received.substr(head->body_offset);
    if (head->content_length) {
        body = body.substr(0, *head->content_length);
    }
    answer.body = std::string(body);
    return answer;
}

std::string seconds(std::chrono::milliseconds duration) {
    return fmt::format("{:g} s", static_cast<double>(duration.count()) / 1000.0);
}

}  // namespace

const std::string* HttpAnswer::header(std::string_view name) const {
    std::string wanted = lowerCase(name);
    for (const auto& [key, value] : headers) {
        if (key == wanted) {
            return &value;
        }
    }
    return nullptr;
}

Result<ControlClient> ControlClient::create(std::string address,
                                            std::chrono::milliseconds timeout) {
    ControlClient client;
    client.address_ = address;
    client.timeout_ = timeout;
    std::string_view text = address;
    std::optional<std::string_view> path;
    if (text.starts_with("unix:")) {
        path = text.substr(5);
    } else if (text.find('/') != std::string_view::npos) {
        path = text;
    }
    if (path) {
        auto* unix_address = reinterpret_cast<sockaddr_un*>(&client.storage_);
        unix_address->sun_family = AF_UNIX;
        if (path->empty() || path->size() >= sizeof(unix_address->sun_path)) {
            return Error{
                fmt::format("invalid control address \"{}\": a Unix socket path must have "
                            "1 to {} bytes",
                            address, sizeof(unix_address->sun_path) - 1)};
        }
        std::memcpy(unix_address->sun_path, path->data(), path->size());
        if (path->front() == '@') {
            // Linux's abstract namespace: a leading NUL and an exact length.
            unix_address->sun_path[0] = '\0';
            client.length_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path->size());
        } else {
            client.length_ = sizeof(sockaddr_un);
        }
        return client;
    }
    auto parsed = parseSocketAddress(text);
    if (!parsed) {
        return Error{
            fmt::format("invalid control address \"{}\": expected unix:PATH or "
                        "ADDRESS:PORT",
                        address)};
    }
    client.storage_ = parsed->storage;
    client.length_ = parsed->length;
    // canopyd listening on "*:PORT" is reached on the loopback.
    if (parsed->family() == AF_INET) {
        auto* inet = reinterpret_cast<sockaddr_in*>(&client.storage_);
        if (inet->sin_addr.s_addr == htonl(INADDR_ANY)) {
            inet->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        }
    } else if (parsed->family() == AF_INET6) {
        auto* inet6 = reinterpret_cast<sockaddr_in6*>(&client.storage_);
        if (IN6_IS_ADDR_UNSPECIFIED(&inet6->sin6_addr)) {
            inet6->sin6_addr = in6addr_loopback;
        }
    }
    return client;
}

Result<HttpAnswer> ControlClient::send(const HttpRequest& request) const {
    const auto deadline = Clock::now() + timeout_;
    auto connectError = [this](int error_number) -> Error {
        if (error_number == ENOENT || error_number == ECONNREFUSED || error_number == ENOTDIR) {
            std::string also = also_tried_.empty() ? "" : fmt::format(" (nor on {})", also_tried_);
            return Error{fmt::format("no canopyd answers on {}{}: is it running? use --control",
                                     address_, also),
                         error_number};
        }
        if (error_number == EACCES || error_number == EPERM) {
            return Error{fmt::format("permission denied on {}: run canopy as a user that may "
                                     "open the socket (its owner, or root)",
                                     address_),
                         error_number};
        }
        return Error{fmt::format("cannot connect to {}: {}", address_, std::strerror(error_number)),
                     error_number};
    };
    auto timedOut = [this]() {
        return Error{fmt::format("canopyd on {} did not answer within {} (see --timeout)", address_,
                                 seconds(timeout_)),
                     ETIMEDOUT};
    };

    UniqueFd socket(::socket(storage_.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!socket) {
        return systemError("socket()");
    }
    if (::connect(socket.get(), reinterpret_cast<const sockaddr*>(&storage_), length_) != 0) {
        if (errno == EAGAIN) {
            // A Unix socket's backlog is full: the daemon is busy or stuck.
            return timedOut();
        }
        if (errno != EINPROGRESS && errno != EINTR) {
            return connectError(errno);
        }
        auto ready = waitFor(socket.get(), POLLOUT, deadline);
        if (!ready) {
            return ready.error();
        }
        if (!*ready) {
            return timedOut();
        }
        int error_number = 0;
        socklen_t size = sizeof(error_number);
        ::getsockopt(socket.get(), SOL_SOCKET, SO_ERROR, &error_number, &size);
        if (error_number != 0) {
            return connectError(error_number);
        }
    }

    std::string message = fmt::format("{} {} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n",
                                      request.method, request.target);
    if (!request.body.empty() || request.method == "PUT" || request.method == "POST") {
        message += fmt::format("Content-Length: {}\r\n", request.body.size());
    }
    for (const auto& [name, value] : request.headers) {
        message += fmt::format("{}: {}\r\n", name, value);
    }
    message += "\r\n";
    message += request.body;

    // A daemon may answer and close before it read everything (a body it
    // refuses); the answer still counts, so a failed write moves on to reading.
    std::string_view unsent = message;
    while (!unsent.empty()) {
        ssize_t sent = ::send(socket.get(), unsent.data(), unsent.size(), MSG_NOSIGNAL);
        if (sent >= 0) {
            unsent.remove_prefix(static_cast<size_t>(sent));
            continue;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno != EAGAIN) {
            break;
        }
        auto ready = waitFor(socket.get(), POLLOUT, deadline);
        if (!ready) {
            return ready.error();
        }
        if (!*ready) {
            return timedOut();
        }
    }

    std::string received;
    char buffer[16384];
    for (;;) {
        if (auto head = findHead(received);
            head && head->content_length &&
            received.size() >= head->body_offset + *head->content_length) {
            break;
        }
        ssize_t got = ::recv(socket.get(), buffer, sizeof(buffer), 0);
        if (got > 0) {
            received.append(buffer, static_cast<size_t>(got));
            continue;
        }
        if (got == 0) {
            break;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == ECONNRESET && !received.empty()) {
            break;
        }
        if (errno != EAGAIN) {
            return Error{fmt::format("reading the answer of canopyd on {}: {}", address_,
                                     std::strerror(errno)),
                         errno};
        }
        auto ready = waitFor(socket.get(), POLLIN, deadline);
        if (!ready) {
            return ready.error();
        }
        if (!*ready) {
            return timedOut();
        }
    }
    if (received.empty()) {
        return Error{
            fmt::format("canopyd on {} closed the connection without an answer", address_)};
    }
    auto head = findHead(received);
    if (head && head->content_length &&
        received.size() < head->body_offset + *head->content_length) {
        return Error{fmt::format("canopyd on {} closed the connection in the middle of its answer",
                                 address_)};
    }
    auto answer = parseAnswer(received);
    if (!answer) {
        return Error{fmt::format("the server on {} did not answer in HTTP", address_)};
    }
    return std::move(*answer);
}

}  // namespace canopy::cli
