#include "core/tls/server_context.h"

#include <fmt/format.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/tls/server_name.h"

namespace canopy::tls {
namespace {

struct BioFree {
    void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
    void operator()(X509* certificate) const { X509_free(certificate); }
};
struct KeyFree {
    void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct ConfFree {
    void operator()(SSL_CONF_CTX* conf) const { SSL_CONF_CTX_free(conf); }
};
struct NamesFree {
    void operator()(GENERAL_NAMES* names) const { GENERAL_NAMES_free(names); }
};

// The thread's OpenSSL errors as one line ("reason; reason"), emptying the
// queue; `fallback` when there are none.
std::string takeErrors(std::string_view fallback) {
    std::string text;
    while (unsigned long code = ERR_get_error()) {
        const char* reason = ERR_reason_error_string(code);
        if (!text.empty()) {
            text += "; ";
        }
        text += reason != nullptr ? reason : fmt::format("OpenSSL error {:#x}", code);
    }
    return text.empty() ? std::string(fallback) : text;
}

std::unique_ptr<BIO, BioFree> memoryBio(const std::string& text) {
    return std::unique_ptr<BIO, BioFree>(
        BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

std::string asn1Text(const ASN1_STRING* value) {
    const unsigned char* data = ASN1_STRING_get0_data(value);
    return std::string(reinterpret_cast<const char*>(data),
                       static_cast<size_t>(ASN1_STRING_length(value)));
}

// The DNS names of the subjectAltName, else the subject's common name, as
// browsers and OpenSSL's own host check read a certificate.
std::vector<std::string> certificateNames(X509* certificate) {
    std::vector<std::string> names;
    std::unique_ptr<GENERAL_NAMES, NamesFree> alt_names(static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(certificate, NID_subject_alt_name, nullptr, nullptr)));
    if (alt_names) {
        for (int index = 0; index < sk_GENERAL_NAME_num(alt_names.get()); ++index) {
            const GENERAL_NAME* name = sk_GENERAL_NAME_value(alt_names.get(), index);
            if (name->type == GEN_DNS) {
                names.push_back(asn1Text(name->d.dNSName));
            }
        }
    }
    if (names.empty()) {
        X509_NAME* subject = X509_get_subject_name(certificate);
        int position = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
        if (position >= 0) {
            names.push_back(
                asn1Text(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, position))));
        }
    }
    return names;
}

// The leaf, its chain and its key from a bundle; the leaf's names.
Result<std::vector<std::string>> loadBundle(SSL_CTX* context, const std::string& pem) {
    auto certificates = memoryBio(pem);
    std::unique_ptr<X509, X509Free> leaf(
        PEM_read_bio_X509(certificates.get(), nullptr, nullptr, nullptr));
    if (!leaf) {
        return Error{takeErrors("no certificate")};
    }
    if (SSL_CTX_use_certificate(context, leaf.get()) != 1) {
        return Error{takeErrors("the certificate is unusable")};
    }
    while (X509* issuer = PEM_read_bio_X509(certificates.get(), nullptr, nullptr, nullptr)) {
        if (SSL_CTX_add0_chain_cert(context, issuer) != 1) {
            X509_free(issuer);
            return Error{takeErrors("a chain certificate is unusable")};
        }
    }
    ERR_clear_error();  // the end of the bundle reads as "no start line"
    auto keys = memoryBio(pem);
    std::unique_ptr<EVP_PKEY, KeyFree> key(
        PEM_read_bio_PrivateKey(keys.get(), nullptr, nullptr, nullptr));
    if (!key) {
        return Error{takeErrors("no private key")};
    }
    if (SSL_CTX_use_PrivateKey(context, key.get()) != 1 ||
        SSL_CTX_check_private_key(context) != 1) {
        return Error{takeErrors("the private key does not match the certificate")};
    }
    return certificateNames(leaf.get());
}

Result<void> applyConfCommands(SSL_CTX* context, const ServerSettings& settings) {
    if (settings.conf_commands.empty()) {
        return {};
    }
    std::unique_ptr<SSL_CONF_CTX, ConfFree> conf(SSL_CONF_CTX_new());
    // The configuration-file form of the commands ("CipherString",
    // "Protocol", "MinProtocol"...), as Unit takes them; no command that
    // loads files (certificates and keys come from the store only).
    SSL_CONF_CTX_set_flags(conf.get(),
                           SSL_CONF_FLAG_FILE | SSL_CONF_FLAG_SERVER | SSL_CONF_FLAG_SHOW_ERRORS);
    SSL_CONF_CTX_set_ssl_ctx(conf.get(), context);
    for (const auto& [command, value] : settings.conf_commands) {
        int applied = SSL_CONF_cmd(conf.get(), command.c_str(), value.c_str());
        if (applied == -2) {
            ERR_clear_error();
            return Error{fmt::format("the TLS command \"{}\" is unknown to OpenSSL", command)};
        }
        if (applied <= 0) {
            return Error{fmt::format("the TLS command \"{}\" with \"{}\" failed: {}", command,
                                     value, takeErrors("OpenSSL refused it"))};
        }
    }
    if (SSL_CONF_CTX_finish(conf.get()) != 1) {
        return Error{
            fmt::format("the TLS commands failed: {}", takeErrors("OpenSSL refused them"))};
    }
    return {};
}

}  // namespace

// OpenSSL calls these with its own types; they reach the ServerContext
// through the SSL_CTX's ex_data.
struct ServerContextCallbacks {
    static int exDataIndex() {
        static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
        return index;
    }

