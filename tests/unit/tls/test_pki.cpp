#include "tests/unit/tls/test_pki.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <stdexcept>
#include <string_view>

namespace canopy::tls::testing {
namespace {

// Test setup that fails cannot go on; an exception fails the test with the
// OpenSSL reason.
[[noreturn]] void fail(std::string_view what) {
    char reason[256];
    ERR_error_string_n(ERR_get_error(), reason, sizeof(reason));
    ERR_clear_error();
    throw std::runtime_error(std::string(what) + ": " + reason);
}

struct BioFree {
    void operator()(BIO* bio) const { BIO_free(bio); }
};
using Bio = std::unique_ptr<BIO, BioFree>;

template <typename Write>
std::string toPem(Write write) {
    Bio bio(BIO_new(BIO_s_mem()));
    if (!bio || write(bio.get()) != 1) {
        fail("writing PEM");
    }
    char* data = nullptr;
    const long length = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<size_t>(length));
}

void addNameEntry(X509_NAME* name, const char* field, const std::string& value) {
    if (!value.empty() &&
        X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1,
                                   0) != 1) {
        fail(field);
    }
}

void addExtension(X509* certificate, X509V3_CTX* context, int nid, const std::string& value) {
    X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, context, nid, value.c_str());
    if (extension == nullptr) {
        fail("X509V3_EXT_conf_nid");
    }
    const int added = X509_add_ext(certificate, extension, -1);
    X509_EXTENSION_free(extension);
    if (added != 1) {
        fail("X509_add_ext");
    }
}

}  // namespace

Key rsaKey(unsigned int bits) {
    Key key(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(bits)));
    if (!key) {
        fail("RSA key generation");
    }
    return key;
}

Key ecKey() {
    Key key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
    if (!key) {
        fail("EC key generation");
    }
    return key;
}

Certificate makeCertificate(EVP_PKEY* key, const CertificateOptions& options) {
    static long serial = 1;
    Certificate certificate(X509_new());
    if (!certificate || X509_set_version(certificate.get(), X509_VERSION_3) != 1 ||
        ASN1_INTEGER_set(X509_get_serialNumber(certificate.get()), serial++) != 1 ||
        ASN1_TIME_set_string(X509_getm_notBefore(certificate.get()), "20240102030405Z") != 1 ||
        ASN1_TIME_set_string(X509_getm_notAfter(certificate.get()), "20340102030405Z") != 1 ||
        X509_set_pubkey(certificate.get(), key) != 1) {
        fail("building a certificate");
    }
    X509_NAME* subject = X509_get_subject_name(certificate.get());
    addNameEntry(subject, "CN", options.subject.common_name);
    addNameEntry(subject, "C", options.subject.country);
    addNameEntry(subject, "ST", options.subject.state_or_province);
    addNameEntry(subject, "L", options.subject.locality);
    addNameEntry(subject, "O", options.subject.organization);
    addNameEntry(subject, "OU", options.subject.department);

    const X509* issuer = options.issuer != nullptr ? options.issuer : certificate.get();
    EVP_PKEY* signing_key = options.issuer_key != nullptr ? options.issuer_key : key;
    if (X509_set_issuer_name(certificate.get(), X509_get_subject_name(issuer)) != 1) {
        fail("X509_set_issuer_name");
    }

    X509V3_CTX context;
    X509V3_set_ctx(&context, const_cast<X509*>(issuer), certificate.get(), nullptr, nullptr, 0);
    if (options.certificate_authority) {
        addExtension(certificate.get(), &context, NID_basic_constraints, "critical,CA:TRUE");
    }
    if (!options.alt_names.empty()) {
        std::string alt_names;
        for (const std::string& alt_name : options.alt_names) {
            alt_names += (alt_names.empty() ? "" : ",") + alt_name;
        }
        addExtension(certificate.get(), &context, NID_subject_alt_name, alt_names);
    }
    if (X509_sign(certificate.get(), signing_key, EVP_sha256()) == 0) {
        fail("X509_sign");
    }
    return certificate;
}

std::string certificatePem(const X509* certificate) {
    return toPem([&](BIO* bio) { return PEM_write_bio_X509(bio, certificate); });
}

std::string keyPem(EVP_PKEY* key) {
    return toPem([&](BIO* bio) {
        return PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
    });
}

std::string traditionalKeyPem(EVP_PKEY* key) {
    return toPem([&](BIO* bio) {
        return PEM_write_bio_PrivateKey_traditional(bio, key, nullptr, nullptr, 0, nullptr,
                                                    nullptr);
    });
}

std::string encryptedKeyPem(EVP_PKEY* key) {
    static char passphrase[] = "secret";
    return toPem([&](BIO* bio) {
        return PEM_write_bio_PrivateKey(bio, key, EVP_aes_256_cbc(), nullptr, 0, nullptr,
                                        passphrase);
    });
}

std::string encryptedTraditionalKeyPem(EVP_PKEY* key) {
    static char passphrase[] = "secret";
    return toPem([&](BIO* bio) {
        return PEM_write_bio_PrivateKey_traditional(bio, key, EVP_aes_256_cbc(), nullptr, 0,
                                                    nullptr, passphrase);
    });
}

}  // namespace canopy::tls::testing
