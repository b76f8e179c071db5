#include "core/tls/server_context.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "tests/unit/tls/test_pki.h"

namespace canopy::tls {
namespace {

using ::testing::HasSubstr;
namespace pki = ::canopy::tls::testing;

// Two certificates from one CA: "one" for one.example, "two" for
// two.example and *.two.example.
struct Material {
    pki::Key ca_key = pki::ecKey();
    pki::Certificate ca = pki::makeCertificate(
        ca_key.get(), {.subject = {.common_name = "Test CA"}, .certificate_authority = true});
    pki::Key one_key = pki::ecKey();
    pki::Certificate one =
        pki::makeCertificate(one_key.get(), {.subject = {.common_name = "one.example"},
                                             .issuer = ca.get(),
                                             .issuer_key = ca_key.get(),
                                             .alt_names = {"DNS:one.example"}});
    pki::Key two_key = pki::ecKey();
    pki::Certificate two = pki::makeCertificate(
        two_key.get(), {.subject = {.common_name = "two.example"},
                        .issuer = ca.get(),
                        .issuer_key = ca_key.get(),
                        .alt_names = {"DNS:two.example", "DNS:*.two.example"}});

    std::string oneBundle() const {
        return pki::certificatePem(one.get()) + pki::certificatePem(ca.get()) +
               pki::keyPem(one_key.get());
    }
    std::string twoBundle() const {
        return pki::certificatePem(two.get()) + pki::keyPem(two_key.get());
    }
};

const Material& material() {
    static const Material made;
    return made;
}

ServerSettings twoCertificates() {
    ServerSettings settings;
    settings.certificates = {"one", "two"};
    return settings;
}

std::shared_ptr<const ServerContext> contextFor(const ServerSettings& settings) {
    auto context = ServerContext::create(settings, {material().oneBundle(), material().twoBundle()},
                                         "127.0.0.1:443");
    EXPECT_TRUE(context) << context.error().message;
    return context ? *context : nullptr;
}

struct SslFree {
    void operator()(SSL* ssl) const { SSL_free(ssl); }
};
struct SslCtxFree {
    void operator()(SSL_CTX* context) const { SSL_CTX_free(context); }
};

// A client and a server session on the two ends of a socket pair, driven in
// turns until the handshake is done (both are non-blocking).
class Handshake {
  public:
    explicit Handshake(const ServerContext& server, const char* server_name) {
        int ends[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, ends), 0);
        client_fd_ = ends[0];
        server_fd_ = ends[1];
        client_context_.reset(SSL_CTX_new(TLS_client_method()));
        client_.reset(SSL_new(client_context_.get()));
        SSL_set_fd(client_.get(), client_fd_);
        SSL_set_connect_state(client_.get());
        if (server_name != nullptr) {
            SSL_set_tlsext_host_name(client_.get(), server_name);
        }
        server_ = server.accept(server_fd_);
    }
    ~Handshake() {
        server_.reset();
        client_.reset();
        ::close(client_fd_);
        ::close(server_fd_);
    }

    bool run() {
        for (int turn = 0; turn < 50; ++turn) {
            int client_done = SSL_do_handshake(client_.get());
            IoResult server_done = server_->handshake();
            if (server_done.status == IoStatus::Failed) {
                return false;
            }
            if (client_done == 1 && server_done.status == IoStatus::Done) {
                return true;
            }
        }
        ERR_clear_error();
        return false;
    }

    std::string peerCommonName() {
        X509* peer = SSL_get1_peer_certificate(client_.get());
        if (peer == nullptr) {
            return {};
        }
        char name[256] = {};
        X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, name, sizeof name);
        X509_free(peer);
        return name;
    }

    SSL* client() { return client_.get(); }
    int clientSocket() const { return client_fd_; }
    Session& server() { return *server_; }

  private:
    int client_fd_ = -1;
    int server_fd_ = -1;
    std::unique_ptr<SSL_CTX, SslCtxFree> client_context_;
    std::unique_ptr<SSL, SslFree> client_;
    std::unique_ptr<Session> server_;
};

