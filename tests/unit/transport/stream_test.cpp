#include "canopy/transport/stream.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "canopy/transport/port_message.h"
#include "canopy/transport/request_head.h"
#include "fork_helper.h"
#include "transport_fixture.h"

namespace canopy::transport {
namespace {

// Port messages are read without blocking; a test waits for the one it
// expects (the sender is another process) with a deadline.
Result<PortMessage> receivePortMessageWaiting(int socket) {
    pollfd readable{socket, POLLIN, 0};
    if (::poll(&readable, 1, 10000) != 1) {
        return Error{Errc::WouldBlock, 0, "no port message within 10 s"};
    }
    return receivePortMessage(socket);
}

using testing::attachConsumer;
using testing::attachSegments;
using testing::forkChild;
using testing::prepareConsumer;
using testing::residentKib;
using testing::waitChild;
using testing::waitUntil;

constexpr uint32_t kConsumer = 0;
constexpr Party kConsumerParty = consumerParty(kConsumer);
constexpr SegmentGeometry kChunks16k{16384, 64};  // 1 MiB segments

// The router's side of one request: a channel, a pool, the request queued.
struct RouterSide {
    std::unique_ptr<Channel> channel;
    SegmentPool pool{kChunks16k, holderOf(kRouterParty)};
    StreamId request_stream;
    StreamId response_stream;
    RequestDescriptor descriptor;

    explicit RouterSide(ChannelGeometry geometry = {}) {
        channel = std::move(*Channel::create(geometry));
        EXPECT_TRUE(pool.reserve(1).ok());
    }

    void queueRequest(bool with_body) {
        request_stream = with_body ? *channel->openStream(kRouterParty, kNoParty) : StreamId{};
        response_stream = *channel->openStream(kNoParty, kRouterParty);
        RequestHead head;
        head.method = "GET";
        head.target = "/";
        head.path = "/";
        head.version = "HTTP/1.1";
        descriptor.request_id = 1;
        descriptor.request_stream = request_stream.slot;
        descriptor.request_stream_generation = request_stream.generation;
        descriptor.response_stream = response_stream.slot;
        descriptor.response_stream_generation = response_stream.generation;
        ASSERT_TRUE(storeHead(pool, head, {}, descriptor).ok());
        ASSERT_TRUE(channel->queue().push(descriptor).ok());
    }
};

// The consumer's side, built in the child.
struct ConsumerSide {
    std::unique_ptr<Channel> channel;
    SegmentTable router_segments;
    RequestDescriptor descriptor;

    bool start(RouterSide& router) {
        channel = attachConsumer(*router.channel, kConsumer);
        if (channel == nullptr ||
            !attachSegments(router.pool.table(), router_segments, kChunks16k)) {
            return false;
        }
        auto taken = channel->takeRequest(router_segments, 10000);
        if (!taken) {
            return false;
        }
        descriptor = *taken;
        return true;
    }
    StreamId responseStream() const {
        return {descriptor.response_stream, descriptor.response_stream_generation};
    }
    StreamId requestStream() const {
        return {descriptor.request_stream, descriptor.request_stream_generation};
    }
    Doorbell doorbell() const { return channel->doorbell(kConsumerParty); }
};

// Streams `total` bytes as a response from a child to the router and checks
// every byte; returns the throughput in MiB/s.
double streamResponse(uint64_t total) {
    RouterSide router;
    prepareConsumer(*router.channel, kConsumer);
    router.queueRequest(false);
    int sockets[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sockets), 0);

