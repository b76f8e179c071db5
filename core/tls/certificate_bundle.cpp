#include "core/tls/certificate_bundle.h"

#include <fmt/format.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <climits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace canopy::tls {
namespace {

// unique_ptr deleters for OpenSSL objects; OPENSSL_free is a macro, hence
// the function.
void freeOpenSslMemory(void* memory) {
    OPENSSL_free(memory);
}

template <auto kFree>
struct FreeWith {
    template <typename T>
    void operator()(T* object) const {
        kFree(object);
    }
};

using BioPtr = std::unique_ptr<BIO, FreeWith<BIO_free>>;
using X509Ptr = std::unique_ptr<X509, FreeWith<X509_free>>;
using KeyPtr = std::unique_ptr<EVP_PKEY, FreeWith<EVP_PKEY_free>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, FreeWith<GENERAL_NAMES_free>>;
template <typename T>
using OpenSslMemory = std::unique_ptr<T, FreeWith<freeOpenSslMemory>>;

// OpenSSL reports failures through a per-thread queue. Starting and ending
// empty means a failure we report is ours, and nothing we leave behind
// confuses the next OpenSSL user on this thread (e.g. a TLS handshake that
// consults the queue after SSL_ERROR_SSL).
class ErrorQueueScope {
  public:
    ErrorQueueScope() { ERR_clear_error(); }
    ~ErrorQueueScope() { ERR_clear_error(); }
    ErrorQueueScope(const ErrorQueueScope&) = delete;
    ErrorQueueScope& operator=(const ErrorQueueScope&) = delete;
};

// The reason of the first queued error: the root cause, where later entries
// only say which wrapper failed ("nested asn1 error").
std::string openSslReason() {
    const unsigned long code = ERR_peek_error();
    if (code == 0) {
        return "unknown error";
    }
    if (const char* reason = ERR_reason_error_string(code)) {
        return reason;
    }
    char text[256];
    ERR_error_string_n(code, text, sizeof(text));
    return text;
}

Error invalid(std::string detail) {
    return Error{std::move(detail)};
}

std::string bioText(BIO* bio) {
    char* data = nullptr;
    const long length = BIO_get_mem_data(bio, &data);
    return length > 0 ? std::string(data, static_cast<size_t>(length)) : std::string();
}

// A name as one line for error messages, in certificate order and with
// UTF-8 kept: "O=Example, CN=example.com".
std::string nameLine(const X509_NAME* name) {
    constexpr unsigned long kFlags =
        (XN_FLAG_RFC2253 & ~(XN_FLAG_DN_REV | XN_FLAG_SEP_MASK | ASN1_STRFLGS_ESC_MSB)) |
        XN_FLAG_SEP_CPLUS_SPC;
    BioPtr bio(BIO_new(BIO_s_mem()));
    if (!bio || X509_NAME_print_ex(bio.get(), name, 0, kFlags) < 0) {
        return "?";
    }
    std::string line = bioText(bio.get());
    return line.empty() ? "(empty name)" : line;
}

struct Bundle {
    KeyPtr key;
    std::vector<X509Ptr> chain;  // as uploaded: leaf first
};

bool endsWith(std::string_view text, std::string_view suffix) {
    return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

// One PEM block as PEM_read_bio hands it out; the three buffers are ours.
struct PemBlock {
    OpenSslMemory<char> type;
    OpenSslMemory<char> header;
    OpenSslMemory<unsigned char> data;
    long length = 0;
};

Result<void> addBlock(const PemBlock& block, Bundle& bundle) {
    const std::string_view type = block.type.get();
    const unsigned char* cursor = block.data.get();

    if (type == "ENCRYPTED PRIVATE KEY") {
        return invalid("The private key is encrypted; upload it without a passphrase.");
    }
    if (endsWith(type, "PRIVATE KEY")) {
        // Traditional ("RSA PRIVATE KEY") encryption is announced in the
        // block's headers rather than its type.
        const std::string_view header = block.header.get();
        if (header.find("ENCRYPTED") != std::string_view::npos) {
            return invalid("The private key is encrypted; upload it without a passphrase.");
        }
        if (bundle.key) {
            return invalid("The bundle holds more than one private key.");
        }
        // Takes PKCS#8 "PRIVATE KEY" and the traditional RSA, EC and DSA forms.
        KeyPtr key(d2i_AutoPrivateKey(nullptr, &cursor, block.length));
        if (!key) {
            return invalid(fmt::format("The private key (\"{}\") cannot be decoded: {}.", type,
                                       openSslReason()));
        }
        bundle.key = std::move(key);
        return {};
    }
    if (type == PEM_STRING_X509 || type == PEM_STRING_X509_OLD || type == PEM_STRING_X509_TRUSTED) {
        X509Ptr certificate(type == PEM_STRING_X509_TRUSTED
                                ? d2i_X509_AUX(nullptr, &cursor, block.length)
                                : d2i_X509(nullptr, &cursor, block.length));
        if (!certificate) {
            return invalid(fmt::format("Certificate #{} cannot be decoded: {}.",
                                       bundle.chain.size() + 1, openSslReason()));
        }
        bundle.chain.push_back(std::move(certificate));
        return {};
    }
    if (type == PEM_STRING_ECPARAMETERS) {
        // `openssl ecparam -genkey` writes the curve before the key; the key
        // names its curve itself, so the block carries nothing we need.
        return {};
    }
    return invalid(
        fmt::format("The bundle holds an unsupported PEM block \"{}\"; expected a private key and "
                    "certificates.",
                    type));
}

Result<Bundle> parseBundle(std::string_view pem) {
    if (pem.size() > static_cast<size_t>(INT_MAX)) {
        return invalid("The bundle is too large.");
    }
    BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    if (!bio) {
        return invalid("Out of memory while reading the bundle.");
    }

    Bundle bundle;
    size_t blocks = 0;
    for (;;) {
        char* type = nullptr;
        char* header = nullptr;
        unsigned char* data = nullptr;
        long length = 0;
        if (PEM_read_bio(bio.get(), &type, &header, &data, &length) == 0) {
            // Running out of "-----BEGIN" lines is the normal end; anything
            // else is a damaged block.
            const unsigned long code = ERR_peek_last_error();
            if (ERR_GET_LIB(code) == ERR_LIB_PEM && ERR_GET_REASON(code) == PEM_R_NO_START_LINE) {
                ERR_clear_error();
                break;
            }
            return invalid(
                fmt::format("Malformed PEM data in block #{}: {}.", blocks + 1, openSslReason()));
        }
        PemBlock block{OpenSslMemory<char>(type), OpenSslMemory<char>(header),
                       OpenSslMemory<unsigned char>(data), length};
        ++blocks;
        if (auto added = addBlock(block, bundle); !added) {
            return added.error();
        }
    }

    if (blocks == 0) {
        return invalid("No PEM data found; expected a private key and one or more certificates.");
    }
    if (!bundle.key) {
        return invalid("The bundle holds no private key.");
    }
    if (bundle.chain.empty()) {
        return invalid("The bundle holds no certificate.");
    }
    return bundle;
}

// The key must be the leaf's, and each certificate must be followed by its
// issuer: a server presents the chain in the order it was uploaded, and
// clients reject a chain they cannot follow. Names suffice here; signatures
// are the client's business.
Result<void> checkBundle(const Bundle& bundle) {
    const EVP_PKEY* leaf_key = X509_get0_pubkey(bundle.chain.front().get());
    if (leaf_key == nullptr) {
        return invalid(fmt::format("The public key of the first certificate cannot be read: {}.",
                                   openSslReason()));
    }
    if (EVP_PKEY_eq(leaf_key, bundle.key.get()) != 1) {
        return invalid(
            "The private key does not match the first certificate; the leaf certificate of the "
            "key must come first.");
    }
    for (size_t index = 0; index + 1 < bundle.chain.size(); ++index) {
        const X509_NAME* issuer = X509_get_issuer_name(bundle.chain[index].get());
        const X509_NAME* next_subject = X509_get_subject_name(bundle.chain[index + 1].get());
        if (X509_NAME_cmp(issuer, next_subject) != 0) {
            return invalid(fmt::format(
                "Certificate #{} is issued by \"{}\" but certificate #{} is \"{}\"; certificates "
                "must go leaf first, then each issuer.",
                index + 1, nameLine(issuer), index + 2, nameLine(next_subject)));
        }
    }
    return {};
}

json::Value keyDescription(const EVP_PKEY* key) {
    // The strings are Unit's, which names an EC key by its use rather than
    // its curve.
    switch (EVP_PKEY_get_base_id(key)) {
        case EVP_PKEY_RSA:
            return fmt::format("RSA ({} bits)", EVP_PKEY_get_bits(key));
        case EVP_PKEY_DH:
            return fmt::format("DH ({} bits)", EVP_PKEY_get_bits(key));
        case EVP_PKEY_EC:
            return "ECDH";
        default:
            return "unknown";
    }
}

std::string asn1Utf8(const ASN1_STRING* text) {
    unsigned char* utf8 = nullptr;
    const int length = ASN1_STRING_to_UTF8(&utf8, text);
    if (length < 0) {
        ERR_clear_error();
        return {};
    }
    OpenSslMemory<unsigned char> owner(utf8);
    return std::string(reinterpret_cast<const char*>(utf8), static_cast<size_t>(length));
}

// DNS names only, as Unit lists them; IP addresses and other kinds of
// alternative names are left out.
json::Value altNames(const GENERAL_NAMES& names) {
    json::Array array;
    for (int index = 0; index < sk_GENERAL_NAME_num(&names); ++index) {
        const GENERAL_NAME* name = sk_GENERAL_NAME_value(&names, index);
        if (name->type == GEN_DNS) {
            const ASN1_IA5STRING* dns = name->d.dNSName;
            array.emplace_back(
                std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(dns)),
                            static_cast<size_t>(ASN1_STRING_length(dns))));
        }
    }
    return json::Value(std::move(array));
}