TEST(ServerContextTest, TheServerNameChoosesTheCertificate) {
    auto context = contextFor(twoCertificates());
    ASSERT_NE(context, nullptr);
    for (auto [asked, served] : std::initializer_list<std::pair<const char*, const char*>>{
             {"one.example", "one.example"},
             {"two.example", "two.example"},
             {"www.two.example", "two.example"},
             {"elsewhere.example", "one.example"},
             {nullptr, "one.example"}}) {
        Handshake handshake(*context, asked);
        ASSERT_TRUE(handshake.run()) << handshake.server().error();
        EXPECT_EQ(handshake.peerCommonName(), served) << (asked ? asked : "(no SNI)");
        EXPECT_EQ(handshake.server().serverName(), asked ? asked : "");
    }
}

TEST(ServerContextTest, BytesFlowBothWaysAndCloseNotifyEndsTheStream) {
    auto context = contextFor(twoCertificates());
    ASSERT_NE(context, nullptr);
    Handshake handshake(*context, "one.example");
    ASSERT_TRUE(handshake.run());
    EXPECT_EQ(handshake.server().protocol(), "TLSv1.3");

    char buffer[64];
    EXPECT_EQ(handshake.server().read(buffer, sizeof buffer).status, IoStatus::WantRead);
    ASSERT_EQ(SSL_write(handshake.client(), "request", 7), 7);
    IoResult got = handshake.server().read(buffer, 3);
    ASSERT_EQ(got.status, IoStatus::Done);
    EXPECT_EQ(std::string(buffer, got.bytes), "req");
    EXPECT_TRUE(handshake.server().hasBufferedInput());  // the rest of the record
    got = handshake.server().read(buffer, sizeof buffer);
    EXPECT_EQ(std::string(buffer, got.bytes), "uest");

    IoResult written = handshake.server().write("answer", 6);
    ASSERT_EQ(written.status, IoStatus::Done);
    EXPECT_EQ(written.bytes, 6U);
    int read = SSL_read(handshake.client(), buffer, sizeof buffer);
    ASSERT_GT(read, 0);
    EXPECT_EQ(std::string(buffer, static_cast<size_t>(read)), "answer");

    SSL_shutdown(handshake.client());
    EXPECT_EQ(handshake.server().read(buffer, sizeof buffer).status, IoStatus::Closed);
    EXPECT_EQ(ERR_peek_error(), 0UL);  // the thread's error queue is left empty
}

TEST(ServerContextTest, HalfARecordIsNotBufferedInputAndPeekKeepsTheBytes) {
    auto context = contextFor(twoCertificates());
    ASSERT_NE(context, nullptr);
    Handshake handshake(*context, "one.example");
    ASSERT_TRUE(handshake.run());
    // The client's next record goes to memory, then to the socket in two
    // halves: the first half alone must not look like readable data, or a
    // client sending half a record would make the router spin.
    BIO* record = BIO_new(BIO_s_mem());
    SSL_set0_wbio(handshake.client(), record);
    ASSERT_EQ(SSL_write(handshake.client(), "request", 7), 7);
    char* bytes = nullptr;
    long length = BIO_get_mem_data(record, &bytes);
    ASSERT_GT(length, 10);
    size_t half = static_cast<size_t>(length) / 2;
    ASSERT_EQ(::write(handshake.clientSocket(), bytes, half), static_cast<ssize_t>(half));
    char buffer[64];
    EXPECT_EQ(handshake.server().read(buffer, sizeof buffer).status, IoStatus::WantRead);
    EXPECT_FALSE(handshake.server().hasBufferedInput());
    ASSERT_EQ(::write(handshake.clientSocket(), bytes + half, static_cast<size_t>(length) - half),
              static_cast<ssize_t>(static_cast<size_t>(length) - half));
    IoResult peeked = handshake.server().peek(buffer, sizeof buffer);
    ASSERT_EQ(peeked.status, IoStatus::Done);
    EXPECT_EQ(std::string(buffer, peeked.bytes), "request");
    EXPECT_TRUE(handshake.server().hasBufferedInput());
    IoResult got = handshake.server().read(buffer, sizeof buffer);
    ASSERT_EQ(got.status, IoStatus::Done);
    EXPECT_EQ(std::string(buffer, got.bytes), "request");

    // A close_notify peeks as the end, not as bytes.
    (void)BIO_reset(record);
    SSL_shutdown(handshake.client());
    length = BIO_get_mem_data(record, &bytes);
    ASSERT_EQ(::write(handshake.clientSocket(), bytes, static_cast<size_t>(length)),
              static_cast<ssize_t>(length));
    EXPECT_EQ(handshake.server().peek(buffer, sizeof buffer).status, IoStatus::Closed);
}

