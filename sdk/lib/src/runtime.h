#pragma once

// The objects behind the opaque handles of <canopy/app.h>, and the
// operations the C entry points (app.cpp) call. Nothing here throws across
// the ABI: app.cpp catches everything once per entry point.
//
// Ownership: canopy_app owns the attachment's descriptors, the router's
// segment table and the app's pool; each context owns its own view of the
// channel (and so its doorbell) and the requests it took; a request owns its
// head storage and stream ends and lives until its context's loop frees it
// after canopy_request_done.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "attachment.h"
#include "canopy/app.h"
#include "canopy/transport/channel.h"
#include "canopy/transport/file_descriptor.h"
#include "canopy/transport/request_head.h"
#include "canopy/transport/segment.h"
#include "canopy/transport/stream.h"

struct canopy_app {
    canopy_app_init_t init{};  // the caller's fields; absent ones zero
    canopy::app::Attachment attachment;
    size_t max_websocket_frame = size_t{1} << 20;

    std::atomic<bool> quitting{false};
    canopy::transport::FileDescriptor quit_event;  // readable forever once quitting
    std::atomic<uint64_t> requests_taken{0};

    canopy::transport::SegmentTable router_segments;
    std::unique_ptr<canopy::transport::SegmentPool> pool;

    // The port socket is shared by all contexts: sends and receives are
    // serialised by this lock, which is never held while waiting.
    std::mutex port_mutex;
    size_t announced_segments = 0;                                                 // port_mutex
    std::unordered_map<uint32_t, canopy::transport::FileDescriptor> router_files;  // port_mutex
    uint32_t next_file_token = 1;                                                  // port_mutex
    std::atomic<bool> port_closed{false};

    std::mutex contexts_mutex;
    std::vector<bool> slot_used;  // by attachment.consumers index; contexts_mutex
    canopy_context* main_context = nullptr;
};

struct canopy_context {
    canopy_app* app = nullptr;
    size_t slot = 0;  // index into app->attachment.consumers
    canopy::transport::Party party = 0;
    std::unique_ptr<canopy::transport::Channel> channel;
    canopy::transport::Doorbell doorbell;
    void* user_data = nullptr;
    bool running = false;
    bool quit_notified = false;
    std::vector<canopy_request*> open;  // taken, not yet freed
};

struct canopy_request {
    enum class State { Fresh, Initialized, HeadersSent, Done };

    canopy_context* context = nullptr;
    canopy::transport::RequestDescriptor descriptor{};
    std::vector<std::byte> head_storage;
    canopy::transport::RequestHead head;
    void* user_data = nullptr;

    // Body: preread bytes first, then the request stream.
    std::vector<std::byte> preread;
    size_t preread_offset = 0;
    std::optional<canopy::transport::StreamReader> body;
    bool entry_held = false;
    canopy::transport::StreamEntry entry{};
    uint64_t entry_offset = 0;
    bool body_ended = false;

    // Response.
    std::optional<canopy::transport::StreamWriter> response;
    State state = State::Fresh;
    uint16_t status = 0;
    std::vector<std::pair<std::string, std::string>> fields;

    // Events and WebSocket.
    bool aborted = false;  // the router aborted or closed a stream
    bool close_notified = false;
    bool want_data = false;
    bool want_drain = false;
    bool upgraded = false;
    std::vector<uint8_t> frame_buffer;
    bool frame_delivered = false;
};

namespace canopy::app {

// --- app and port -----------------------------------------------------------
void logLine(canopy_app* app, int level, const char* message);
void requestQuit(canopy_app* app);
// Receives everything waiting on the port socket (segments, files, quit).
void drainPort(canopy_app* app);

// --- contexts ---------------------------------------------------------------
int createContext(canopy_app* app, canopy_context** out);
void destroyContext(canopy_context* context);
// Waits until the context's doorbell or the port socket wakes it, or
// timeout_ms passes (negative: forever). CANOPY_CLOSED when the router is gone.
int waitForWake(canopy_context* context, int timeout_ms);
int runOnce(canopy_context* context, int timeout_ms);

// --- requests ---------------------------------------------------------------
int readBody(canopy_request* request, void* buffer, size_t capacity, size_t* got, bool blocking);
int responseInit(canopy_request* request, uint16_t status, uint32_t hint);
int addHeader(canopy_request* request, std::string_view name, std::string_view value);
int sendHeaders(canopy_request* request, uint16_t flags);
int writeBody(canopy_request* request, std::span<const std::span<const std::byte>> parts,
              bool blocking, size_t* written);
int sendFile(canopy_request* request, int fd, uint64_t offset, uint64_t length);
int finishRequest(canopy_request* request, int rc);
bool isWebSocketHandshake(const canopy_request* request);
int websocketAccept(canopy_request* request);
int websocketSend(canopy_request* request, uint8_t opcode, bool fin, const void* payload,
                  size_t length);
// Next frame without waiting (CANOPY_AGAIN) or waiting.
int websocketFrame(canopy_request* request, canopy_websocket_frame_t* frame, bool blocking);

// Response head record flags (see docs/sdk.md, "Wire formats").
constexpr uint16_t kResponseUpgrade = 1U << 0;
constexpr uint32_t kResponseMagic = 0x31505243;  // "CRP1"
constexpr size_t kResponseHeadFixed = 16;
constexpr size_t kFrameHeader = 8;

}  // namespace canopy::app