    static const ServerContext* of(SSL* ssl) {
        return static_cast<const ServerContext*>(
            SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), exDataIndex()));
    }

    static int onServerName(SSL* ssl, int*, void* argument) {
        const auto* self = static_cast<const ServerContext*>(argument);
        const char* host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
        if (host == nullptr) {
            return SSL_TLSEXT_ERR_OK;  // no SNI: the default certificate
        }
        auto chosen = chooseCertificate(self->names_, host);
        if (chosen && *chosen != 0 && SSL_set_SSL_CTX(ssl, self->contexts_[*chosen]) == nullptr) {
            return SSL_TLSEXT_ERR_ALERT_FATAL;
        }
        return SSL_TLSEXT_ERR_OK;
    }

    static bool keyFor(const TicketKey& key, unsigned char* iv, EVP_CIPHER_CTX* cipher,
                       EVP_MAC_CTX* mac, bool encrypt) {
        const EVP_CIPHER* algorithm =
            key.aes_key.size() == 16 ? EVP_aes_128_cbc() : EVP_aes_256_cbc();
        char digest[] = "SHA256";
        OSSL_PARAM parameters[] = {
            OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY,
                                              const_cast<unsigned char*>(key.hmac_secret.data()),
                                              key.hmac_secret.size()),
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
            OSSL_PARAM_construct_end(),
        };
        int initialised =
            encrypt ? EVP_EncryptInit_ex(cipher, algorithm, nullptr, key.aes_key.data(), iv)
                    : EVP_DecryptInit_ex(cipher, algorithm, nullptr, key.aes_key.data(), iv);
        return initialised == 1 && EVP_MAC_CTX_set_params(mac, parameters) == 1;
    }

    // Returns what SSL_CTX_set_tlsext_ticket_key_evp_cb(3) asks: encrypting,
    // 1 (or -1 on failure); decrypting, 0 for an unknown key (a full
    // handshake follows), 1 for the issuing key, 2 for an older one (the
    // client gets a new ticket).
    static int onTicketKey(SSL* ssl, unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher,
                           EVP_MAC_CTX* mac, int encrypt) {
        const ServerContext* self = of(ssl);
        if (self == nullptr || self->ticket_keys_.empty()) {
            return encrypt ? -1 : 0;
        }
        if (encrypt) {
            const TicketKey& key = self->ticket_keys_.front();
            std::memcpy(name, key.name.data(), key.name.size());
            int iv_length = key.aes_key.size() == 16 ? EVP_CIPHER_get_iv_length(EVP_aes_128_cbc())
                                                     : EVP_CIPHER_get_iv_length(EVP_aes_256_cbc());
            if (RAND_bytes(iv, iv_length) != 1 || !keyFor(key, iv, cipher, mac, true)) {
                return -1;
            }
            return 1;
        }
        for (size_t index = 0; index < self->ticket_keys_.size(); ++index) {
            const TicketKey& key = self->ticket_keys_[index];
            if (std::memcmp(name, key.name.data(), key.name.size()) == 0) {
                if (!keyFor(key, iv, cipher, mac, false)) {
                    return -1;
                }
                return index == 0 ? 1 : 2;
            }
        }
        return 0;
    }
};