TEST(ServerContextTest, AClientSpeakingPlainHttpFailsItsHandshakeWithTheReason) {
    auto context = contextFor(twoCertificates());
    ASSERT_NE(context, nullptr);
    int ends[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, ends), 0);
    std::string request = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    ASSERT_EQ(::write(ends[0], request.data(), request.size()),
              static_cast<ssize_t>(request.size()));
    auto session = context->accept(ends[1]);
    IoResult result = session->handshake();
    EXPECT_EQ(result.status, IoStatus::Failed);
    EXPECT_EQ(session->error(), "http request");
    EXPECT_EQ(ERR_peek_error(), 0UL);
    session.reset();
    ::close(ends[0]);
    ::close(ends[1]);
}

TEST(ServerContextTest, ConfCommandsApplyAndBadOnesAreRefusedWithOpenSslsReason) {
    ServerSettings settings = twoCertificates();
    settings.conf_commands = {{"MaxProtocol", "TLSv1.2"}};
    auto context = contextFor(settings);
    ASSERT_NE(context, nullptr);
    Handshake handshake(*context, "two.example");
    ASSERT_TRUE(handshake.run());
    EXPECT_EQ(handshake.server().protocol(), "TLSv1.2");

    settings.conf_commands = {{"NoSuchCommand", "x"}};
    auto unknown = ServerContext::create(settings, {material().oneBundle(), material().twoBundle()},
                                         "127.0.0.1:443");
    ASSERT_FALSE(unknown);
    EXPECT_THAT(unknown.error().message, HasSubstr("\"NoSuchCommand\" is unknown"));

    settings.conf_commands = {{"CipherString", "NO-SUCH-CIPHER"}};
    auto refused = ServerContext::create(settings, {material().oneBundle(), material().twoBundle()},
                                         "127.0.0.1:443");
    ASSERT_FALSE(refused);
    EXPECT_THAT(refused.error().message, HasSubstr("no cipher match"));
    EXPECT_EQ(ERR_peek_error(), 0UL);
}

TEST(ServerContextTest, ABundleWithoutAMatchingKeyIsRefused) {
    ServerSettings settings;
    settings.certificates = {"mixed"};
    std::string mixed =
        pki::certificatePem(material().one.get()) + pki::keyPem(material().two_key.get());
    auto context = ServerContext::create(settings, {mixed}, "127.0.0.1:443");
    ASSERT_FALSE(context);
    EXPECT_THAT(context.error().message, HasSubstr("\"mixed\" cannot be used"));
}

TEST(ServerContextTest, SettingsComeFromTheListenersTlsObject) {
    auto tree = std::get<json::Value>(json::parse(R"({
        "certificate": ["a", "b"],
        "conf_commands": {"minprotocol": "TLSv1.3", "ciphersuites": "TLS_AES_128_GCM_SHA256"},
        "session": {"cache_size": 10, "timeout": 60, "tickets": true}})"));
    auto settings = ServerSettings::fromJson(tree);
    ASSERT_TRUE(settings) << settings.error().message;
    EXPECT_EQ(settings->certificates, (std::vector<std::string>{"a", "b"}));
    ASSERT_EQ(settings->conf_commands.size(), 2U);
    EXPECT_EQ(settings->conf_commands[0].first, "minprotocol");
    EXPECT_EQ(settings->session_cache_size, 10);
    EXPECT_EQ(settings->session_timeout, 60);
    EXPECT_EQ(settings->tickets, ServerSettings::Tickets::OpenSslKeys);

    auto defaults =
        ServerSettings::fromJson(std::get<json::Value>(json::parse(R"({"certificate": "a"})")));
    ASSERT_TRUE(defaults);
    EXPECT_EQ(defaults->session_cache_size, 0);
    EXPECT_EQ(defaults->session_timeout, 300);
    EXPECT_EQ(defaults->tickets, ServerSettings::Tickets::Off);
}

}  // namespace
}  // namespace canopy::tls