struct NameField {
    int nid;
    const char* key;
};

constexpr NameField kNameFields[] = {
    {NID_commonName, "common_name"},
    {NID_countryName, "country"},
    {NID_stateOrProvinceName, "state_or_province"},
    {NID_localityName, "locality"},
    {NID_organizationName, "organization"},
    {NID_organizationalUnitName, "department"},
};

json::Value nameDetails(const X509* certificate, bool issuer) {
    const X509_NAME* name =
        issuer ? X509_get_issuer_name(certificate) : X509_get_subject_name(certificate);
    GeneralNamesPtr alt_names(static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(
        certificate, issuer ? NID_issuer_alt_name : NID_subject_alt_name, nullptr, nullptr)));
    // A missing extension is no error, and a malformed one only costs its
    // names; neither may leave an error behind for the next check.
    ERR_clear_error();

    json::Value details = json::Value::object();
    for (const NameField& field : kNameFields) {
        // alt_names follows common_name, where Unit puts it.
        if (field.nid == NID_countryName && alt_names) {
            details.set("alt_names", altNames(*alt_names));
        }
        const int index = X509_NAME_get_index_by_NID(name, field.nid, -1);
        if (index >= 0) {
            const X509_NAME_ENTRY* entry = X509_NAME_get_entry(name, index);
            details.set(field.key, asn1Utf8(X509_NAME_ENTRY_get_data(entry)));
        }
    }
    return details;
}

