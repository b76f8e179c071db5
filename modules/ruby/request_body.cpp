#include "request_body.h"

#include <canopy/app.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace canopy::ruby {

namespace {

// Pull from the router this much at a time.
constexpr size_t kPullSize = 64 * 1024;

bool writeAll(int fd, const char* data, size_t length, uint64_t offset) {
    while (length > 0) {
        ssize_t written = ::pwrite(fd, data, length, static_cast<off_t>(offset));
        if (written < 0) {
            if (errno == EINTR) {
                continue;
            }
            return false;
        }
        data += written;
        length -= static_cast<size_t>(written);
        offset += static_cast<uint64_t>(written);
    }
    return true;
}

}  // namespace

RequestBody::RequestBody(Source source, void* context, size_t memory_limit,
                         const char* temp_directory)
    : source_(source),
      context_(context),
      memory_limit_(memory_limit),
      temp_directory_(temp_directory) {}

RequestBody::~RequestBody() {
    if (file_ >= 0) {
        ::close(file_);
    }
}

int RequestBody::spill() {
    int fd = ::open(temp_directory_, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        // Filesystems without O_TMPFILE: a named file, unlinked at once.
        std::string name = std::string(temp_directory_) + "/canopy-rack-input-XXXXXX";
        fd = ::mkostemp(name.data(), O_CLOEXEC);
        if (fd >= 0) {
            ::unlink(name.c_str());
        }
    }
    if (fd < 0) {
        error_ = std::string("cannot create a temporary file for the request body in \"") +
                 temp_directory_ + "\": " + std::strerror(errno);
        return kStorageError;
    }
    if (!writeAll(fd, memory_.data(), memory_.size(), 0)) {
        error_ = std::string("cannot write the request body to a temporary file: ") +
                 std::strerror(errno);
        ::close(fd);
        return kStorageError;
    }
    file_ = fd;
    std::string().swap(memory_);
    return CANOPY_OK;
}

int RequestBody::pull() {
    // In memory the bytes land in place; once spilled, in the scratch buffer.
    char* chunk = nullptr;
    size_t before = memory_.size();
    if (file_ < 0) {
        memory_.resize(before + kPullSize);
        chunk = memory_.data() + before;
    } else {
        scratch_.resize(kPullSize);
        chunk = scratch_.data();
    }
    size_t got = 0;
    int rc = source_(context_, chunk, kPullSize, &got);
    if (file_ < 0) {
        memory_.resize(before + (rc == CANOPY_OK ? got : 0));
    }
    if (rc != CANOPY_OK) {
        return rc;
    }
    if (got == 0) {
        ended_ = true;
        return CANOPY_OK;
    }
    if (file_ < 0 && memory_.size() > memory_limit_) {
        // Everything so far, the new bytes included, goes to the file.
        received_ += got;
        return spill();
    }
    if (file_ >= 0 && !writeAll(file_, chunk, got, received_)) {
        error_ = std::string("cannot write the request body to a temporary file: ") +
                 std::strerror(errno);
        return kStorageError;
    }
    received_ += got;
    return CANOPY_OK;
}

int RequestBody::copyStored(char* buffer, size_t capacity, size_t* got) {
    auto length = static_cast<size_t>(std::min<uint64_t>(capacity, received_ - position_));
    if (file_ < 0) {
        std::memcpy(buffer, memory_.data() + position_, length);
        *got = length;
        position_ += length;
        return CANOPY_OK;
    }
    ssize_t count = 0;
    do {
        count = ::pread(file_, buffer, length, static_cast<off_t>(position_));
    } while (count < 0 && errno == EINTR);
    if (count <= 0) {
        error_ = std::string("cannot read the request body back from its temporary file: ") +
                 (count < 0 ? std::strerror(errno) : "it is shorter than what was written");
        return kStorageError;
    }
    *got = static_cast<size_t>(count);
    position_ += static_cast<uint64_t>(count);
    return CANOPY_OK;
}

int RequestBody::read(char* buffer, size_t capacity, size_t* got) {
    *got = 0;
    if (capacity == 0) {
        return CANOPY_OK;
    }
    if (position_ == received_ && !ended_) {
        if (int rc = pull(); rc != CANOPY_OK) {
            return rc;
        }
    }
    if (position_ == received_) {
        return CANOPY_OK;  // the end
    }
    return copyStored(buffer, capacity, got);
}

int RequestBody::readLine(std::string& line) {
    char block[8192];
    for (;;) {
        size_t got = 0;
        if (int rc = read(block, sizeof block, &got); rc != CANOPY_OK) {
            return rc;
        }
        if (got == 0) {
            return CANOPY_OK;
        }
        if (const void* newline = std::memchr(block, '\n', got)) {
            size_t length = static_cast<size_t>(static_cast<const char*>(newline) - block) + 1;
            line.append(block, length);
            position_ -= got - length;  // stored: served again by the next read
            return CANOPY_OK;
        }
        line.append(block, got);
    }
}

}  // namespace canopy::ruby
