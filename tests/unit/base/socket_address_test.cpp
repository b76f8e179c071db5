#include "core/base/socket_address.h"

#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>

namespace canopy {
namespace {

TEST(SocketAddressTest, ParsesUnitsForms) {
    auto any = parseSocketAddress("*:8080");
    ASSERT_TRUE(any.ok());
    EXPECT_EQ(any->family(), AF_INET);
    EXPECT_FALSE(any->loopback());
    auto local = parseSocketAddress("127.0.0.1:80");
    ASSERT_TRUE(local.ok());
    EXPECT_TRUE(local->loopback());
    auto six = parseSocketAddress("[::1]:8443");
    ASSERT_TRUE(six.ok());
    EXPECT_EQ(six->family(), AF_INET6);
    EXPECT_TRUE(six->loopback());
    auto path = parseSocketAddress("unix:/run/app.sock");
    ASSERT_TRUE(path.ok());
    EXPECT_EQ(path->unixPath(), "/run/app.sock");
    auto abstract = parseSocketAddress("unix:@canopy-test");
    ASSERT_TRUE(abstract.ok());
    EXPECT_TRUE(abstract->isAbstract());
    EXPECT_EQ(abstract->unixPath(), "");
}

TEST(SocketAddressTest, RefusesWhatUnitRefuses) {
    for (const char* bad : {"8080", "*:0", "*:65536", "*:http", "localhost:80", "[::1:80",
                            "1.2.3:80", "unix:relative.sock", "unix:", "[zz]:80"}) {
        EXPECT_FALSE(parseSocketAddress(bad).ok()) << bad;
    }
}

TEST(SocketAddressTest, ListensAndReportsAnAddressInUse) {
    auto address = parseSocketAddress("127.0.0.1:1");
    ASSERT_TRUE(address.ok());
    // Port 0 cannot be configured; bind an ephemeral port through the raw API.
    reinterpret_cast<sockaddr_in*>(&address->storage)->sin_port = 0;
    auto first = listenOn(*address, 16);
    ASSERT_TRUE(first.ok()) << first.error().message;
    sockaddr_storage bound{};
    socklen_t length = sizeof(bound);
    ::getsockname(first->get(), reinterpret_cast<sockaddr*>(&bound), &length);
    address->storage = bound;
    auto second = listenOn(*address, 16);
    ASSERT_FALSE(second.ok());
    EXPECT_EQ(second.error().system_errno, EADDRINUSE);
    EXPECT_NE(second.error().message.find("already in use"), std::string::npos);
}

TEST(SocketAddressTest, UnixSocketReplacesAStaleFileWithMode0666) {
    char pattern[] = "/tmp/canopy-address-XXXXXX";
    std::filesystem::path directory = ::mkdtemp(pattern);
    auto address = parseSocketAddress("unix:" + (directory / "app.sock").string());
    ASSERT_TRUE(address.ok());
    {
        auto first = listenOn(*address, 16);
        ASSERT_TRUE(first.ok());
    }  // closed: its file stays behind, stale
    auto second = listenOn(*address, 16);
    ASSERT_TRUE(second.ok()) << second.error().message;
    struct stat status {};
    ASSERT_EQ(::stat((directory / "app.sock").c_str(), &status), 0);
    EXPECT_EQ(status.st_mode & 0777, 0666U);
    std::filesystem::remove_all(directory);
}

}  // namespace
}  // namespace canopy
