#include "core/port/port.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <string>

namespace canopy {
namespace {

using std::chrono::milliseconds;

std::pair<Port, Port> makePair() {
    auto pair = Port::createPair();
    EXPECT_TRUE(pair.ok());
    return std::move(*pair);
}

std::string readAll(int fd) {
    std::string content;
    std::array<char, 256> buffer{};
    ::lseek(fd, 0, SEEK_SET);
    ssize_t got = 0;
    while ((got = ::read(fd, buffer.data(), buffer.size())) > 0) {
        content.append(buffer.data(), static_cast<size_t>(got));
    }
    return content;
}

TEST(PortTest, MessageRoundTripsWithHeaderFields) {
    auto [left, right] = makePair();
    ASSERT_TRUE(left.send(MessageType::Ping, "hello", {}, 42).ok());
    auto message = right.receiveWait(milliseconds(1000));
    ASSERT_TRUE(message.ok()) << message.error().message;
    EXPECT_EQ(message->type, MessageType::Ping);
    EXPECT_EQ(message->stream, 42U);
    EXPECT_EQ(message->payload, "hello");
    EXPECT_TRUE(message->fds.empty());
}

TEST(PortTest, EmptyPayloadIsAMessage) {
    auto [left, right] = makePair();
    ASSERT_TRUE(left.send(MessageType::Quit).ok());
    auto message = right.receiveWait(milliseconds(1000));
    ASSERT_TRUE(message.ok());
    EXPECT_EQ(message->type, MessageType::Quit);
    EXPECT_TRUE(message->payload.empty());
}

TEST(PortTest, DescriptorsArriveAsNewFdsOnTheSameFile) {
    auto [left, right] = makePair();
    char path[] = "/tmp/canopy-port-test-XXXXXX";
    int file = ::mkstemp(path);
    ASSERT_GE(file, 0);
    ::unlink(path);
    ASSERT_EQ(::write(file, "shared", 6), 6);

    std::array<int, 2> fds = {file, file};
    ASSERT_TRUE(left.send(MessageType::LogFile, "two", fds).ok());
    ::close(file);  // the receiver's copies keep the file open

    auto message = right.receiveWait(milliseconds(1000));
    ASSERT_TRUE(message.ok());
    ASSERT_EQ(message->fds.size(), 2U);
    EXPECT_NE(message->fds[0].get(), message->fds[1].get());
    EXPECT_EQ(readAll(message->fds[0].get()), "shared");
    EXPECT_NE(::fcntl(message->fds[1].get(), F_GETFD) & FD_CLOEXEC, 0);
}

TEST(PortTest, DescriptorsCrossProcesses) {
    auto [parent_end, child_end] = makePair();
    std::array<int, 2> pipe_fds{};
    ASSERT_EQ(::pipe(pipe_fds.data()), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        // The child receives a pipe's write end and answers through it.
        auto message = child_end.receiveWait(milliseconds(5000));
        if (!message || message->fds.size() != 1) {
            ::_exit(2);
        }
        std::string answer = "from child: " + message->payload;
        ssize_t written = ::write(message->fds[0].get(), answer.data(), answer.size());
        ::_exit(written == static_cast<ssize_t>(answer.size()) ? 0 : 3);
    }
    std::array<int, 1> fds = {pipe_fds[1]};
    ASSERT_TRUE(parent_end.send(MessageType::NewPort, "pipe", fds).ok());
    ::close(pipe_fds[1]);
    std::string received;
    std::array<char, 64> buffer{};
    ssize_t got = 0;
    while ((got = ::read(pipe_fds[0], buffer.data(), buffer.size())) > 0) {
        received.append(buffer.data(), static_cast<size_t>(got));
    }
    ::close(pipe_fds[0]);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    EXPECT_EQ(received, "from child: pipe");
}

TEST(PortTest, LargePayloadIsFragmentedAndJoined) {
    auto [left, right] = makePair();
    std::string payload(Port::kMaxPacketPayload * 3 + 123, '\0');
    for (size_t index = 0; index < payload.size(); ++index) {
        payload[index] = static_cast<char>('a' + index % 26);
    }
    pid_t pid = ::fork();  // the sender blocks while the socket buffer is full
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        ::_exit(left.send(MessageType::ModulesReport, payload, {}, 7).ok() ? 0 : 1);
    }
    auto message = right.receiveWait(milliseconds(5000));
    ASSERT_TRUE(message.ok()) << message.error().message;
    EXPECT_EQ(message->type, MessageType::ModulesReport);
    EXPECT_EQ(message->stream, 7U);
    EXPECT_EQ(message->payload, payload);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(PortTest, MessagesKeepTheirOrder) {
    auto [left, right] = makePair();
    for (int index = 0; index < 20; ++index) {
        ASSERT_TRUE(left.send(MessageType::Ping, std::to_string(index)).ok());
    }
    for (int index = 0; index < 20; ++index) {
        auto message = right.receiveWait(milliseconds(1000));
        ASSERT_TRUE(message.ok());
        EXPECT_EQ(message->payload, std::to_string(index));
    }
}

TEST(PortTest, ReceiveWithoutDataReturnsNothing) {
    auto [left, right] = makePair();
    auto nothing = right.receive();
    ASSERT_TRUE(nothing.ok());
    EXPECT_FALSE(nothing->has_value());
}

TEST(PortTest, ClosedPeerIsAnError) {
    auto [left, right] = makePair();
    left.close();
    auto received = right.receive();
    ASSERT_FALSE(received.ok());
    EXPECT_EQ(received.error().system_errno, EPIPE);
    EXPECT_FALSE(right.send(MessageType::Ping).ok());
}

TEST(PortTest, WaitTimesOut) {
    auto [left, right] = makePair();
    auto message = right.receiveWait(milliseconds(50));
    ASSERT_FALSE(message.ok());
    EXPECT_EQ(message.error().system_errno, ETIMEDOUT);
}

TEST(PortTest, TooManyDescriptorsAreRefused) {
    auto [left, right] = makePair();
    std::vector<int> fds(Port::kMaxFds + 1, STDIN_FILENO);
    auto sent = left.send(MessageType::Ping, {}, fds);
    EXPECT_FALSE(sent.ok());
}

}  // namespace
}  // namespace canopy
