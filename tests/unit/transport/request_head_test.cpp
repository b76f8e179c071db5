#include "canopy/transport/request_head.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "canopy/transport/channel.h"

namespace canopy::transport {
namespace {

RequestHead sampleHead() {
    RequestHead head;
    head.method = "POST";
    head.target = "/upload/a%20b?x=1&y=2";
    head.path = "/upload/a b";
    head.query = "x=1&y=2";
    head.version = "HTTP/1.1";
    head.remote = "192.0.2.7";
    head.local_address = "127.0.0.1";
    head.server_name = "example.com";
    head.app_target = "admin";
    head.local_port = 8080;
    head.tls = true;
    head.content_length = 12345;
    head.fields = {{"Host", "example.com:8080"},
                   {"Content-Length", "12345"},
                   {"X-Empty", ""},
                   {"Cookie", "a=1"},
                   {"Cookie", "b=2"}};
    return head;
}

void expectSameHead(const RequestHead& actual, const RequestHead& expected) {
    EXPECT_EQ(actual.method, expected.method);
    EXPECT_EQ(actual.target, expected.target);
    EXPECT_EQ(actual.path, expected.path);
    EXPECT_EQ(actual.query, expected.query);
    EXPECT_EQ(actual.version, expected.version);
    EXPECT_EQ(actual.remote, expected.remote);
    EXPECT_EQ(actual.local_address, expected.local_address);
    EXPECT_EQ(actual.server_name, expected.server_name);
    EXPECT_EQ(actual.app_target, expected.app_target);
    EXPECT_EQ(actual.local_port, expected.local_port);
    EXPECT_EQ(actual.tls, expected.tls);
    EXPECT_EQ(actual.content_length, expected.content_length);
    ASSERT_EQ(actual.fields.size(), expected.fields.size());
    for (size_t index = 0; index < expected.fields.size(); ++index) {
        EXPECT_EQ(actual.fields[index].name, expected.fields[index].name);
        EXPECT_EQ(actual.fields[index].value, expected.fields[index].value);
    }
}

TEST(RequestHeadTest, RoundTrips) {
    RequestHead head = sampleHead();
    std::vector<std::byte> buffer(encodedSize(head));
    auto written = encodeHead(head, buffer);
    ASSERT_TRUE(written.ok());
    EXPECT_EQ(*written, buffer.size());
    auto decoded = decodeHead(buffer);
    ASSERT_TRUE(decoded.ok());
    expectSameHead(*decoded, head);
}

TEST(RequestHeadTest, RefusesABufferTooSmall) {
    RequestHead head = sampleHead();
    std::vector<std::byte> buffer(encodedSize(head) - 1);
    EXPECT_EQ(encodeHead(head, buffer).code(), Errc::TooLarge);
}

TEST(RequestHeadTest, EveryTruncationAndExtensionIsRefused) {
    RequestHead head = sampleHead();
    std::vector<std::byte> buffer(encodedSize(head));
    ASSERT_TRUE(encodeHead(head, buffer).ok());
    for (size_t length = 0; length < buffer.size(); ++length) {
        EXPECT_EQ(decodeHead(std::span(buffer).first(length)).code(), Errc::Corrupt) << length;
    }
    buffer.push_back(std::byte{0});
    EXPECT_EQ(decodeHead(buffer).code(), Errc::Corrupt);
}

TEST(RequestHeadTest, RandomAndMutatedInputNeverEscapesTheBuffer) {
    RequestHead head = sampleHead();
    std::vector<std::byte> valid(encodedSize(head));
    ASSERT_TRUE(encodeHead(head, valid).ok());
    std::mt19937_64 random(7);
    for (int round = 0; round < 200000; ++round) {
        std::vector<std::byte> input = valid;
        if (round % 2 == 0) {
            // Flip a few bytes of a valid head: lengths and counts go wild.
            for (int flips = 0; flips < 3; ++flips) {
                input[random() % input.size()] = static_cast<std::byte>(random());
            }
        } else {
            input.resize(random() % 256);
            for (auto& byte : input) {
                byte = static_cast<std::byte>(random());
            }
        }
        auto decoded = decodeHead(input);
        if (decoded) {
            // Anything accepted lies inside the input.
            const char* begin = reinterpret_cast<const char*>(input.data());
            const char* end = begin + input.size();
            for (const auto& field : decoded->fields) {
                ASSERT_GE(field.name.data(), begin);
                ASSERT_LE(field.value.data() + field.value.size(), end);
            }
        }
    }
}

TEST(RequestHeadTest, SpansChunksWithThePrereadBody) {
    SegmentGeometry geometry{4096, 64};
    SegmentPool pool(geometry, holderOf(kRouterParty));
    RequestHead head = sampleHead();
    std::string big(6000, 'v');  // the head alone needs two chunks
    head.fields.push_back({"X-Big", big});
    std::vector<std::byte> preread(3000);
    for (size_t index = 0; index < preread.size(); ++index) {
        preread[index] = static_cast<std::byte>(index * 7);
    }
    RequestDescriptor descriptor;
    ASSERT_TRUE(storeHead(pool, head, preread, descriptor).ok());
    EXPECT_EQ(descriptor.head_chunk_count, 3U);

    std::vector<std::byte> storage;
    auto loaded = loadHead(pool.table(), descriptor, storage);
    ASSERT_TRUE(loaded.ok());
    expectSameHead(*loaded, head);
    std::vector<std::byte> body;
    ASSERT_TRUE(loadPreread(pool.table(), descriptor, body).ok());
    EXPECT_EQ(body, preread);

    // Lengths that do not add up are refused, not followed.
    RequestDescriptor lying = descriptor;
    lying.preread_length += 1;
    EXPECT_EQ(loadHead(pool.table(), lying, storage).code(), Errc::Corrupt);
    lying = descriptor;
    lying.head_chunk_count = 9;
    EXPECT_EQ(loadPreread(pool.table(), lying, body).code(), Errc::Corrupt);

    releaseHead(pool.table(), descriptor);
    EXPECT_EQ(pool.table().usedChunks(), 0U);
}

TEST(RequestHeadTest, SmallHeadUsesOneChunkAndTooBigIsRefused) {
    SegmentGeometry geometry{4096, 64};
    SegmentPool pool(geometry, holderOf(kRouterParty));
    RequestDescriptor descriptor;
    ASSERT_TRUE(storeHead(pool, sampleHead(), {}, descriptor).ok());
    EXPECT_EQ(descriptor.head_chunk_count, 1U);
    releaseHead(pool.table(), descriptor);

    RequestHead huge = sampleHead();
    std::string value(5 * 4096, 'x');
    huge.fields.push_back({"X-Huge", value});
    EXPECT_EQ(storeHead(pool, huge, {}, descriptor).code(), Errc::TooLarge);
    EXPECT_EQ(pool.table().usedChunks(), 0U);
}

}  // namespace
}  // namespace canopy::transport
