// A consumer is an untrusted process: here one writes random bytes over the
// whole channel and over the router's segment while the router keeps
// working. The router must never crash or touch memory out of bounds (run
// under the asan preset to check the latter); errors are fine.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <chrono>
#include <cstring>
#include <random>

#include "canopy/transport/channel.h"
#include "canopy/transport/request_head.h"
#include "canopy/transport/stream.h"
#include "fork_helper.h"

namespace canopy::transport {
namespace {

using testing::forkChild;
using testing::waitChild;

void scribble(std::byte* base, size_t size, std::mt19937_64& random) {
    for (int count = 0; count < 4096; ++count) {
        size_t offset = random() % (size / 8) * 8;
        uint64_t value = random();
        // Sometimes small numbers: they pass more checks and go deeper.
        if (count % 3 == 0) {
            value %= 64;
        }
        std::memcpy(base + offset, &value, 8);
    }
}

std::byte* mapWhole(int fd, size_t size) {
    void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    return base == MAP_FAILED ? nullptr : static_cast<std::byte*>(base);
}

TEST(HostileTest, RandomBytesFromAConsumerNeverCrashTheRouter) {
    ChannelGeometry geometry;
    geometry.queue_capacity = 64;
    geometry.stream_slots = 64;
    geometry.max_consumers = 4;
    auto created = Channel::create(geometry);
    ASSERT_TRUE(created.ok());
    Channel& channel = **created;
    ASSERT_TRUE(channel.consumerEventFd(0).ok());
    SegmentGeometry segment_geometry{4096, 64};
    SegmentPool pool(segment_geometry, holderOf(kRouterParty));
    ASSERT_TRUE(pool.reserve(1).ok());
    // A second pool stands for an app's segments the router reads from.
    SegmentPool app_pool(segment_geometry, holderOf(consumerParty(0)));
    ASSERT_TRUE(app_pool.reserve(1).ok());

    int stop[2];
    ASSERT_EQ(::pipe(stop), 0);
    pid_t child = forkChild([&] {
        ::close(stop[1]);
        std::byte* channel_memory = mapWhole(channel.memoryFd(), geometry.size());
        std::byte* segment = mapWhole(pool.table().find(0)->fd(), segment_geometry.mappedSize());
        std::byte* app_segment =
            mapWhole(app_pool.table().find(0)->fd(), segment_geometry.mappedSize());
        if (channel_memory == nullptr || segment == nullptr || app_segment == nullptr) {
            return 1;
        }
        std::mt19937_64 random(::getpid());
        ::fcntl(stop[0], F_SETFL, O_NONBLOCK);
        char byte;
        while (::read(stop[0], &byte, 1) < 0) {
            scribble(channel_memory, geometry.size(), random);
            scribble(segment, segment_geometry.mappedSize(), random);
            scribble(app_segment, segment_geometry.mappedSize(), random);
        }
        return 0;
    });
    ::close(stop[0]);

    std::mt19937_64 random(1);
    Doorbell bell = channel.doorbell(kRouterParty);
    uint64_t operations = 0;
    uint64_t errors = 0;
    auto count = [&](Errc code) {
        ++operations;
        errors += code != Errc{} ? 1 : 0;
    };
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
    while (std::chrono::steady_clock::now() < deadline) {
        auto request = channel.openStream(kRouterParty, kNoParty);
        auto response = channel.openStream(kNoParty, kRouterParty);
        ASSERT_TRUE(request.ok() && response.ok());

        RequestDescriptor descriptor;
        descriptor.request_stream = request->slot;
        descriptor.response_stream = response->slot;
        RequestHead head;
        head.method = "GET";
        head.fields = {{"Host", "x"}};
        auto stored = storeHead(pool, head, {}, descriptor);
        count(stored.code());
        count(channel.queue().push(descriptor).code());

        StreamWriter writer(channel, *request, kRouterParty, pool.table());
        for (int chunk_count = 0; chunk_count < 4; ++chunk_count) {
            auto chunk = pool.allocate();
            count(chunk.code());
            if (chunk) {
                auto written = writer.writeChunk(*chunk);
                count(written.code());
                if (!written) {
                    pool.table().release(*chunk);
                }
            }
        }
        count(writer.credit().code());
        writer.abort();
        writer.reclaimUnread();

        StreamReader reader(channel, *response, kRouterParty, app_pool.table());
        for (int entry_count = 0; entry_count < 4; ++entry_count) {
            auto entry = reader.next();
            count(entry.code());
            if (entry) {
                auto bytes = reader.data(*entry);
                volatile std::byte sink{};
                for (std::byte byte : bytes) {
                    sink = byte;
                }
                (void)sink;
                count(reader.release().code());
            }
        }
        reader.abort();

        // The router reading a head back, as if it came from a peer.
        std::vector<std::byte> storage;
        count(loadHead(pool.table(), descriptor, storage).code());
        if (stored) {
            releaseHead(pool.table(), descriptor);
        }
        bell.collect([&](uint32_t bit) { ASSERT_LT(bit, geometry.doorbellBits()); });
        // A consumer's ops, too: the app library must survive a broken
        // channel as well (it trusts the router, but not the memory).
        count(channel.queue().take().code());
        pool.table().reclaim(holderOf(consumerParty(0)));

        channel.closeStream(*request);
        channel.closeStream(*response);
    }
    ASSERT_EQ(::write(stop[1], "x", 1), 1);
    ::close(stop[1]);
    EXPECT_EQ(waitChild(child), 0);
    std::printf("[ figures  ] %lu operations under scribbling, %lu refused\n",
                static_cast<unsigned long>(operations), static_cast<unsigned long>(errors));
    EXPECT_GT(operations, 1000U);
}

}  // namespace
}  // namespace canopy::transport