Result<ServerSettings> ServerSettings::fromJson(const json::Value& tls) {
    ServerSettings settings;
    const json::Value* certificate = tls.find("certificate");
    if (certificate != nullptr && certificate->isString()) {
        settings.certificates.push_back(certificate->asString());
    } else if (certificate != nullptr && certificate->isArray()) {
        for (const auto& name : certificate->asArray()) {
            if (name.isString()) {
                settings.certificates.push_back(name.asString());
            }
        }
    }
    if (settings.certificates.empty()) {
        return Error{"a TLS listener needs a certificate"};
    }
    if (const json::Value* commands = tls.find("conf_commands");
        commands != nullptr && commands->isObject()) {
        for (const auto& member : commands->asObject()) {
            if (member.value.isString()) {
                settings.conf_commands.emplace_back(member.key, member.value.asString());
            }
        }
    }
    const json::Value* session = tls.find("session");
    auto integer = [session](std::string_view key) -> std::optional<int64_t> {
        const json::Value* value = session == nullptr ? nullptr : session->find(key);
        return value != nullptr && value->isNumber() ? value->asNumber().integer() : std::nullopt;
    };
    settings.session_cache_size = integer("cache_size").value_or(settings.session_cache_size);
    settings.session_timeout = integer("timeout").value_or(settings.session_timeout);
    if (const json::Value* tickets = session == nullptr ? nullptr : session->find("tickets")) {
        if (tickets->isBool()) {
            settings.tickets = tickets->asBool() ? Tickets::OpenSslKeys : Tickets::Off;
        } else {
            auto keys = parseTicketKeys(*tickets);
            if (!keys) {
                return keys.error();
            }
            settings.tickets = Tickets::OwnKeys;
            settings.ticket_keys = std::move(*keys);
        }
    }
    return settings;
}

