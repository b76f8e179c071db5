#pragma once

// Key and certificate material made at run time for the TLS tests, so that
// no key is ever checked in. Fixed validity dates keep the info objects
// predictable.

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>
#include <string>
#include <vector>

namespace canopy::tls::testing {

struct KeyFree {
    void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct CertificateFree {
    void operator()(X509* certificate) const { X509_free(certificate); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;
using Certificate = std::unique_ptr<X509, CertificateFree>;

Key rsaKey(unsigned int bits);
Key ecKey();  // P-256

// The subject of a certificate; empty fields are left out.
struct Subject {
    std::string common_name;
    std::string country;
    std::string state_or_province;
    std::string locality;
    std::string organization;
    std::string department;
};

// "Jan  2 03:04:05 2024 GMT" and "Jan  2 03:04:05 2034 GMT" as OpenSSL
// prints them.
inline constexpr const char* kNotBefore = "Jan  2 03:04:05 2024 GMT";
inline constexpr const char* kNotAfter = "Jan  2 03:04:05 2034 GMT";

struct CertificateOptions {
    Subject subject;
    // The issuer and its key; both null for a self-signed certificate.
    const X509* issuer = nullptr;
    EVP_PKEY* issuer_key = nullptr;
    bool certificate_authority = false;
    // subjectAltName entries in OpenSSL's config syntax, e.g. "DNS:a.example".
    std::vector<std::string> alt_names;
};

// A certificate for `key`, signed with SHA-256.
Certificate makeCertificate(EVP_PKEY* key, const CertificateOptions& options);

std::string certificatePem(const X509* certificate);
// PKCS#8 "PRIVATE KEY".
std::string keyPem(EVP_PKEY* key);
// "RSA PRIVATE KEY", "EC PRIVATE KEY".
std::string traditionalKeyPem(EVP_PKEY* key);
// "ENCRYPTED PRIVATE KEY" under AES-256-CBC.
std::string encryptedKeyPem(EVP_PKEY* key);
// "RSA PRIVATE KEY" with a Proc-Type: 4,ENCRYPTED header.
std::string encryptedTraditionalKeyPem(EVP_PKEY* key);

}  // namespace canopy::tls::testing
