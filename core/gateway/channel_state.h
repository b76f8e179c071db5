#pragma once

// Internals shared by application_channel.cpp and exchange.cpp.

#include <sys/epoll.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "canopy/transport/channel.h"
#include "canopy/transport/file_descriptor.h"
#include "canopy/transport/segment.h"
#include "core/gateway/application_channel.h"

namespace canopy::gateway {

// One worker process as the router knows it. Exchanges that a worker
// claimed keep its record alive, so its segments stay mapped (and its files
// open) until they have read everything it wrote, even after it exited.
struct WorkerRecord {
    WorkerId id = 0;
    transport::FileDescriptor socket;
    std::vector<uint32_t> consumers;  // consumer indices of the channel
    std::shared_ptr<transport::SegmentTable> segments = std::make_shared<transport::SegmentTable>();
    std::unordered_map<uint32_t, transport::FileDescriptor> files;  // token -> file
    bool alive = true;
    bool ready = false;
    std::string start_failure;  // what it said before exiting unready
};

struct ApplicationChannel::State {
    ApplicationOptions options;
    std::unique_ptr<transport::Channel> channel;
    std::unique_ptr<transport::SegmentPool> pool;
    transport::FileDescriptor epoll;
    size_t announced = 0;  // router segments every live worker has

    std::map<WorkerId, std::shared_ptr<WorkerRecord>> workers;
    std::vector<std::shared_ptr<WorkerRecord>> party_owner;  // by party; null when free
    std::deque<uint32_t> free_consumers;
    WorkerId next_worker = 1;
    std::function<void(WorkerId, WorkerEvent)> worker_observer;

    uint64_t next_exchange = 1;
    std::map<uint64_t, Exchange*> exchanges;  // open ones, by id
    std::vector<Exchange*> by_slot;           // stream slot -> exchange
    std::deque<uint64_t> waiting;             // not yet in the shared queue, FIFO
    std::vector<uint64_t> touched;            // to pump and notify in this process()
    ChannelCounters counters;
    bool shut_down = false;

    // Sends router segments created since the last call to every live worker;
    // must run before a ref into them is published.
    void announceSegments();
    // Reads one worker's socket until empty; handles its death.
    void drainWorker(const std::shared_ptr<WorkerRecord>& worker);
    void workerDied(const std::shared_ptr<WorkerRecord>& worker);
    void touch(uint64_t id) { touched.push_back(id); }
    void retryWaiting();
    void bindSlot(uint32_t slot, Exchange* exchange);
    void unbind(Exchange* exchange);
    std::shared_ptr<WorkerRecord> ownerOf(transport::Party party) const;
};

}  // namespace canopy::gateway
