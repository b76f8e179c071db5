#pragma once

// The TLS side of a listener: one OpenSSL context per certificate, the one
// for the client's server name chosen during the handshake (SNI), with the
// listener's conf_commands, session cache and tickets. A ServerContext is
// built when a configuration is applied and never changes afterwards; a
// reconfiguration builds new ones, and a connection keeps the one it began
// with (it holds a shared_ptr) until it ends.
//
// A Session is one connection's TLS state on a non-blocking socket. It
// does no waiting of its own: every call returns at once, saying whether
// it needs the socket readable or writable before it can go on.

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/base/result.h"
#include "core/json/value.h"
#include "core/tls/ticket_keys.h"

struct ssl_st;      // SSL, from <openssl/ssl.h>
struct ssl_ctx_st;  // SSL_CTX

namespace canopy::tls {

// A listener's "tls" object, read from a validated configuration.
struct ServerSettings {
    enum class Tickets { Off, OpenSslKeys, OwnKeys };

    std::vector<std::string> certificates;  // bundle names; the first is the default
    std::vector<std::pair<std::string, std::string>> conf_commands;  // in the object's order
    int64_t session_cache_size = 0;  // 0: no server-side session cache
    int64_t session_timeout = 300;   // seconds
    Tickets tickets = Tickets::Off;
    std::vector<TicketKey> ticket_keys;  // OwnKeys: the issuing key first

    // Reads a listener's `tls` value (the validator checked its shape).
    static Result<ServerSettings> fromJson(const json::Value& tls);
};

// The outcome of one Session call.
enum class IoStatus {
    Done,       // the call did its work (bytes tells how much)
    WantRead,   // call again once the socket is readable
    WantWrite,  // call again once the socket is writable
    Closed,     // the peer ended the TLS session (close_notify or EOF)
    Failed,     // a protocol or system error: error() says which
};

struct IoResult {
    IoStatus status = IoStatus::Done;
    size_t bytes = 0;
};

class Session {
  public:
    ~Session();
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    // Each call clears the thread's OpenSSL error queue first and leaves it
    // empty: connections on one thread never see each other's errors.
    IoResult handshake();
    // Reads decrypted bytes: Done with bytes > 0, or another status.
    IoResult read(char* data, size_t size);
    // Like read(), but the bytes stay for the next read: Done with bytes
    // > 0 when application data is there, Closed at close_notify or EOF.
    IoResult peek(char* data, size_t size);
    // Writes some of `data` (at least one record's worth when Done). After
    // WantRead/WantWrite the next call must offer the same bytes again
    // (more may follow them).
    IoResult write(const char* data, size_t size);
    // Sends close_notify once, without waiting for the peer's.
    void shutdown();

    // Decrypted bytes already read from the socket: a read will find them
    // without the socket becoming readable.
    bool hasBufferedInput() const;
    // Why the last call Failed (OpenSSL's reason), for the log.
    const std::string& error() const { return error_; }
    // The server name the client asked for; empty without SNI.
    std::string serverName() const;
    // "TLSv1.3" and the like, once the handshake is done.
    std::string protocol() const;

  private:
    friend class ServerContext;
    explicit Session(ssl_st* ssl) : ssl_(ssl) {}
    IoResult outcome(int returned, bool reading);

    ssl_st* ssl_;
    std::string error_;
    bool shut_down_ = false;
};

class ServerContext {
  public:
    // Builds the contexts for `settings`: `bundles[i]` is the PEM bundle of
    // settings.certificates[i] (private key and chain, as the certificate
    // store keeps it). `listener` names the listener in messages and keys
    // its session cache. Refuses a bundle OpenSSL cannot use and a
    // conf_command it does not take, with OpenSSL's reason.
    static Result<std::shared_ptr<const ServerContext>> create(
        const ServerSettings& settings, const std::vector<std::string>& bundles,
        std::string_view listener);

    ~ServerContext();
    ServerContext(const ServerContext&) = delete;
    ServerContext& operator=(const ServerContext&) = delete;

    // A server session on `socket` (connected, non-blocking, owned by the
    // caller, which keeps it open longer than the session). Null when
    // OpenSSL is out of memory.
    std::unique_ptr<Session> accept(int socket) const;

  private:
    friend struct ServerContextCallbacks;  // OpenSSL's callbacks, in the .cpp
    ServerContext() = default;

    std::vector<ssl_ctx_st*> contexts_;  // one per certificate; the first is the default
    // For each certificate, the names it answers to: the DNS names of its
    // subjectAltName, else its common name.
    std::vector<std::vector<std::string>> names_;
    std::vector<TicketKey> ticket_keys_;
};

}  // namespace canopy::tls