    pid_t child = forkChild([&] {
        ConsumerSide consumer;
        if (!consumer.start(router)) {
            return 1;
        }
        long rss_before = residentKib();
        // The app's own pool: one segment is its whole budget.
        SegmentPool pool(kChunks16k, holderOf(kConsumerParty), kChunks16k.mappedSize());
        if (!pool.reserve(1).ok() || !sendPortMessage(sockets[1], PortMessageType::AppSegment, 0,
                                                      pool.table().find(0)->fd())) {
            return 2;
        }
        StreamWriter writer(*consumer.channel, consumer.responseStream(), kConsumerParty,
                            pool.table());
        uint64_t sequence = 0;
        for (uint64_t sent = 0; sent < total; ++sequence) {
            Result<ChunkRef> chunk = Error{};
            bool ready = waitUntil(consumer.doorbell(), [&] {
                auto credit = writer.credit();
                if (!credit || *credit == 0) {
                    return !credit;  // an error ends the wait too
                }
                chunk = pool.allocate();
                return chunk.ok();
            });
            if (!ready || !chunk) {
                return 3;
            }
            uint32_t length = static_cast<uint32_t>(std::min<uint64_t>(16384, total - sent));
            std::memset(pool.table().find(chunk->segment)->chunk(chunk->index).data(),
                        static_cast<int>(sequence & 0xFF), length);
            chunk->length = length;
            if (!writer.writeChunk(*chunk)) {
                return 4;
            }
            sent += length;
        }
        if (!writer.finish()) {
            return 5;
        }
        releaseHead(consumer.router_segments, consumer.descriptor);
        // The app never holds more than its credit, whatever the total.
        return residentKib() - rss_before > 8 * 1024 ? 6 : 0;
    });

