#include "request_body.h"

#include <canopy/app.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace canopy::ruby {
namespace {

// A body source that hands out fixed pieces, then the end; it can fail
// once or report an interrupt once.
struct FakeSource {
    std::vector<std::string> pieces;
    size_t next = 0;
    size_t calls = 0;
    int fail_once = CANOPY_OK;

    static int read(void* context, char* buffer, size_t capacity, size_t* got) {
        auto* source = static_cast<FakeSource*>(context);
        ++source->calls;
        if (source->fail_once != CANOPY_OK) {
            int rc = source->fail_once;
            source->fail_once = CANOPY_OK;
            return rc;
        }
        *got = 0;
        if (source->next < source->pieces.size()) {
            std::string& piece = source->pieces[source->next];
            *got = std::min(capacity, piece.size());
            piece.copy(buffer, *got);
            piece.erase(0, *got);
            if (piece.empty()) {
                ++source->next;
            }
        }
        return CANOPY_OK;
    }
};

std::string readAll(RequestBody& body, size_t step) {
    std::string all;
    std::string buffer(step, '\0');
    for (;;) {
        size_t got = 0;
        EXPECT_EQ(body.read(buffer.data(), step, &got), CANOPY_OK);
        if (got == 0) {
            return all;
        }
        all.append(buffer.data(), got);
    }
}

TEST(RequestBody, ReadsInPiecesAndRewindsFromMemory) {
    FakeSource source{{"hello ", "world"}};
    RequestBody body(FakeSource::read, &source, 1024, "/tmp");
    EXPECT_EQ(readAll(body, 4), "hello world");
    EXPECT_EQ(body.position(), 11U);
    EXPECT_FALSE(body.spilled());
    size_t calls = source.calls;
    body.rewind();
    EXPECT_EQ(readAll(body, 3), "hello world");
    EXPECT_EQ(source.calls, calls);  // served from storage, not read again
}

TEST(RequestBody, SpillsBeyondTheLimitAndReadsBackFromTheFile) {
    std::string large;
    for (int index = 0; index < 300000; ++index) {
        large += static_cast<char>('a' + index % 26);
    }
    FakeSource source{{large.substr(0, 100000), large.substr(100000)}};
    RequestBody body(FakeSource::read, &source, 64 * 1024, "/tmp");
    EXPECT_EQ(readAll(body, 10000), large);
    EXPECT_TRUE(body.spilled());
    EXPECT_EQ(body.received(), large.size());
    body.rewind();
    EXPECT_EQ(readAll(body, 65536), large);
}

TEST(RequestBody, LinesAcrossPiecesAndTheSpill) {
    std::string text = "first line\nsecond";
    std::string long_line(70000, 'x');
    FakeSource source{{text, " continues\n", long_line + "\n", "no newline at the end"}};
    RequestBody body(FakeSource::read, &source, 1000, "/tmp");
    std::vector<std::string> lines;
    for (;;) {
        std::string line;
        ASSERT_EQ(body.readLine(line), CANOPY_OK);
        if (line.empty()) {
            break;
        }
        lines.push_back(line);
    }
    ASSERT_EQ(lines.size(), 4U);
    EXPECT_EQ(lines[0], "first line\n");
    EXPECT_EQ(lines[1], "second continues\n");
    EXPECT_EQ(lines[2], long_line + "\n");
    EXPECT_EQ(lines[3], "no newline at the end");
    EXPECT_TRUE(body.spilled());
    // A read after a line starts right after it.
    body.rewind();
    std::string line;
    ASSERT_EQ(body.readLine(line), CANOPY_OK);
    char rest[6] = {};
    size_t got = 0;
    ASSERT_EQ(body.read(rest, 6, &got), CANOPY_OK);
    EXPECT_EQ(std::string(rest, got), "second");
}

TEST(RequestBody, SourceFailuresReachTheCallerAndLoseNothing) {
    FakeSource source{{"abc"}};
    source.fail_once = CANOPY_AGAIN;  // an interrupt: the caller retries
    RequestBody body(FakeSource::read, &source, 1024, "/tmp");
    char buffer[8];
    size_t got = 99;
    EXPECT_EQ(body.read(buffer, sizeof buffer, &got), CANOPY_AGAIN);
    EXPECT_EQ(got, 0U);
    EXPECT_EQ(readAll(body, 8), "abc");

    FakeSource closed{{"x"}};
    closed.fail_once = CANOPY_CLOSED;
    RequestBody aborted(FakeSource::read, &closed, 1024, "/tmp");
    EXPECT_EQ(aborted.read(buffer, sizeof buffer, &got), CANOPY_CLOSED);
}

TEST(RequestBody, AnUnusableTemporaryDirectoryIsAnError) {
    FakeSource source{{std::string(5000, 'z')}};
    RequestBody body(FakeSource::read, &source, 100, "/nonexistent-canopy-directory");
    char buffer[16];
    size_t got = 0;
    EXPECT_EQ(body.read(buffer, sizeof buffer, &got), RequestBody::kStorageError);
    EXPECT_NE(body.error().find("/nonexistent-canopy-directory"), std::string::npos)
        << body.error();
}

TEST(RequestBody, AnEmptyBodyEndsAtOnce) {
    FakeSource source{};
    RequestBody body(FakeSource::read, &source, 1024, "/tmp");
    std::string line;
    EXPECT_EQ(body.readLine(line), CANOPY_OK);
    EXPECT_TRUE(line.empty());
    EXPECT_EQ(readAll(body, 4), "");
}

}  // namespace
}  // namespace canopy::ruby
