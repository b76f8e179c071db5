#include "canopy/transport/request_queue.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "canopy/transport/channel.h"
#include "fork_helper.h"

namespace canopy::transport {
namespace {

using testing::forkChild;
using testing::waitChild;

std::unique_ptr<Channel> makeChannel(ChannelGeometry geometry = {}) {
    auto channel = Channel::create(geometry);
    EXPECT_TRUE(channel.ok());
    return std::move(*channel);
}

RequestDescriptor requestNumbered(uint64_t id) {
    RequestDescriptor descriptor;
    descriptor.request_id = id;
    return descriptor;
}

TEST(RequestQueueTest, FirstInFirstOutUntilFullThenEmpty) {
    ChannelGeometry geometry;
    geometry.queue_capacity = 8;
    auto channel = makeChannel(geometry);
    RequestQueue& queue = channel->queue();
    EXPECT_EQ(queue.take().code(), Errc::WouldBlock);
    for (uint64_t id = 1; id <= 8; ++id) {
        ASSERT_TRUE(queue.push(requestNumbered(id)).ok());
    }
    EXPECT_EQ(queue.push(requestNumbered(9)).code(), Errc::WouldBlock);
    EXPECT_EQ(queue.approximateSize(), 8U);
    for (uint64_t id = 1; id <= 8; ++id) {
        auto taken = queue.take();
        ASSERT_TRUE(taken.ok());
        EXPECT_EQ(taken->request_id, id);
    }
    EXPECT_EQ(queue.take().code(), Errc::WouldBlock);
    // The ring wraps around.
    ASSERT_TRUE(queue.push(requestNumbered(10)).ok());
    EXPECT_EQ(queue.take()->request_id, 10U);
}

// A nudge (sent when a consumer died, in case it held a ticket) on an empty
// queue is dropped by the first consumer that looks: idle consumers then
// sleep instead of passing the ticket around forever.
TEST(RequestQueueTest, ANudgeOnAnEmptyQueueIsDroppedNotPassedOn) {
    auto channel = makeChannel();
    RequestQueue& queue = channel->queue();
    queue.nudge();
    EXPECT_EQ(queue.take().code(), Errc::WouldBlock);
    auto started = std::chrono::steady_clock::now();
    EXPECT_EQ(queue.takeWait(100).code(), Errc::WouldBlock);
    EXPECT_GE(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(90));
    ASSERT_TRUE(queue.push(requestNumbered(7)).ok());
    queue.nudge();
    EXPECT_EQ(queue.take()->request_id, 7U);
    EXPECT_EQ(queue.take().code(), Errc::WouldBlock);
}

TEST(RequestQueueTest, AnIdleConsumerSleepsUntilARequestArrives) {
    auto channel = makeChannel();
    pid_t child = forkChild([&] {
        auto taken = channel->queue().takeWait(5000);
        return taken.ok() && taken->request_id == 42 ? 0 : 1;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let it block
    ASSERT_TRUE(channel->queue().push(requestNumbered(42)).ok());
    EXPECT_EQ(waitChild(child), 0);
    EXPECT_EQ(channel->queue().takeWait(10).code(), Errc::WouldBlock);  // timeout
}

// Several producer threads, several consumer processes: every request is
// taken exactly once, and the work spreads over all consumers.
TEST(RequestQueueTest, ProducerThreadsAndConsumerProcessesShareTheWork) {
    ChannelGeometry geometry;
    geometry.queue_capacity = 256;
    auto channel = makeChannel(geometry);
    constexpr int kConsumers = 4;
    constexpr int kProducers = 3;
    constexpr uint64_t kPerProducer = 5000;
    constexpr uint64_t kTotal = kProducers * kPerProducer;
    // Per request, how often it was taken; per consumer, how many it took.
    auto* seen = static_cast<std::atomic<uint32_t>*>(
        ::mmap(nullptr, sizeof(std::atomic<uint32_t>) * (kTotal + 1 + kConsumers),
               PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
    ASSERT_NE(seen, MAP_FAILED);
    std::atomic<uint32_t>* per_consumer = seen + kTotal + 1;

    std::vector<pid_t> consumers;
    for (int consumer = 0; consumer < kConsumers; ++consumer) {
        consumers.push_back(forkChild([&, consumer] {
            for (;;) {
                auto taken = channel->queue().takeWait(10000);
                if (!taken) {
                    return 1;
                }
                if (taken->request_id == 0) {
                    return 0;  // stop
                }
                if (taken->request_id > kTotal) {
                    return 2;
                }
                seen[taken->request_id].fetch_add(1);
                per_consumer[consumer].fetch_add(1);
                // A little work, as a real request would take.
                auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(20);
                while (std::chrono::steady_clock::now() < until) {
                }
            }
        }));
    }
    std::vector<std::thread> producers;
    for (int producer = 0; producer < kProducers; ++producer) {
        producers.emplace_back([&, producer] {
            for (uint64_t index = 0; index < kPerProducer;) {
                uint64_t id = producer * kPerProducer + index + 1;
                auto pushed = channel->queue().push(requestNumbered(id));
                if (pushed.code() == Errc::WouldBlock) {
                    // The router would wait for its doorbell's queue bit.
                    std::this_thread::sleep_for(std::chrono::microseconds(50));
                    continue;
                }
                ASSERT_TRUE(pushed.ok());
                ++index;
            }
        });
    }
    for (auto& producer : producers) {
        producer.join();
    }
    for (int consumer = 0; consumer < kConsumers; ++consumer) {
        while (channel->queue().push(requestNumbered(0)).code() == Errc::WouldBlock) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    }
    for (pid_t consumer : consumers) {
        EXPECT_EQ(waitChild(consumer), 0);
    }
    for (uint64_t id = 1; id <= kTotal; ++id) {
        ASSERT_EQ(seen[id].load(), 1U) << "request " << id;
    }
    for (int consumer = 0; consumer < kConsumers; ++consumer) {
        std::printf("[ figures  ] consumer %d took %u of %lu\n", consumer,
                    per_consumer[consumer].load(), static_cast<unsigned long>(kTotal));
        EXPECT_GT(per_consumer[consumer].load(), kTotal / kConsumers / 4);
    }
    ::munmap(seen, sizeof(std::atomic<uint32_t>) * (kTotal + 1 + kConsumers));
}

}  // namespace
}  // namespace canopy::transport