    SegmentTable app_segments;
    auto received = receivePortMessageWaiting(sockets[0]);
    EXPECT_TRUE(received.ok());
    if (received) {
        EXPECT_TRUE(app_segments.attach(0, std::move(received->fd), kChunks16k).ok());
    }
    long rss_before = residentKib();
    StreamReader reader(*router.channel, router.response_stream, kRouterParty, app_segments);
    Doorbell bell = router.channel->doorbell(kRouterParty);
    uint64_t got = 0;
    uint64_t sequence = 0;
    size_t max_used = 0;
    bool bad_data = false;
    auto start = std::chrono::steady_clock::now();
    Errc last = Errc::WouldBlock;
    waitUntil(bell, [&] {
        for (;;) {
            auto entry = reader.next();
            if (!entry) {
                last = entry.code();
                return last != Errc::WouldBlock;
            }
            auto bytes = reader.data(*entry);
            // Consume the bytes as a router writing them to a socket would.
            uint64_t mix = 0;
            for (size_t offset = 0; offset + 8 <= bytes.size(); offset += 8) {
                uint64_t word;
                std::memcpy(&word, bytes.data() + offset, 8);
                mix |= word ^ (0x0101010101010101ULL * (sequence & 0xFF));
            }
            bad_data |= mix != 0 || bytes.empty();
            got += bytes.size();
            ++sequence;
            if (sequence % 64 == 0) {
                max_used = std::max(max_used, app_segments.usedChunks());
            }
            (void)reader.release();
        }
    });
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_EQ(last, Errc::Closed);
    EXPECT_EQ(got, total);
    EXPECT_FALSE(bad_data);
    EXPECT_LE(max_used, router.channel->geometry().stream_credit + 1);
    EXPECT_LT(residentKib() - rss_before, 8 * 1024);
    EXPECT_EQ(waitChild(child), 0);
    EXPECT_EQ(router.pool.table().usedChunks(), 0U);  // the head came back
    ::close(sockets[0]);
    ::close(sockets[1]);
    return static_cast<double>(total) / (1 << 20) / seconds;
}

TEST(StreamTest, HundredMibResponseStreamsAtFlatMemory) {
    double rate = streamResponse(uint64_t{100} << 20);
    std::printf("[ figures  ] 100 MiB response through 16 KiB chunks: %.0f MiB/s\n", rate);
}

// Run with --gtest_also_run_disabled_tests for the figure in the README.
TEST(StreamTest, DISABLED_OneGibThroughput) {
    double rate = streamResponse(uint64_t{1} << 30);
    std::printf("[ figures  ] 1 GiB response through 16 KiB chunks: %.0f MiB/s\n", rate);
}

TEST(StreamTest, ASlowReaderHoldsTheWriterToItsCredit) {
    RouterSide router;
    prepareConsumer(*router.channel, kConsumer);
    router.queueRequest(true);
    constexpr int kChunks = 40;
    const uint32_t credit = router.channel->geometry().stream_credit;

    // Router writes the request body; the app reads slowly.
    pid_t child = forkChild([&] {
        ConsumerSide consumer;
        if (!consumer.start(router)) {
            return 1;
        }
        StreamReader reader(*consumer.channel, consumer.requestStream(), kConsumerParty,
                            consumer.router_segments);
        int count = 0;
        bool ok = waitUntil(consumer.doorbell(), [&] {
            for (;;) {
                auto entry = reader.next();
                if (!entry) {
                    return entry.code() != Errc::WouldBlock;
                }
                if (reader.data(*entry).size() != 100 ||
                    reader.data(*entry)[0] != static_cast<std::byte>(count)) {
                    return true;
                }
                ++count;
                std::this_thread::sleep_for(std::chrono::milliseconds(2));  // a slow client
                (void)reader.release();
            }
        });
        releaseHead(consumer.router_segments, consumer.descriptor);
        return ok && count == kChunks ? 0 : 2;
    });

    StreamWriter writer(*router.channel, router.request_stream, kRouterParty, router.pool.table());
    Doorbell bell = router.channel->doorbell(kRouterParty);
    int blocked = 0;
    for (int count = 0; count < kChunks; ++count) {
        auto chunk = router.pool.allocate();
        ASSERT_TRUE(chunk.ok());
        std::memset(router.pool.table().find(chunk->segment)->chunk(chunk->index).data(), count,
                    100);
        chunk->length = 100;
        for (;;) {
            auto written = writer.writeChunk(*chunk);
            if (written) {
                break;
            }
            ASSERT_EQ(written.code(), Errc::WouldBlock);
            ++blocked;
            ASSERT_TRUE(waitUntil(bell, [&] { return writer.credit().value() > 0; }));
        }
        // Never more in flight than the credit: router memory stays bounded.
        ASSERT_LE(router.pool.table().usedChunks(), credit + 1);  // + the head
    }
    ASSERT_TRUE(writer.finish().ok());
    EXPECT_EQ(waitChild(child), 0);
    EXPECT_GT(blocked, 0);
    EXPECT_EQ(router.pool.table().usedChunks(), 0U);
}

TEST(StreamTest, TheWriterAborts) {
    RouterSide router;
    prepareConsumer(*router.channel, kConsumer);
    router.queueRequest(true);
    pid_t child = forkChild([&] {
        ConsumerSide consumer;
        if (!consumer.start(router)) {
            return 1;
        }
        StreamReader reader(*consumer.channel, consumer.requestStream(), kConsumerParty,
                            consumer.router_segments);
        Errc last{};
        waitUntil(consumer.doorbell(), [&] {
            auto entry = reader.next();
            last = entry.code();
            return last != Errc::WouldBlock && last != Errc{};
        });
        reader.abort();  // gives back what it took
        releaseHead(consumer.router_segments, consumer.descriptor);
        return last == Errc::Aborted ? 0 : 2;
    });
    StreamWriter writer(*router.channel, router.request_stream, kRouterParty, router.pool.table());
    for (int count = 0; count < 3; ++count) {
        auto chunk = router.pool.allocate();
        ASSERT_TRUE(chunk.ok());
        ASSERT_TRUE(writer.writeChunk(*chunk).ok());
    }
    writer.abort();
    EXPECT_EQ(waitChild(child), 0);
    writer.reclaimUnread();
    EXPECT_EQ(router.pool.table().usedChunks(), 0U);
}

TEST(StreamTest, AStreamCutShortDeliversWhatWasWrittenThenAborts) {
    RouterSide router;
    prepareConsumer(*router.channel, kConsumer);
    router.queueRequest(true);
    pid_t child = forkChild([&] {
        ConsumerSide consumer;
        if (!consumer.start(router)) {
            return 1;
        }
        StreamReader reader(*consumer.channel, consumer.requestStream(), kConsumerParty,
                            consumer.router_segments);
        int taken = 0;
        Errc last{};
        waitUntil(consumer.doorbell(), [&] {
            for (;;) {
                auto entry = reader.next();
                if (!entry) {
                    last = entry.code();
                    return last != Errc::WouldBlock;
                }
                ++taken;
                (void)reader.release();
            }
        });
        releaseHead(consumer.router_segments, consumer.descriptor);
        // Every entry written before the cut, then Aborted, not Closed.
        if (taken != 3) {
            return 2;
        }
        return last == Errc::Aborted ? 0 : 3;
    });
    StreamWriter writer(*router.channel, router.request_stream, kRouterParty, router.pool.table());
    for (int count = 0; count < 3; ++count) {
        auto chunk = router.pool.allocate();
        ASSERT_TRUE(chunk.ok());
        ASSERT_TRUE(writer.writeChunk(*chunk).ok());
    }
    // The writer cuts the stream at once, before the reader took anything:
    // the entries are still delivered, and freed by the reader, not by us.
    ASSERT_TRUE(writer.finish(/*complete=*/false).ok());
    EXPECT_EQ(waitChild(child), 0);
    EXPECT_EQ(router.pool.table().usedChunks(), 0U);
}

TEST(StreamTest, TheReaderAborts) {
    RouterSide router;
    prepareConsumer(*router.channel, kConsumer);
    router.queueRequest(false);
    int sockets[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sockets), 0);
    pid_t child = forkChild([&] {
        ConsumerSide consumer;
        if (!consumer.start(router)) {
            return 1;
        }
        SegmentPool pool(kChunks16k, holderOf(kConsumerParty), kChunks16k.mappedSize());
        if (!pool.reserve(1) || !sendPortMessage(sockets[1], PortMessageType::AppSegment, 0,
                                                 pool.table().find(0)->fd())) {
            return 2;
        }
        StreamWriter writer(*consumer.channel, consumer.responseStream(), kConsumerParty,
                            pool.table());
        Errc last{};
        // Writes until the router tells it to stop.
        bool ended = waitUntil(consumer.doorbell(), [&] {
            for (;;) {
                auto chunk = pool.allocate();
                if (!chunk) {
                    return false;
                }
                chunk->length = 1;
                auto written = writer.writeChunk(*chunk);
                if (!written) {
                    pool.table().release(*chunk);
                    last = written.code();
                    return last != Errc::WouldBlock;
                }
            }
        });
        writer.reclaimUnread();
        releaseHead(consumer.router_segments, consumer.descriptor);
        // Everything is back: what the router took it released on abort.
        bool clean = waitUntil(consumer.doorbell(), [&] { return pool.table().usedChunks() == 0; });
        return ended && last == Errc::Aborted && clean ? 0 : 3;
    });
    SegmentTable app_segments;
    auto received = receivePortMessageWaiting(sockets[0]);
    ASSERT_TRUE(received.ok());
    ASSERT_TRUE(app_segments.attach(0, std::move(received->fd), kChunks16k).ok());
    StreamReader reader(*router.channel, router.response_stream, kRouterParty, app_segments);
    Doorbell bell = router.channel->doorbell(kRouterParty);
    ASSERT_TRUE(waitUntil(bell, [&] { return reader.next().ok(); }));
    EXPECT_EQ(reader.held(), 1U);
    reader.abort();  // the client went away
    EXPECT_EQ(reader.held(), 0U);
    EXPECT_EQ(waitChild(child), 0);
    ::close(sockets[0]);
    ::close(sockets[1]);
}

