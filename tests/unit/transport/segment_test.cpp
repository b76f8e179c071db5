#include "canopy/transport/segment.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

#include "fork_helper.h"

namespace canopy::transport {
namespace {

using testing::forkChild;
using testing::waitChild;

constexpr Holder kOwner = holderOf(0);
constexpr SegmentGeometry kSmall{4096, 64};

std::unique_ptr<Segment> makeSegment(const SegmentGeometry& geometry = kSmall) {
    auto segment = Segment::create(0, geometry);
    EXPECT_TRUE(segment.ok()) << (segment.ok() ? "" : segment.error().detail);
    return std::move(*segment);
}

TEST(SegmentTest, GeometryIsValidated) {
    EXPECT_TRUE((SegmentGeometry{16384, 640}).valid());
    EXPECT_FALSE((SegmentGeometry{1000, 64}).valid());  // not a power of two
    EXPECT_FALSE((SegmentGeometry{2048, 64}).valid());  // below the minimum
    EXPECT_FALSE((SegmentGeometry{16384, 0}).valid());
    EXPECT_FALSE((SegmentGeometry{1 << 20, 65536}).valid());  // over 1 GiB
    EXPECT_EQ(Segment::create(0, SegmentGeometry{1000, 1}).code(), Errc::Invalid);
}

TEST(SegmentTest, AllocatesEveryChunkOnceThenWouldBlockThenRecovers) {
    auto segment = makeSegment();
    std::set<uint32_t> indices;
    std::vector<ChunkRef> refs;
    for (uint32_t count = 0; count < kSmall.chunk_count; ++count) {
        auto chunk = segment->allocate(kOwner);
        ASSERT_TRUE(chunk.ok());
        EXPECT_TRUE(indices.insert(chunk->index).second);
        refs.push_back(*chunk);
    }
    EXPECT_EQ(segment->allocate(kOwner).code(), Errc::WouldBlock);
    EXPECT_EQ(segment->usedChunks(), kSmall.chunk_count);

    ASSERT_TRUE(segment->release(refs[7]));
    auto again = segment->allocate(kOwner);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->index, refs[7].index);
    EXPECT_NE(again->generation, refs[7].generation);
}

TEST(SegmentTest, StaleAndDoubleReleasesAreRefused) {
    auto segment = makeSegment();
    auto chunk = segment->allocate(kOwner);
    ASSERT_TRUE(chunk.ok());
    EXPECT_TRUE(segment->release(*chunk));
    EXPECT_FALSE(segment->release(*chunk));  // double
    auto reused = segment->allocate(kOwner);
    ASSERT_TRUE(reused.ok());
    ASSERT_EQ(reused->index, chunk->index);
    EXPECT_FALSE(segment->release(*chunk));  // stale generation
    EXPECT_EQ(segment->usedChunks(), 1U);
    ChunkRef out_of_range = *reused;
    out_of_range.index = kSmall.chunk_count;
    EXPECT_FALSE(segment->release(out_of_range));
    EXPECT_TRUE(segment->data(out_of_range).empty());
    ChunkRef too_long = *reused;
    too_long.length = kSmall.chunk_size + 1;
    EXPECT_FALSE(segment->validRef(too_long));
}

TEST(SegmentTest, AnotherProcessFreesWhatItConsumed) {
    auto segment = makeSegment();
    std::vector<ChunkRef> refs;
    for (uint32_t count = 0; count < kSmall.chunk_count; ++count) {
        auto chunk = segment->allocate(kOwner);
        ASSERT_TRUE(chunk.ok());
        std::memset(segment->chunk(chunk->index).data(), static_cast<int>(count), 16);
        refs.push_back(*chunk);
    }
    // The child maps the segment afresh from its fd, as a peer would.
    int fd = ::dup(segment->fd());
    pid_t child = forkChild([&] {
        auto peer = Segment::attach(0, FileDescriptor(fd), kSmall);
        if (!peer) {
            return 1;
        }
        for (uint32_t count = 0; count < kSmall.chunk_count; count += 2) {
            ChunkRef ref = refs[count];
            ref.length = 16;
            if ((*peer)->data(ref)[0] != static_cast<std::byte>(count)) {
                return 2;
            }
            if (!(*peer)->release(ref)) {
                return 3;
            }
        }
        return 0;
    });
    ::close(fd);
    ASSERT_EQ(waitChild(child), 0);
    EXPECT_EQ(segment->usedChunks(), kSmall.chunk_count / 2);
    for (uint32_t count = 0; count < kSmall.chunk_count / 2; ++count) {
        EXPECT_TRUE(segment->allocate(kOwner).ok());
    }
    EXPECT_EQ(segment->allocate(kOwner).code(), Errc::WouldBlock);
}

TEST(SegmentTest, AttachRefusesWrongSizeAndUnsealedFiles) {
    auto segment = makeSegment();
    EXPECT_EQ(
        Segment::attach(0, FileDescriptor(::dup(segment->fd())), SegmentGeometry{4096, 32}).code(),
        Errc::Invalid);
    // An unsealed file could be truncated under our mapping (SIGBUS).
    int unsealed = ::memfd_create("unsealed", MFD_CLOEXEC);
    ASSERT_GE(unsealed, 0);
    ASSERT_EQ(::ftruncate(unsealed, static_cast<off_t>(kSmall.mappedSize())), 0);
    EXPECT_EQ(Segment::attach(0, FileDescriptor(unsealed), kSmall).code(), Errc::Invalid);
    // A sealed one cannot be shrunk by the peer.
    EXPECT_NE(::ftruncate(segment->fd(), 4096), 0);
}

TEST(SegmentTest, ChunksOfADeadHolderAreReclaimed) {
    auto segment = makeSegment();
    std::vector<ChunkRef> refs;
    for (int count = 0; count < 10; ++count) {
        auto chunk = segment->allocate(kOwner);
        ASSERT_TRUE(chunk.ok());
        refs.push_back(*chunk);
    }
    constexpr Holder kConsumer = holderOf(3);
    pid_t child = forkChild([&] {
        for (const ChunkRef& ref : refs) {
            if (!segment->transfer(ref, kOwner, kConsumer)) {
                return 1;
            }
        }
        ::_exit(0);  // dies holding all ten
    });
    ASSERT_EQ(waitChild(child), 0);
    EXPECT_EQ(segment->usedChunks(), 10U);
    EXPECT_FALSE(segment->releaseIfHeld(refs[0], kOwner));  // not the owner's any more
    EXPECT_EQ(segment->reclaim(kConsumer), 10U);
    EXPECT_EQ(segment->usedChunks(), 0U);
    EXPECT_EQ(segment->reclaim(kConsumer), 0U);
}

TEST(SegmentTest, ConcurrentAllocationAndRemoteFreeNeverHandOutAChunkTwice) {
    SegmentGeometry geometry{4096, 256};
    auto segment = makeSegment(geometry);
    int refs_pipe[2];
    ASSERT_EQ(::pipe(refs_pipe), 0);
    constexpr int kThreads = 4;
    constexpr int kPerThread = 50000;
    pid_t child = forkChild([&] {
        ::close(refs_pipe[1]);
        ChunkRef ref;
        while (::read(refs_pipe[0], &ref, sizeof ref) == sizeof ref) {
            // Each chunk carries its own ref; another owner of the same chunk
            // would have overwritten it.
            ChunkRef stamped;
            std::memcpy(&stamped, segment->chunk(ref.index).data(), sizeof stamped);
            if (std::memcmp(&stamped, &ref, sizeof ref) != 0) {
                return 1;
            }
            if (!segment->release(ref)) {
                return 2;
            }
        }
        return 0;
    });
    ::close(refs_pipe[0]);
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    for (int thread = 0; thread < kThreads; ++thread) {
        threads.emplace_back([&] {
            for (int count = 0; count < kPerThread;) {
                auto chunk = segment->allocate(kOwner);
                if (chunk.code() == Errc::WouldBlock) {
                    std::this_thread::yield();
                    continue;
                }
                if (!chunk) {
                    ++failures;
                    return;
                }
                std::memcpy(segment->chunk(chunk->index).data(), &*chunk, sizeof(ChunkRef));
                // Pipe writes of 16 bytes are atomic, so threads do not interleave.
                if (::write(refs_pipe[1], &*chunk, sizeof(ChunkRef)) != sizeof(ChunkRef)) {
                    ++failures;
                    return;
                }
                ++count;
            }
        });
    }
    for (auto& thread : threads) {
        thread.join();
    }
    ::close(refs_pipe[1]);
    EXPECT_EQ(waitChild(child), 0);
    EXPECT_EQ(failures.load(), 0);
    EXPECT_EQ(segment->usedChunks(), 0U);
}

TEST(SegmentTest, AllocationCost) {
    auto segment = makeSegment(SegmentGeometry{16384, 640});
    constexpr int kRounds = 1000000;
    auto start = std::chrono::steady_clock::now();
    for (int round = 0; round < kRounds; ++round) {
        auto chunk = segment->allocate(kOwner);
        ASSERT_TRUE(chunk.ok());
        ASSERT_TRUE(segment->release(*chunk));
    }
    auto elapsed =
        std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start);
    std::printf("[ figures  ] allocate + release: %.1f ns per pair\n", elapsed.count() / kRounds);
}

TEST(SegmentPoolTest, GrowsToItsBudgetThenWaitsForAFree) {
    SegmentGeometry geometry{4096, 16};
    SegmentPool pool(geometry, kOwner, 2 * geometry.mappedSize());
    EXPECT_EQ(pool.maxSegments(), 2U);
    std::vector<ChunkRef> refs;
    for (;;) {
        auto chunk = pool.allocate();
        if (!chunk) {
            EXPECT_EQ(chunk.code(), Errc::WouldBlock);
            break;
        }
        refs.push_back(*chunk);
    }
    EXPECT_EQ(refs.size(), 32U);
    EXPECT_EQ(pool.segmentsCreated(), 2U);
    EXPECT_TRUE(pool.table().release(refs[20]));
    auto again = pool.allocate();
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->segment, refs[20].segment);
    for (const ChunkRef& ref : refs) {
        pool.table().release(ref);
    }
    pool.table().release(*again);
    EXPECT_EQ(pool.table().usedChunks(), 0U);
}

}  // namespace
}  // namespace canopy::transport
