#pragma once

// Messages between Canopy processes. Every message starts with a fixed
// 16-byte header; the payload follows; file descriptors ride along as
// SCM_RIGHTS ancillary data of the message's first packet.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/unique_fd.h"

namespace canopy {

enum class MessageType : uint32_t {
    Ping = 1,  // any process: answer Pong with the same stream and payload
    Pong = 2,
    ProcessCreated = 3,      // child -> main: setup returned CREATED, waiting for external setup
    ProcessReady = 4,        // child -> main: setup done, start() is running
    Continue = 5,            // main -> child: external setup done, go on
    SetupFailed = 6,         // either way: setup failed; payload is the reason
    Quit = 7,                // main -> child: finish what you do and exit
    NewPort = 8,             // main -> child: a peer's port; payload "<kind> <pid>", fd: the socket
    LogFile = 9,             // main -> child: the reopened log; fd: replaces stderr
    ModulesReport = 10,      // discovery -> main: JSON report of modules found and skipped
    Reply = 11,              // the answer to a request; same stream; payload as the request defines
    ConfigApply = 12,        // controller -> router: the whole validated tree; Reply: {"error"?}
    ConfigStore = 13,        // controller -> main: persist the tree; Reply: {"error"?}
    CertificateStore = 14,   // controller -> main: "<name>\0<PEM>"; Reply: {"info"} or error
    CertificateDelete = 15,  // controller -> main: "<name>"; Reply: {"error"?}
    StatusQuery = 16,        // controller -> router; Reply: the router's part of /status
    AppRestart = 17,         // controller -> router: "<app>"; Reply: {"error"?}
    ListenerOpen = 18,       // router -> main: {"address", "backlog"}; Reply: fd or {"error"}
    ListenerClose = 19,      // router -> main: "<address>"; no reply
    AccessLogOpen = 20,      // router -> main: "<path>"; Reply: fd or {"error"}
    ReopenFiles = 21,        // main -> every process on SIGUSR1: reopen what you write to
    // router -> main -> the app's prototype: fork one worker. Payload JSON
    // {"app", "generation", "conf", "attachment", "descriptors": [numbers]};
    // fds: the worker's descriptors, in the order of "descriptors" (the
    // numbers they had in the router, which the worker gets them at).
    // Reply: {"pid"} once forked, or {"error"}.
    AppProcessStart = 22,
    AppWorkerKill = 23,      // router -> main: {"app", "pid"}: SIGKILL a stuck worker; no reply
    AppRetire = 24,          // router -> main: {"app", "generation"}: no more workers; no reply
    AppProcessExited = 25,   // prototype -> main: {"pid", "status"}: a worker was reaped
    CertificateOpen = 26,    // router -> main: "<name>" of a stored bundle; Reply: fd or {"error"}
};

std::string_view messageTypeName(MessageType type);

struct MessageHeader {
    uint32_t type;
    uint32_t stream;  // correlates a reply with its request; 0 when unused
    uint32_t flags;
    uint32_t length;  // payload bytes in this packet
};
static_assert(sizeof(MessageHeader) == 16);

// Set on every packet of a fragmented message but the last.
constexpr uint32_t kMessageFlagMoreFragments = 1U << 0;

struct Message {
    MessageType type{};
    uint32_t stream = 0;
    std::string payload;
    std::vector<UniqueFd> fds;  // received descriptors, owned by the message
};

}  // namespace canopy