Result<json::Value> printedTime(const ASN1_TIME* time) {
    BioPtr bio(BIO_new(BIO_s_mem()));
    if (!bio || ASN1_TIME_print(bio.get(), time) != 1) {
        return invalid(
            fmt::format("A certificate has an unreadable validity date: {}.", openSslReason()));
    }
    return json::Value(bioText(bio.get()));
}

Result<json::Value> describe(const Bundle& bundle) {
    json::Array chain;
    for (const X509Ptr& certificate : bundle.chain) {
        auto since = printedTime(X509_get0_notBefore(certificate.get()));
        if (!since) {
            return since.error();
        }
        auto until = printedTime(X509_get0_notAfter(certificate.get()));
        if (!until) {
            return until.error();
        }
        json::Value validity = json::Value::object();
        validity.set("since", std::move(since).value());
        validity.set("until", std::move(until).value());

        json::Value element = json::Value::object();
        element.set("subject", nameDetails(certificate.get(), false));
        element.set("issuer", nameDetails(certificate.get(), true));
        element.set("validity", std::move(validity));
        chain.push_back(std::move(element));
    }
    json::Value info = json::Value::object();
    info.set("key", keyDescription(bundle.key.get()));
    info.set("chain", json::Value(std::move(chain)));
    return info;
}

}  // namespace

Result<json::Value> inspectCertificateBundle(std::string_view pem) {
    ErrorQueueScope error_queue;
    auto bundle = parseBundle(pem);
    if (!bundle) {
        return bundle.error();
    }
    if (auto checked = checkBundle(*bundle); !checked) {
        return checked.error();
    }
    return describe(*bundle);
}

}  // namespace canopy::tls
