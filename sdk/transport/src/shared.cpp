#include "shared.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace canopy::transport {

const char* errcName(Errc code) {
    switch (code) {
        case Errc::WouldBlock:
            return "would-block";
        case Errc::Exhausted:
            return "exhausted";
        case Errc::Corrupt:
            return "corrupt";
        case Errc::Aborted:
            return "aborted";
        case Errc::Closed:
            return "closed";
        case Errc::Invalid:
            return "invalid";
        case Errc::TooLarge:
            return "too-large";
        case Errc::System:
            return "system";
    }
    return "unknown";
}

void resultMisused(const Error* error) {
    if (error != nullptr) {
        std::fprintf(stderr, "canopy transport: value() of a failed Result: %s: %s (errno %d)\n",
                     errcName(error->code), error->detail, error->system_errno);
    } else {
        std::fprintf(stderr, "canopy transport: error() of a successful Result\n");
    }
    std::abort();
}

Error systemError(const char* detail) {
    return Error{Errc::System, errno, detail};
}

namespace detail {

Result<FileDescriptor> createSealedMemory(const char* name, size_t size) {
    FileDescriptor fd(::memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING));
    if (!fd.valid()) {
        return systemError("memfd_create");
    }
    if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
        return systemError("ftruncate of a shared-memory file");
    }
    if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
        return systemError("sealing a shared-memory file");
    }
    return fd;
}

Result<std::byte*> mapSharedMemory(int fd, size_t size, bool check_seals) {
    struct stat status {};
    if (::fstat(fd, &status) != 0) {
        return systemError("fstat of a shared-memory file");
    }
    if (status.st_size < 0 || static_cast<size_t>(status.st_size) != size) {
        return Error{Errc::Invalid, 0, "shared-memory file has an unexpected size"};
    }
    if (check_seals) {
        int seals = ::fcntl(fd, F_GET_SEALS);
        if (seals < 0 || (seals & F_SEAL_SHRINK) == 0) {
            return Error{Errc::Invalid, 0, "shared-memory file is not sealed against shrinking"};
        }
    }
    void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        return systemError("mmap of a shared-memory file");
    }
    return static_cast<std::byte*>(base);
}

void unmapSharedMemory(std::byte* base, size_t size) {
    if (base != nullptr) {
        ::munmap(base, size);
    }
}

Result<FileDescriptor> createEventFd(bool semaphore) {
    int flags = EFD_CLOEXEC | EFD_NONBLOCK | (semaphore ? EFD_SEMAPHORE : 0);
    FileDescriptor fd(::eventfd(0, flags));
    if (!fd.valid()) {
        return systemError("eventfd");
    }
    return fd;
}

void signalEventFd(int fd) {
    if (fd < 0) {
        return;
    }
    uint64_t one = 1;
    // Only EINTR is worth a retry: EAGAIN means the counter is saturated, so
    // the waiter will wake anyway.
    while (::write(fd, &one, sizeof one) < 0 && errno == EINTR) {
    }
}

bool drainEventFd(int fd) {
    uint64_t value = 0;
    ssize_t got = 0;
    while ((got = ::read(fd, &value, sizeof value)) < 0 && errno == EINTR) {
    }
    return got == sizeof value;
}

Result<bool> waitReadable(int fd, int extra_fd, int timeout_ms) {
    pollfd fds[2] = {{fd, POLLIN, 0}, {extra_fd, POLLIN, 0}};
    nfds_t count = extra_fd >= 0 ? 2 : 1;
    for (;;) {
        int ready = ::poll(fds, count, timeout_ms);
        if (ready >= 0) {
            return ready > 0;
        }
        if (errno != EINTR) {
            return systemError("poll");
        }
    }
}

}  // namespace detail
}  // namespace canopy::transport
