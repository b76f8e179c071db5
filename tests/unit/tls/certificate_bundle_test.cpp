#include "core/tls/certificate_bundle.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/err.h>

#include <string>
#include <vector>

#include "tests/unit/tls/test_pki.h"

namespace canopy::tls {
namespace {

using ::testing::HasSubstr;
namespace pki = ::canopy::tls::testing;

// Generated once: RSA key generation takes long enough to notice when
// repeated per test.
struct Material {
    pki::Key rsa_key = pki::rsaKey(2048);
    pki::Certificate rsa_certificate =
        pki::makeCertificate(rsa_key.get(), {.subject = {.common_name = "rsa.example",
                                                         .country = "NL",
                                                         .state_or_province = "Noord-Holland",
                                                         .locality = "Amsterdam",
                                                         .organization = "Canopy Tests",
                                                         .department = "TLS"}});

    pki::Key ca_key = pki::ecKey();
    pki::Certificate ca_certificate = pki::makeCertificate(
        ca_key.get(), {.subject = {.common_name = "Canopy Test CA", .organization = "Canopy Tests"},
                       .certificate_authority = true});

    pki::Key leaf_key = pki::ecKey();
    pki::Certificate leaf_certificate = pki::makeCertificate(
        leaf_key.get(),
        {.subject = {.common_name = "leaf.example"},
         .issuer = ca_certificate.get(),
         .issuer_key = ca_key.get(),
         .alt_names = {"DNS:leaf.example", "DNS:www.leaf.example", "IP:192.0.2.7"}});

    std::string rsaBundle() const {
        return pki::keyPem(rsa_key.get()) + pki::certificatePem(rsa_certificate.get());
    }
    std::string ecChain() const {
        return pki::keyPem(leaf_key.get()) + pki::certificatePem(leaf_certificate.get()) +
               pki::certificatePem(ca_certificate.get());
    }
};

class CertificateBundleTest : public ::testing::Test {
  protected:
    static void SetUpTestSuite() { material_ = new Material(); }
    static void TearDownTestSuite() {
        delete material_;
        material_ = nullptr;
    }
    const Material& material() const { return *material_; }

    // The detail of a refused bundle; fails the test when it was accepted.
    static std::string refusal(const std::string& pem) {
        auto info = inspectCertificateBundle(pem);
        if (info.ok()) {
            ADD_FAILURE() << "accepted: " << json::serialize(info.value());
            return {};
        }
        // A refusal leaves nothing in the thread's OpenSSL error queue.
        EXPECT_EQ(ERR_peek_error(), 0UL);
        return info.error().message;
    }

