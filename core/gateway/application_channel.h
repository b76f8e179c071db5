#pragma once

// The router's end of one application: the transport Channel (queue,
// doorbells, stream slots), the router's SegmentPool (request heads and
// bodies), and one seqpacket socket per worker process, which carries the
// segment and file descriptors and the Ready and Quit words. Requests enter
// as Exchanges (exchange.h).
//
// Event loop: everything that can need attention (the router's doorbell
// eventfd and every worker socket) sits in one epoll set whose fd() the
// engine watches for readability; then it calls process(), which never
// blocks. Not thread-safe: one thread drives a channel and its exchanges.

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "canopy/transport/channel.h"
#include "canopy/transport/file_descriptor.h"
#include "canopy/transport/request_head.h"
#include "canopy/transport/result.h"
#include "canopy/transport/segment.h"
#include "core/gateway/response_head.h"

namespace canopy::gateway {

using transport::Errc;
using transport::Error;
using transport::Result;

class Exchange;

struct ApplicationOptions {
    transport::ChannelGeometry channel{};
    transport::SegmentGeometry segments{};
    size_t router_shm_budget = transport::SegmentPool::kDefaultBudget;  // request heads and bodies
    size_t app_shm_budget = transport::SegmentPool::kDefaultBudget;     // per worker (`shm`)
    uint32_t consumers_per_worker = 1;  // consumer slots (serving threads) per worker
    uint64_t request_limit = 0;         // `limits.requests`; 0: none
    ResponseLimits response{};
    uint32_t max_websocket_frame = 16 * 1024 * 1024;
    // Files (app -> router) received but not yet named by a stream entry,
    // per worker: beyond this a worker is hoarding the router's descriptors.
    uint32_t max_worker_files = 256;
};

using WorkerId = uint32_t;

// What a new worker process needs: the text for CANOPY_APP_INIT and the
// descriptors it names (close-on-exec in this process). Fork, call
// inheritInChild() in the child before exec (or before canopy_app_init when
// not exec'ing), and destroy the launch in the parent after the fork: the
// router must not keep the worker's end of the socket, or a dead worker
// would never be noticed.
struct WorkerLaunch {
    WorkerId worker = 0;
    std::string attachment;
    std::vector<transport::FileDescriptor> descriptors;

    // Child only: clears FD_CLOEXEC on every descriptor. False on failure.
    bool inheritInChild() const;
};

enum class WorkerEvent {
    Ready,   // the worker attached and serves (message type 5)
    Exited,  // its socket closed or removeWorker(): requests it held failed
};

// What the router knows of the HTTP request; views, copied by submit().
struct RequestInfo {
    std::string_view method;
    std::string_view target;  // raw, with the query
    std::string_view path;    // decoded and normalised
    std::string_view query;
    std::string_view version = "HTTP/1.1";
    std::string_view remote;
    std::string_view local_address;
    std::string_view server_name;
    std::string_view app_target;  // "applications/NAME/TARGET"'s TARGET, or empty
    uint16_t local_port = 0;
    bool tls = false;
    std::vector<transport::HeaderField> headers;
    uint64_t content_length = transport::kUnknownLength;
    // The preread passed to submit() is the whole body: no request stream.
    bool body_complete = true;
    // A WebSocket handshake the router will complete if the app accepts it:
    // the request stream stays open for frames.
    bool websocket = false;
};

struct ChannelCounters {
    size_t workers = 0;     // alive
    size_t exchanges = 0;   // open
    size_t waiting = 0;     // held by the router (queue full, memory or slots spent)
    uint64_t requeued = 0;  // taken by a worker that died before claiming them
    uint64_t worker_deaths = 0;
    uint64_t protocol_errors = 0;  // app bytes refused
};

class ApplicationChannel {
  public:
    static Result<std::unique_ptr<ApplicationChannel>> create(const ApplicationOptions& options);
    // Exchanges must be destroyed first.
    ~ApplicationChannel();
    ApplicationChannel(const ApplicationChannel&) = delete;
    ApplicationChannel& operator=(const ApplicationChannel&) = delete;

    // --- Workers -----------------------------------------------------------

    // Assigns consumer slots and a socketpair to a new worker and sends it
    // the router's segments, so they wait in its socket before it takes a
    // request. Exhausted when the channel's consumer slots are spent.
    Result<WorkerLaunch> addWorker();
    // Sends Quit: the worker finishes what it holds and exits.
    void quitWorker(WorkerId worker);
    // The process manager saw the worker exit (SIGCHLD) before its socket
    // said so; same as the socket closing. Idempotent.
    void removeWorker(WorkerId worker);
    bool workerAlive(WorkerId worker) const;
    bool workerReady(WorkerId worker) const;
    // Why a worker that never got ready said it could not serve (the text
    // of its StartFailed message); empty when it said nothing. Readable
    // until its Exited event returns.
    std::string workerStartFailure(WorkerId worker) const;
    // Called from process() (never re-entered); may call anything but
    // destroying the channel.
    void setWorkerObserver(std::function<void(WorkerId, WorkerEvent)> observer);

    // --- Requests ----------------------------------------------------------

    // Starts an exchange: encodes the head with as much of `preread` as fits
    // the head chunks and queues it; the rest of preread is kept and written
    // on the request stream as credit allows. When the queue is full, or the
    // router's memory or stream slots are spent, the request waits in a
    // router-side list and is queued on the next wake-up (never dropped).
    // `on_ready` runs from process() whenever the exchange may have progress
    // (response bytes, credit for body, failure); see exchange.h.
    Result<std::unique_ptr<Exchange>> submit(const RequestInfo& request,
                                             std::span<const std::byte> preread,
                                             std::function<void()> on_ready);

    // --- Event loop --------------------------------------------------------

    // Readable when process() has work.
    int fd() const;
    // Reads worker sockets (segments, files, Ready, deaths), collects the
    // doorbell, queues waiting requests, moves request bodies, then runs the
    // on_ready callbacks of exchanges that changed. Never blocks.
    void process();

    // Fails every exchange with Failure::Unavailable (503) and quits every
    // worker: the application is being removed or could not start.
    void shutdown();

    ChannelCounters counters() const;
    size_t routerChunksInUse() const;
    transport::Channel& channel();
    const ApplicationOptions& options() const;

    struct State;

  private:
    explicit ApplicationChannel(std::unique_ptr<State> state);
    std::unique_ptr<State> state_;
    friend class Exchange;
};

}  // namespace canopy::gateway