Result<std::shared_ptr<const ServerContext>> ServerContext::create(
    const ServerSettings& settings, const std::vector<std::string>& bundles,
    std::string_view listener) {
    ERR_clear_error();
    if (bundles.size() != settings.certificates.size() || bundles.empty()) {
        return Error{fmt::format("the listener \"{}\" has no certificate to serve", listener)};
    }
    std::shared_ptr<ServerContext> self(new ServerContext());
    self->ticket_keys_ = settings.ticket_keys;
    // Sessions resume only on the listener that made them: every context of
    // a listener carries the same id context, derived from its address.
    unsigned char id_context[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(listener.data()), listener.size(), id_context);

    for (size_t index = 0; index < bundles.size(); ++index) {
        const std::string& name = settings.certificates[index];
        SSL_CTX* context = SSL_CTX_new(TLS_server_method());
        if (context == nullptr) {
            return Error{takeErrors("cannot create a TLS context")};
        }
        self->contexts_.push_back(context);
        SSL_CTX_set_ex_data(context, ServerContextCallbacks::exDataIndex(), self.get());
        // Idle keep-alive connections give their record buffers back;
        // writes go on record by record from wherever the data now is.
        SSL_CTX_set_mode(context, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                                      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        // No renegotiation a client could use to make the server work; a
        // client that closes without close_notify ends its stream (HTTP's
        // framing tells whether anything was cut off), as with plain TCP.
        SSL_CTX_set_options(context, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                         SSL_OP_IGNORE_UNEXPECTED_EOF);
        auto names = loadBundle(context, bundles[index]);
        if (!names) {
            return Error{fmt::format("the certificate \"{}\" cannot be used: {}", name,
                                     names.error().message)};
        }
        self->names_.push_back(std::move(*names));
        if (auto applied = applyConfCommands(context, settings); !applied) {
            return applied.error();
        }
        SSL_CTX_set_session_id_context(context, id_context, sizeof id_context);
        SSL_CTX_set_timeout(context, static_cast<long>(settings.session_timeout));
        if (settings.session_cache_size > 0) {
            SSL_CTX_set_session_cache_mode(context, SSL_SESS_CACHE_SERVER);
            SSL_CTX_sess_set_cache_size(context, settings.session_cache_size);
        } else {
            SSL_CTX_set_session_cache_mode(context, SSL_SESS_CACHE_OFF);
        }
        switch (settings.tickets) {
            case ServerSettings::Tickets::Off:
                // TLS 1.3 still sends a ticket naming the session, which
                // resumes nothing without a cache; but it is the server's
                // answer to the client's Finished, and without it a client
                // that leaves Nagle on holds its first request back until
                // the server's delayed ACK (40 ms), so it stays.
                SSL_CTX_set_options(context, SSL_OP_NO_TICKET);
                break;
            case ServerSettings::Tickets::OpenSslKeys:
                break;  // OpenSSL's random keys, one set per context
            case ServerSettings::Tickets::OwnKeys:
                SSL_CTX_set_tlsext_ticket_key_evp_cb(context, ServerContextCallbacks::onTicketKey);
                break;
        }
    }
    SSL_CTX_set_tlsext_servername_callback(self->contexts_.front(),
                                           ServerContextCallbacks::onServerName);
    SSL_CTX_set_tlsext_servername_arg(self->contexts_.front(), self.get());
    return std::shared_ptr<const ServerContext>(std::move(self));
}

ServerContext::~ServerContext() {
    for (SSL_CTX* context : contexts_) {
        SSL_CTX_free(context);  // sessions still open hold their own reference
    }
}

std::unique_ptr<Session> ServerContext::accept(int socket) const {
    SSL* ssl = SSL_new(contexts_.front());
    if (ssl == nullptr) {
        ERR_clear_error();
        return nullptr;
    }
    if (SSL_set_fd(ssl, socket) != 1) {
        ERR_clear_error();
        SSL_free(ssl);
        return nullptr;
    }
    SSL_set_accept_state(ssl);
    return std::unique_ptr<Session>(new Session(ssl));
}

Session::~Session() {
    SSL_free(ssl_);
}

IoResult Session::outcome(int returned, bool reading) {
    if (returned > 0) {
        return {IoStatus::Done, static_cast<size_t>(returned)};
    }
    int saved_errno = errno;
    int error = SSL_get_error(ssl_, returned);
    switch (error) {
        case SSL_ERROR_WANT_READ:
            ERR_clear_error();
            return {IoStatus::WantRead, 0};
        case SSL_ERROR_WANT_WRITE:
            ERR_clear_error();
            return {IoStatus::WantWrite, 0};
        case SSL_ERROR_ZERO_RETURN:
            ERR_clear_error();
            return {IoStatus::Closed, 0};
        case SSL_ERROR_SYSCALL:
            if (ERR_peek_error() == 0) {
                // EOF without close_notify: for a reader, the end of the
                // stream (HTTP framing says whether anything is missing).
                if (reading && saved_errno == 0) {
                    return {IoStatus::Closed, 0};
                }
                error_ = saved_errno != 0 ? std::strerror(saved_errno)
                                          : "the peer closed the connection";
                return {IoStatus::Failed, 0};
            }
            error_ = takeErrors("system error");
            return {IoStatus::Failed, 0};
        default:
            error_ = takeErrors("TLS protocol error");
            return {IoStatus::Failed, 0};
    }
}

IoResult Session::handshake() {
    ERR_clear_error();
    errno = 0;
    int returned = SSL_do_handshake(ssl_);
    if (returned == 1) {
        return {IoStatus::Done, 0};
    }
    IoResult result = outcome(returned, false);
    if (result.status == IoStatus::Closed) {
        error_ = "the peer closed the connection";
        result.status = IoStatus::Failed;
    }
    return result;
}

IoResult Session::read(char* data, size_t size) {
    ERR_clear_error();
    errno = 0;
    size_t done = 0;
    if (SSL_read_ex(ssl_, data, size, &done) == 1) {
        return {IoStatus::Done, done};
    }
    return outcome(0, true);
}

IoResult Session::peek(char* data, size_t size) {
    ERR_clear_error();
    errno = 0;
    size_t done = 0;
    if (SSL_peek_ex(ssl_, data, size, &done) == 1) {
        return {IoStatus::Done, done};
    }
    return outcome(0, true);
}

IoResult Session::write(const char* data, size_t size) {
    ERR_clear_error();
    errno = 0;
    size_t done = 0;
    if (SSL_write_ex(ssl_, data, size, &done) == 1) {
        return {IoStatus::Done, done};
    }
    return outcome(0, false);
}

void Session::shutdown() {
    if (shut_down_) {
        return;
    }
    shut_down_ = true;
    ERR_clear_error();
    // Best effort: one try on the non-blocking socket; nobody waits for
    // the peer's answer (the socket closes right after).
    if (SSL_is_init_finished(ssl_)) {
        (void)SSL_shutdown(ssl_);
    }
    ERR_clear_error();
}

bool Session::hasBufferedInput() const {
    // Decrypted bytes only: raw bytes of a record not yet complete (no
    // read-ahead, so that is all they can be) need the socket to become
    // readable again, and counting them would spin until the rest arrives.
    return SSL_pending(ssl_) > 0;
}

std::string Session::serverName() const {
    const char* name = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name);
    return name != nullptr ? name : "";
}

std::string Session::protocol() const {
    return SSL_get_version(ssl_);
}

}  // namespace canopy::tls