TEST(StreamTest, AFileIsHandedOverByDescriptor) {
    RouterSide router;
    prepareConsumer(*router.channel, kConsumer);
    router.queueRequest(false);
    int sockets[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sockets), 0);
    const std::string content = "0123456789 the body of a file served by sendfile";
    pid_t child = forkChild([&] {
        ConsumerSide consumer;
        if (!consumer.start(router)) {
            return 1;
        }
        char path[] = "/tmp/canopy-transport-file-XXXXXX";
        int file = ::mkstemp(path);
        if (file < 0 ||
            ::write(file, content.data(), content.size()) != static_cast<ssize_t>(content.size())) {
            return 2;
        }
        ::unlink(path);
        SegmentTable none;
        StreamWriter writer(*consumer.channel, consumer.responseStream(), kConsumerParty, none);
        // The descriptor goes first, so the router has it when it sees the entry.
        if (!sendPortMessage(sockets[1], PortMessageType::AppFile, 7, file) ||
            !writer.writeFile(7, 11, content.size() - 11) || !writer.finish()) {
            return 3;
        }
        releaseHead(consumer.router_segments, consumer.descriptor);
        return 0;
    });
    SegmentTable app_segments;
    StreamReader reader(*router.channel, router.response_stream, kRouterParty, app_segments);
    Doorbell bell = router.channel->doorbell(kRouterParty);
    Result<StreamEntry> entry = Error{};
    ASSERT_TRUE(waitUntil(bell, [&] {
        entry = reader.next();
        return entry.code() != Errc::WouldBlock;
    }));
    ASSERT_TRUE(entry.ok());
    ASSERT_EQ(entry->kind, EntryKind::File);
    auto received = receivePortMessageWaiting(sockets[0]);
    ASSERT_TRUE(received.ok());
    EXPECT_EQ(received->id, entry->file_token);
    int pipe_fds[2];
    ASSERT_EQ(::pipe(pipe_fds), 0);
    auto offset = static_cast<off_t>(entry->file_offset);
    ASSERT_EQ(::sendfile(pipe_fds[1], received->fd.get(), &offset, entry->file_length),
              static_cast<ssize_t>(entry->file_length));
    std::string got(entry->file_length, '\0');
    ASSERT_EQ(::read(pipe_fds[0], got.data(), got.size()), static_cast<ssize_t>(got.size()));
    EXPECT_EQ(got, content.substr(11));
    ASSERT_TRUE(reader.release().ok());
    EXPECT_TRUE(waitUntil(bell, [&] { return reader.next().code() == Errc::Closed; }));
    EXPECT_EQ(waitChild(child), 0);
    for (int fd : {pipe_fds[0], pipe_fds[1], sockets[0], sockets[1]}) {
        ::close(fd);
    }
}

