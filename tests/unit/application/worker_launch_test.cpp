// Placing a worker's descriptors: in a forked child, as the prototype does.

#include "core/application/worker_launch.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <string>
#include <vector>

namespace canopy {
namespace {

// Runs `check` in a child after placeDescriptors(); the child's exit code is
// the first failing check's number, 0 when all passed.
int placeInChild(std::vector<int> received, std::vector<int> targets,
                 int (*check)(const std::vector<int>& targets)) {
    pid_t pid = ::fork();
    if (pid == 0) {
        if (!placeDescriptors(received, targets, -1, -1).ok()) {
            ::_exit(100);
        }
        ::_exit(check(targets));
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 200;
}

std::string nameOf(int fd) {
    std::array<char, 256> target{};
    std::string link = "/proc/self/fd/" + std::to_string(fd);
    ssize_t length = ::readlink(link.c_str(), target.data(), target.size() - 1);
    return length < 0 ? std::string() : std::string(target.data(), static_cast<size_t>(length));
}

int checkLanding(const std::vector<int>& targets) {
    // targets[i] holds the memfd named "canopy-<i>", inheritable.
    for (size_t index = 0; index < targets.size(); ++index) {
        if (nameOf(targets[index]) != "/memfd:canopy-" + std::to_string(index) + " (deleted)") {
            return 1 + static_cast<int>(index);
        }
        if ((::fcntl(targets[index], F_GETFD) & FD_CLOEXEC) != 0) {
            return 20;
        }
    }
    // Nothing else is open above 2.
    for (int fd = 3; fd < 1024; ++fd) {
        bool expected = false;
        for (int target : targets) {
            expected = expected || fd == target;
        }
        if (!expected && ::fcntl(fd, F_GETFD) >= 0) {
            return 30;
        }
    }
    return 0;
}

TEST(WorkerLaunchTest, DescriptorsLandOnTheirNumbersEvenWhenTheyCross) {
    std::vector<int> received;
    for (int index = 0; index < 3; ++index) {
        std::string name = "canopy-" + std::to_string(index);
        received.push_back(::memfd_create(name.c_str(), MFD_CLOEXEC));
    }
    // An unrelated descriptor that must not survive.
    int stray = ::open("/dev/null", O_RDONLY);
    ASSERT_GE(stray, 0);
    // Each goes where another one is now.
    std::vector<int> targets = {received[1], received[2], received[0]};
    EXPECT_EQ(placeInChild(received, targets, checkLanding), 0);
    // And far away from where they are.
    EXPECT_EQ(placeInChild(received, {200, 3, 150}, checkLanding), 0);
    for (int fd : received) {
        ::close(fd);
    }
    ::close(stray);
}

TEST(WorkerLaunchTest, ReservedNumbersAreRefused) {
    int fd = ::memfd_create("canopy-0", MFD_CLOEXEC);
    std::array<int, 1> received = {fd};
    std::array<int, 1> targets = {2};
    pid_t pid = ::fork();
    if (pid == 0) {
        ::_exit(placeDescriptors(received, targets, -1, -1).ok() ? 1 : 0);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    EXPECT_EQ(WEXITSTATUS(status), 0);
    ::close(fd);
}

}  // namespace
}  // namespace canopy