  private:
    static Material* material_;
};

Material* CertificateBundleTest::material_ = nullptr;

std::vector<std::string> keysOf(const json::Value& object) {
    std::vector<std::string> keys;
    for (const json::Member& member : object.asObject()) {
        keys.push_back(member.key);
    }
    return keys;
}

const json::Value& at(const json::Value& object, std::string_view key) {
    const json::Value* member = object.find(key);
    if (member == nullptr) {
        ADD_FAILURE() << "no member \"" << key << "\" in " << json::serialize(object);
        static const json::Value kNull;
        return kNull;
    }
    return *member;
}

TEST_F(CertificateBundleTest, RsaBundleDescribesKeyAndCertificate) {
    auto info = inspectCertificateBundle(material().rsaBundle());
    ASSERT_TRUE(info.ok()) << info.error().message;

    EXPECT_EQ(keysOf(*info), (std::vector<std::string>{"key", "chain"}));
    EXPECT_EQ(at(*info, "key"), json::Value("RSA (2048 bits)"));
    const json::Array& chain = at(*info, "chain").asArray();
    ASSERT_EQ(chain.size(), 1U);

    const json::Value& subject = at(chain[0], "subject");
    EXPECT_EQ(keysOf(subject),
              (std::vector<std::string>{"common_name", "country", "state_or_province", "locality",
                                        "organization", "department"}));
    EXPECT_EQ(at(subject, "common_name"), json::Value("rsa.example"));
    EXPECT_EQ(at(subject, "country"), json::Value("NL"));
    EXPECT_EQ(at(subject, "state_or_province"), json::Value("Noord-Holland"));
    EXPECT_EQ(at(subject, "locality"), json::Value("Amsterdam"));
    EXPECT_EQ(at(subject, "organization"), json::Value("Canopy Tests"));
    EXPECT_EQ(at(subject, "department"), json::Value("TLS"));
    // Self-signed: the issuer is the subject.
    EXPECT_EQ(at(chain[0], "issuer"), subject);

    const json::Value& validity = at(chain[0], "validity");
    EXPECT_EQ(at(validity, "since"), json::Value(pki::kNotBefore));
    EXPECT_EQ(at(validity, "until"), json::Value(pki::kNotAfter));
    EXPECT_EQ(ERR_peek_error(), 0UL);
}

TEST_F(CertificateBundleTest, EcChainListsEachCertificateWithDnsAltNames) {
    auto info = inspectCertificateBundle(material().ecChain());
    ASSERT_TRUE(info.ok()) << info.error().message;

    EXPECT_EQ(at(*info, "key"), json::Value("ECDH"));
    const json::Array& chain = at(*info, "chain").asArray();
    ASSERT_EQ(chain.size(), 2U);

    const json::Value& leaf_subject = at(chain[0], "subject");
    EXPECT_EQ(keysOf(leaf_subject), (std::vector<std::string>{"common_name", "alt_names"}));
    EXPECT_EQ(at(leaf_subject, "common_name"), json::Value("leaf.example"));
    // As in Unit, only DNS names are listed; the IP address is not.
    EXPECT_EQ(at(leaf_subject, "alt_names"),
              json::Value(json::Array{"leaf.example", "www.leaf.example"}));

    const json::Value& leaf_issuer = at(chain[0], "issuer");
    EXPECT_EQ(keysOf(leaf_issuer), (std::vector<std::string>{"common_name", "organization"}));
    EXPECT_EQ(at(leaf_issuer, "common_name"), json::Value("Canopy Test CA"));

    EXPECT_EQ(at(chain[1], "subject"), leaf_issuer);
    EXPECT_EQ(at(chain[1], "issuer"), leaf_issuer);
    EXPECT_EQ(at(chain[1], "subject").find("alt_names"), nullptr);
}

TEST_F(CertificateBundleTest, AcceptsTraditionalKeysAnywhereInTheBundle) {
    const std::string rsa = pki::certificatePem(material().rsa_certificate.get()) +
                            pki::traditionalKeyPem(material().rsa_key.get());
    ASSERT_THAT(rsa, HasSubstr("BEGIN RSA PRIVATE KEY"));
    auto rsa_info = inspectCertificateBundle(rsa);
    EXPECT_TRUE(rsa_info.ok()) << rsa_info.error().message;

    const std::string ec = pki::certificatePem(material().leaf_certificate.get()) +
                           pki::traditionalKeyPem(material().leaf_key.get()) +
                           pki::certificatePem(material().ca_certificate.get());
    ASSERT_THAT(ec, HasSubstr("BEGIN EC PRIVATE KEY"));
    auto ec_info = inspectCertificateBundle(ec);
    EXPECT_TRUE(ec_info.ok()) << ec_info.error().message;
}

TEST_F(CertificateBundleTest, IgnoresEcParameters) {
    const std::string parameters =
        "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n";
    auto info = inspectCertificateBundle(parameters + material().ecChain());
    EXPECT_TRUE(info.ok()) << info.error().message;
}

TEST_F(CertificateBundleTest, RefusesKeyWithoutCertificate) {
    EXPECT_THAT(refusal(pki::keyPem(material().rsa_key.get())), HasSubstr("no certificate"));
}

TEST_F(CertificateBundleTest, RefusesCertificateWithoutKey) {
    EXPECT_THAT(refusal(pki::certificatePem(material().rsa_certificate.get())),
                HasSubstr("no private key"));
}

TEST_F(CertificateBundleTest, RefusesTwoKeys) {
    EXPECT_THAT(refusal(pki::keyPem(material().leaf_key.get()) + material().ecChain()),
                HasSubstr("more than one private key"));
}

TEST_F(CertificateBundleTest, RefusesEncryptedPkcs8Key) {
    const std::string key = pki::encryptedKeyPem(material().rsa_key.get());
    ASSERT_THAT(key, HasSubstr("BEGIN ENCRYPTED PRIVATE KEY"));
    EXPECT_THAT(refusal(key + pki::certificatePem(material().rsa_certificate.get())),
                HasSubstr("encrypted"));
}

TEST_F(CertificateBundleTest, RefusesEncryptedTraditionalKey) {
    const std::string key = pki::encryptedTraditionalKeyPem(material().rsa_key.get());
    ASSERT_THAT(key, HasSubstr("Proc-Type: 4,ENCRYPTED"));
    EXPECT_THAT(refusal(key + pki::certificatePem(material().rsa_certificate.get())),
                HasSubstr("encrypted"));
}

TEST_F(CertificateBundleTest, RefusesKeyThatDoesNotMatchTheLeaf) {
    EXPECT_THAT(refusal(pki::keyPem(material().ca_key.get()) +
                        pki::certificatePem(material().leaf_certificate.get())),
                HasSubstr("does not match"));
    // Issuer before leaf: the key belongs to the second certificate.
    EXPECT_THAT(refusal(pki::keyPem(material().leaf_key.get()) +
                        pki::certificatePem(material().ca_certificate.get()) +
                        pki::certificatePem(material().leaf_certificate.get())),
                HasSubstr("does not match"));
}

TEST_F(CertificateBundleTest, RefusesCertificateNotFollowedByItsIssuer) {
    const std::string detail = refusal(pki::keyPem(material().leaf_key.get()) +
                                       pki::certificatePem(material().leaf_certificate.get()) +
                                       pki::certificatePem(material().rsa_certificate.get()));
    EXPECT_THAT(detail,
                HasSubstr("Certificate #1 is issued by \"CN=Canopy Test CA, O=Canopy Tests\""));
    EXPECT_THAT(detail, HasSubstr("certificate #2 is \"CN=rsa.example, C=NL, "));
    EXPECT_THAT(detail, HasSubstr("leaf first"));
}

TEST_F(CertificateBundleTest, RefusesGarbage) {
    EXPECT_THAT(refusal(""), HasSubstr("No PEM data"));
    EXPECT_THAT(refusal("hello, world\n"), HasSubstr("No PEM data"));
    EXPECT_THAT(refusal("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n"),
                HasSubstr("Malformed PEM data in block #1"));
    EXPECT_THAT(refusal("-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n" +
                        pki::keyPem(material().rsa_key.get())),
                HasSubstr("Certificate #1 cannot be decoded"));
    EXPECT_THAT(refusal(material().rsaBundle() + "-----BEGIN CERTIFICATE-----\nMIIB"),
                HasSubstr("Malformed PEM data in block #3"));
}

TEST_F(CertificateBundleTest, RefusesOtherPemBlocks) {
    EXPECT_THAT(refusal(material().rsaBundle() + "-----BEGIN CERTIFICATE REQUEST-----\naGVsbG8=\n"
                                                 "-----END CERTIFICATE REQUEST-----\n"),
                HasSubstr("unsupported PEM block \"CERTIFICATE REQUEST\""));
}

}  // namespace
}  // namespace canopy::tls