TEST(StreamTest, AConsumerThatDiesHoldingChunksHasThemReclaimed) {
    RouterSide router;
    prepareConsumer(*router.channel, kConsumer);
    router.queueRequest(true);
    StreamWriter writer(*router.channel, router.request_stream, kRouterParty, router.pool.table());
    for (int count = 0; count < 5; ++count) {
        auto chunk = router.pool.allocate();
        ASSERT_TRUE(chunk.ok());
        ASSERT_TRUE(writer.writeChunk(*chunk).ok());
    }
    EXPECT_EQ(router.pool.table().usedChunks(), 6U);  // head + 5 body chunks
    pid_t child = forkChild([&] {
        ConsumerSide consumer;
        if (!consumer.start(router)) {
            return 1;
        }
        StreamReader reader(*consumer.channel, consumer.requestStream(), kConsumerParty,
                            consumer.router_segments);
        if (!reader.next() || !reader.next()) {
            return 2;
        }
        ::kill(::getpid(), SIGKILL);  // dies holding the head and two body chunks
        return 3;
    });
    EXPECT_EQ(waitChild(child), 128 + SIGKILL);
    EXPECT_EQ(router.channel->streamReader(router.request_stream), kConsumerParty);
    // The router declares the consumer dead: what it took comes back by
    // holder, what it never took comes back from the writer's own copies.
    EXPECT_EQ(router.pool.table().reclaim(holderOf(kConsumerParty)), 3U);
    EXPECT_EQ(writer.reclaimUnread(), 3U);
    EXPECT_EQ(router.pool.table().usedChunks(), 0U);
    router.channel->closeStream(router.request_stream);
    router.channel->closeStream(router.response_stream);
    EXPECT_EQ(router.channel->openStreams(), 0U);
}

TEST(StreamTest, ARequestCancelledWhileQueuedIsSkipped) {
    RouterSide router;
    prepareConsumer(*router.channel, kConsumer);
    router.queueRequest(true);
    // The client went away before any worker took the request.
    router.channel->closeStream(router.request_stream);
    router.channel->closeStream(router.response_stream);
    releaseHead(router.pool.table(), router.descriptor);
    pid_t child = forkChild([&] {
        auto channel = attachConsumer(*router.channel, kConsumer);
        SegmentTable router_segments;
        if (channel == nullptr ||
            !attachSegments(router.pool.table(), router_segments, kChunks16k)) {
            return 1;
        }
        auto taken = channel->takeRequest(router_segments, 5000);
        return taken.code() == Errc::Aborted ? 0 : 2;
    });
    EXPECT_EQ(waitChild(child), 0);
    EXPECT_EQ(router.pool.table().usedChunks(), 0U);
}

}  // namespace
}  // namespace canopy::transport
